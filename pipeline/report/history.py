"""report.json: the last summary of each stage command, and the history of every stage command run in this
run directory, so figures that only a command knows (LLM requests, retries, seconds) add up over the several
`--shard` commands of a batch job instead of showing the last one.

Each invocation is kept with the stage hash its stage folder had when it finished; the report sums only the
invocations of the current stage hash (a `--reconfigure` that redoes a stage starts its count afresh).
"""

import fcntl
import json
import time
from contextlib import contextmanager
from pathlib import Path

from pipeline import atomic
from pipeline.stages import STAGE_DIRS

# what a summary says about the shards (read again from the shards themselves), not about the command
SHARD_FIGURES = {"stage", "shards", "rows_in", "rows_out", "passed", "errors", "prompt_tokens", "completion_tokens", "cost_usd",
                 "checks_failed", "funnel", "judges", "complete", "removed", "train_rows", "validation_rows",
                 "waiting_retry", "step_values", "pass_rates"}


@contextmanager
def editing(run_dir: Path):
    """report.json as a dict, locked against the other shard processes of the run and saved atomically."""
    path = Path(run_dir) / "report.json"
    with open(Path(run_dir) / ".report.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            report = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:  # damaged: the summaries of the stages that run next fill it again
            report = {}
        if not isinstance(report, dict) or not isinstance(report.get("stages", {}), dict) or not isinstance(report.get("invocations", []), list):
            report = {}
        report.setdefault("stages", {})
        report.setdefault("invocations", [])
        yield report
        atomic.write_text(path, json.dumps(report, indent=2, sort_keys=True))


def stage_hash(run_dir: Path, stage: str) -> str | None:
    manifest = Path(run_dir) / STAGE_DIRS.get(stage, stage) / "_manifest.json"
    try:
        return json.loads(manifest.read_text()).get("stage_hash")
    except (OSError, ValueError):
        return None


def record_summary(run_dir: Path, summary: dict) -> None:
    """Keep the stage's latest summary and add this command to the history."""
    command = {k: v for k, v in summary.items() if k not in SHARD_FIGURES}
    command.update(stage=summary["stage"], stage_hash=stage_hash(run_dir, summary["stage"]), finished=round(time.time(), 1))
    with editing(run_dir) as report:
        report["stages"][summary["stage"]] = summary
        report["invocations"].append(command)


def add_up(total: dict, more: dict) -> None:
    """Sum `more` into `total`: numbers add, nested dicts add key by key; text is ignored."""
    for key, value in more.items():
        if isinstance(value, dict):
            add_up(total.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def invocation_totals(run_dir: Path, report: dict) -> dict[str, dict]:
    """Per stage: the sum of its commands' figures for the current stage hash, and how many commands ran."""
    out: dict[str, dict] = {}
    current = {stage: stage_hash(run_dir, stage) for stage in STAGE_DIRS}
    for command in report.get("invocations", []):
        stage = command["stage"]
        if command.get("stage_hash") != current.get(stage):
            continue
        total = out.setdefault(stage, {"commands": 0})
        total["commands"] += 1
        add_up(total, {k: v for k, v in command.items() if k not in ("stage", "stage_hash", "finished")})
    return out
