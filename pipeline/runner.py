"""The runner: orders the stages of a command, opens the run directory, chooses the executor for each
stage and prints the stages' summaries. Nothing else: shards, resume and parallelism are the executors'
(pipeline/executors/), a shard's work is the shard job's (pipeline/shardjob.py), each stage summarises its
own shards.

    config -> runner -> executor -> shard job -> stage -> tools / llm
"""

import asyncio
import fcntl
from pathlib import Path

import yaml

from pipeline import atomic, executors, report
from pipeline import config as configlib
from pipeline.errors import UserError
from pipeline.llm import endpoints, local
from pipeline.publish import stage as publish
from pipeline.shardjob import ShardSpec, num_shards
from pipeline.stages import STAGE_DIRS
from pipeline.summary import format_summary


def open_run(config: configlib.Config, run_dir: Path | None, reconfigure: bool = False) -> Path:
    """Create or reopen the run directory; refuse one made by a different config unless `reconfigure`."""
    run_dir = Path(run_dir) if run_dir else Path("runs") / config.name
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run directory {run_dir}: {exc.strerror or exc}") from None
    saved = run_dir / "config.yaml"
    with open(run_dir / ".config.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if saved.exists() and not reconfigure:
            old = _saved_config(saved)
            diffs = configlib.differences(old, config.data)
            if diffs:
                previous = configlib.Config(old, saved)
                changed = [s for s in configlib.STAGES if previous.stage_hash(s) != config.stage_hash(s)]
                raise UserError(
                    f"{run_dir} was made by a different config: {'; '.join(diffs[:6])}{f' (and {len(diffs) - 6} more)' if len(diffs) > 6 else ''}. "
                    f"This changes the output of: {', '.join(changed)}. Re-run with --reconfigure to redo those stages "
                    f"in place, or pass a new --run-dir.")
        atomic.write_text(saved, yaml.safe_dump(config.data, sort_keys=False))
    return run_dir


def _saved_config(saved: Path) -> dict:
    """The config a run directory was made with."""
    try:
        old = yaml.safe_load(saved.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8
        old = exc
    if not isinstance(old, dict):
        raise UserError(f"{saved}: not the config this run was made with ({' '.join(str(old).split())[:120]}); restore it, "
                        "or re-run with --reconfigure to put this config there")
    return old


def preflight(stages: list[str], config: configlib.Config, executor: dict) -> None:
    """Everything that can refuse the command, before anything is written: the stages, the plan (seed files,
    generators), the executor (a Ray cluster answers), every endpoint the stages use (key set, server answers,
    model served) and where publish would go."""
    unknown = [s for s in stages if s not in configlib.STAGES]
    if unknown:
        raise UserError(f"--stages: unknown stage(s) {', '.join(unknown)} (stages: {', '.join(configlib.STAGES)})")
    num_shards(config)
    if "publish" in stages:
        publish.check_target(config, Path(executor["publish_out"]) if executor.get("publish_out") else None)
    executors.prepare(executor)
    used = set().union(*(configlib.stage_endpoints(config.data, name) for name in stages))
    if used:  # a bad endpoint fails the run before its first stage, not halfway
        asyncio.run(endpoints.check(config["endpoints"], used))


def run_stages(stages: list[str], config: configlib.Config, run_dir: Path, spec: ShardSpec, echo=print,
               executor: dict | None = None) -> list[dict]:
    """Run `stages` in pipeline order; `executor` is {"name": "local" | "ray", "address": ..., "publish_out":
    ...} (default: local). `preflight` has checked them."""
    options = {"name": "local", "address": None, **(executor or {}), "workers": config["run"]["workers"]}
    summaries = []
    for folder in [run_dir, *(run_dir / name for name in STAGE_DIRS.values())]:
        atomic.clean(folder)  # what killed processes of any stage left
    with local.Serving(run_dir) as serving:
        for name in [s for s in configlib.STAGES if s in stages]:
            summary = executors.run_stage(name, config, run_dir, spec, options, serving)
            if summary is None:
                echo(f"{name}: skipped under --shard {spec.index}/{spec.count}; run `trajforge {name}` once all shards are done")
                continue
            report.record_summary(run_dir, summary)
            summaries.append(summary)
            echo(format_summary(summary))
    return summaries
