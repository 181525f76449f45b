"""The argument parser: one subcommand per command, each with its handler (pipeline/cli/run.py, data.py,
listing.py). Handlers import what they use when they run, so building the parser, `trajforge --help` and
`trajforge list` start at once."""

import argparse
import inspect
from pathlib import Path

from pipeline.cli.data import SHOW_STAGES, cmd_export, cmd_publish, cmd_report, cmd_show, cmd_validate, cmd_view
from pipeline.cli.listing import cmd_list, cmd_local_teacher
from pipeline.cli.run import cmd_import, cmd_plan, cmd_run, cmd_slurm, cmd_stage

STAGE_COMMANDS = ("synthesize", "sample", "verify", "curate")
EXAMPLES = """trajforge: manufacture verified agent trajectories.

Examples:
  trajforge run configs/quickstart.yaml                 # every stage of the config, in order
  trajforge sample configs/quickstart.yaml --shard 0/4  # one stage, shards 0, 4, 8, ... (one array task)
  trajforge run configs/quickstart.yaml --set run.seed=7 --run-dir runs/seed7
  trajforge show runs/quickstart --stage verify --limit 3
  trajforge validate runs/quickstart/verified/part-00000.parquet
  trajforge publish runs/quickstart --dry-run --out /tmp/hub-folder
  trajforge report runs/quickstart                      # regenerate report.html / report.json
  trajforge view runs/quickstart                        # browse the run's rows at http://127.0.0.1:8765
  trajforge publish runs/quickstart --repo-id me/agent-trajectories   # token from HF_TOKEN
  trajforge export runs/quickstart --view trl --out /tmp/trl
  trajforge sample configs/run.yaml --batch             # LLM teachers through the Batch API, one round per step
  trajforge plan configs/run.yaml --probe 3             # requests, tokens and dollars before spending
  trajforge verify runs/inventory-mcp --live --reconfigure   # replay against the live MCP server: drift since sampling
  trajforge local-teacher start                         # the embedded llama.cpp teacher, for manual use
  trajforge list tools configs/inventory_mcp.yaml       # every tool of the config's environments, with its schema
  trajforge import logs.jsonl --format openai --run-dir runs/logs   # trajectories from elsewhere, then
  trajforge run runs/logs                                          # verify and curate them
"""


def _stage_options(p: argparse.ArgumentParser, shard: bool = True) -> None:
    p.add_argument("config", metavar="CONFIG", help="a YAML config, or a run directory to re-run with its config")
    p.add_argument("--run-dir", type=Path, help="run directory (default: runs/<run.name>)")
    if shard:
        p.add_argument("--shard", metavar="I/N", help="process only shards I, I+N, I+2N, ... (one task of a scheduler array)")
        p.add_argument("--executor", choices=["local", "ray"], default="local", help="where row-stage shards run (ray: trajforge[ray])")
        p.add_argument("--address", help="with --executor ray: the cluster address (default: start a local Ray instance)")
        p.add_argument("--batch", action="store_true", help="send LLM requests through the Batch API (one round per agent step)")
        p.add_argument("--go-on", action="store_true", help="start even when the plan expects more than an endpoint's budget_usd")
        p.add_argument("--live", action="store_true", help="verify: replay environment tools against the live environment and report "
                       "drift, instead of answering them from the run's recordings (changes verify's config: with --reconfigure)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. sample.teachers[0].temperature=0.7")
    p.add_argument("--reconfigure", action="store_true", help="accept a changed config for an existing run dir and redo the stages it changes")
    p.add_argument("--allow-weak-sandbox", action="store_true",
                   help="run model-written code even without bubblewrap, in the weaker sandbox (sample.sandbox.allow_weak)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trajforge", description=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run the config's stages in order")
    _stage_options(p)
    p.add_argument("--stages", help="comma-separated stages to run (default: run.stages of the config)")
    p.add_argument("--dry-run", action="store_true", help="with publish among the stages: write the folder that would be uploaded to --out, upload nothing")
    p.add_argument("--out", help="with --dry-run: where publish writes that folder")
    p.set_defaults(func=cmd_run)
    for name in STAGE_COMMANDS:
        p = sub.add_parser(name, help=f"run the {name} stage alone")
        _stage_options(p)
        p.set_defaults(func=cmd_stage)
    p = sub.add_parser("plan", help="estimate requests, tokens and dollars per stage and endpoint, before spending",
                       description=inspect.cleandoc(cmd_plan.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG", help="a YAML config, or a run directory")
    p.add_argument("--run-dir", type=Path, help="the run to plan (default: runs/<run.name>); its finished shards cost nothing more")
    p.add_argument("--stages", help="comma-separated stages (default: run.stages of the config)")
    p.add_argument("--measure", type=Path, metavar="RUN_DIR", help="correct the estimate with the episodes of this (pilot) run")
    p.add_argument("--probe", type=int, default=0, metavar="N", help="send N real episodes per teacher and format (and judge them) to measure")
    p.add_argument("--batch", action="store_true", help="plan for the Batch API (its discount)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("import", help="import trajectories from elsewhere (trajforge rows, OpenAI chat, ShareGPT, ATIF) to verify, curate and publish",
                       description="Map a file, folder or Hub dataset of trajectories onto trajectory rows in RUN/trajectories/, "
                                   "so verify, curate and publish run on them as on sampled rows. Records that cannot be mapped are "
                                   "counted and listed with their line; rows that break the schema fail verify's schema check.")
    p.add_argument("source", metavar="FILE|DIR|HUB_NAME")
    p.add_argument("--format", required=True, help="trajforge, openai, sharegpt or atif")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--config", help="a config for the run's verify, curate and publish (default: configs/import.yaml)")
    p.add_argument("--name", help="rows without a model name get source import:NAME (default: imported)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--reconfigure", action="store_true", help="accept a changed config or source for an existing run dir")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("publish", help="upload the curated dataset to the Hugging Face Hub (or --dry-run to a folder)")
    p.add_argument("config", metavar="CONFIG_OR_RUN_DIR")
    p.add_argument("--run-dir", type=Path)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--repo-id", help="USER/NAME on the Hub (default: publish.repo_id)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="write the folder that would be uploaded, upload nothing")
    p.add_argument("--out", help="with --dry-run: where to write it")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser("export", help="write an export view of a curated run (trl, sharegpt, react, dpo, dpo_step, rl, prm)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--view", required=True, help="trl, sharegpt, react, dpo, dpo_step, rl, ... (`trajforge list views`)")
    p.add_argument("--reasoning", choices=["render", "drop"], default="render",
                   help="sharegpt and react views: reasoning_content as a <think> block before the reply, or left out")
    p.add_argument("--out", required=True, help="folder for {split}-k-of-n.parquet files")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("validate", help="check Parquet/JSONL files of tasks or trajectories against the schemas")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--kind", choices=["task", "trajectory"], help="schema to use (default: detected per file)")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("show", help="render trajectories of a run readably")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--stage", default="verify", choices=SHOW_STAGES)
    p.add_argument("--id", help="only this trajectory id")
    p.add_argument("--failed", action="store_true", help="only trajectories that failed verification")
    p.add_argument("--limit", type=int, default=5)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("slurm", help="write sbatch scripts (an array job per stage, chained) and optionally submit them")
    _stage_options(p, shard=False)
    p.add_argument("--stages", help="comma-separated stages (default: run.stages without publish)")
    p.add_argument("--array", type=int, required=True, metavar="N", help="array tasks per row stage (capped at the number of shards)")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG", help="extra #SBATCH line, e.g. --sbatch-arg=--partition=cpu")
    p.add_argument("--submit", action="store_true", help="submit the chain now (checks that Slurm answers first)")
    p.add_argument("--wait", action="store_true", help="with --submit: block until the last job ends")
    p.set_defaults(func=cmd_slurm)
    p = sub.add_parser("report", help="regenerate a run's report.html and report.json")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("view", help="browse a run's trajectories in a web browser (filters, steps, masks, checks; read-only)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port; default 8765)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.set_defaults(func=cmd_view)
    p = sub.add_parser("local-teacher", help="start, stop or show the embedded llama.cpp teacher (Gemma 3 270M) for manual use")
    p.add_argument("action", choices=["start", "stop", "status", "check"],
                   help="check: start a server, ask for one short completion, stop (what setup runs after installing)")
    p.add_argument("--model", default="gemma-3-270m", help="the name it serves the model under (an endpoint's `model`)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context size in tokens")
    p.set_defaults(func=cmd_local_teacher)
    p = sub.add_parser("list", help="list registered generators, tools, checks, formats, views or environment kinds, and where each comes from")
    p.add_argument("what", choices=["generators", "tools", "checks", "formats", "views", "environments"])
    p.add_argument("config", metavar="CONFIG", nargs="?", help="with tools: also the tools of this config's environments (they are started)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_list)
    return parser
