"""The stages by the names configs and commands use, in pipeline order, and the folders of a run directory
they write (a module of constants only, so the CLI can name them without importing any stage)."""

STAGES = ("synthesize", "sample", "verify", "curate", "publish")
STAGE_DIRS = {"synthesize": "tasks", "sample": "trajectories", "verify": "verified", "curate": "dataset"}
PREVIOUS = {"sample": "synthesize", "verify": "sample", "curate": "verify"}
ROW_STAGES = ("synthesize", "sample", "verify")
