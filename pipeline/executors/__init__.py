"""Every way the shards of a stage get run, below the runner and above the shard job (pipeline/shardjob.py).

An executor is one module with one entry point,

    run(job: ShardJob, todo: list[int], options: dict) -> dict    # the stage's stats of this invocation

that runs shards `todo` of `job` (through `job.run_all`, never its own shard logic), shows progress and
returns what the stage counted (LLM requests, cache hits, ...); optionally `prepare(options)` checks, before
any work, that it can run at all (a Ray cluster that does not answer fails there). `options` are the
command's: {"name": "local" | "ray", "address": ..., "workers": run.workers (a number, per stage; "auto" is
resolved by pipeline/llm/workers.py)}. Adding an executor is one
module and one line in EXECUTORS. `slurm` is the other kind: it writes sbatch scripts whose tasks run
`trajforge <stage> --shard I/N`, each of which runs here again.
"""

import importlib
import time
from pathlib import Path

from tqdm import tqdm

from pipeline import atomic
from pipeline import config as configlib
from pipeline.curate.stage import CurateStage
from pipeline.llm.workers import choose_workers
from pipeline.publish import stage as publish
from pipeline.shardjob import ShardJob, ShardSpec, num_shards
from pipeline.stages import STAGE_DIRS

EXECUTORS = {
    "inprocess": "pipeline.executors.inprocess",  # one process, asyncio across shards
    "processes": "pipeline.executors.processes",  # run.workers processes on this machine
    "ray": "pipeline.executors.ray_cluster",  # Ray tasks, one per shard
}


def executor(name: str):
    return importlib.import_module(EXECUTORS[name])


def choose(options: dict, todo: list[int]) -> str:
    """`--executor ray` is Ray; otherwise worker processes when run.workers > 1 and there are shards to share."""
    if options["name"] != "local":
        return options["name"]
    return "processes" if min(options["workers"], len(todo)) > 1 else "inprocess"


def prepare(options: dict) -> None:
    """Fail before any shard starts when the chosen executor cannot run (e.g. an unreachable Ray cluster)."""
    if options["name"] != "local":
        check = getattr(executor(options["name"]), "prepare", None)
        if check:
            check(options)


def run_stage(name: str, config: configlib.Config, run_dir: Path, spec: ShardSpec, options: dict, serving) -> dict | None:
    """Run the selected, unfinished shards of stage `name` and return its summary; None when the stage does
    not run under `spec` (curate and publish see every shard at once: not under --shard)."""
    began = time.perf_counter()
    if name in WHOLE_RUN:
        summary = None if spec.count > 1 else WHOLE_RUN[name](config, run_dir, options)
    else:
        summary = _run_row_stage(name, config, run_dir, spec, options, serving)
    if summary is not None:
        summary["seconds"] = round(time.perf_counter() - began, 2)
    return summary


def _run_row_stage(name: str, config: configlib.Config, run_dir: Path, spec: ShardSpec, options: dict, serving) -> dict:
    job = ShardJob.build(name, config, run_dir)
    selected = [k for k in range(job.num_shards) if spec.selects(k)]
    todo = job.todo(selected)
    stats = {}
    if todo:
        used = configlib.stage_endpoints(config.data, name)
        profiles = serving.profiles(config["endpoints"], used)
        served = configlib.Config({**config.data, "endpoints": profiles}, config.path)
        options = {**options, "workers": choose_workers(options["workers"], profiles, used)}
        stats = executor(choose(options, todo)).run(ShardJob.build(name, served, run_dir), todo, options)
    return job.summary(selected, todo, stats)


def _run_curate(config: configlib.Config, run_dir: Path, options: dict) -> dict:
    stage = CurateStage(config, config.stage_hash("curate"), config.stage_hash("verify"), num_shards(config))
    in_dir, out_dir = run_dir / STAGE_DIRS["verify"], run_dir / STAGE_DIRS["curate"]
    atomic.clean(run_dir, out_dir.name)  # what a killed curate left
    if stage.is_done(out_dir, in_dir):
        return stage.reused_summary(out_dir)
    stage.prepare(in_dir)
    bar = lambda desc, total: tqdm(desc=desc, total=total, unit="row", dynamic_ncols=True)  # noqa: E731
    return {"stage": "curate", "reused": 0, "written": 1, **stage.run(in_dir, out_dir, bar)}


def _run_publish(config: configlib.Config, run_dir: Path, options: dict) -> dict:
    out = options.get("publish_out")
    return publish.run_stage(config, run_dir, Path(out) if out else None)


WHOLE_RUN = {"curate": _run_curate, "publish": _run_publish}  # stages that see every shard at once
