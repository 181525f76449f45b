"""What a run directory holds, for the readers of a whole run (the report, the viewer): the Parquet files of
a stage, and where a running viewer of the run listens."""

import json
import os
import socket
from pathlib import Path

from pipeline.stages import STAGE_DIRS


def stage_files(run_dir: Path, stage: str) -> list[Path]:
    """The finished Parquet files of a stage in shard order: `part-*.parquet` of a row stage, the split files
    under `dataset/data/` for curate (temporary files are dot-named and never match)."""
    folder = Path(run_dir) / STAGE_DIRS[stage]
    return sorted(folder.glob("part-*.parquet")) or sorted((folder / "data").glob("*.parquet"))


def row_kind(stage: str) -> str:
    return "task" if stage == "synthesize" else "trajectory"


VIEWER_FILE = ".view.json"  # written by a running `trajforge view`: {"url", "pid", "host"}


def viewer_url(run_dir: Path) -> str | None:
    """The address of a `trajforge view` serving this run directory from this host, if one is running."""
    try:
        found = json.loads((Path(run_dir) / VIEWER_FILE).read_text())
        if found["host"] != socket.gethostname():
            return None
        os.kill(int(found["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found["url"]
