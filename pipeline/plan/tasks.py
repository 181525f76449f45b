"""The work a plan counts: the tasks of each shard, and which shards a run directory has already finished.

Tasks come from the run directory's tasks/ when synthesize finished there; otherwise they are made in memory
the way synthesize makes them (generators, seed files), without any request: an LLM-synthesized task stands in
as one of its seeds source's tasks. A plan over many shards reads an even selection of them and scales.
"""

from dataclasses import dataclass, field
from pathlib import Path

from pipeline import shards
from pipeline.synthesize import seeds as seedlib
from pipeline.synthesize.llm_tasks import seed_pool
from pipeline.synthesize.stage import SynthesizeStage

MAX_SHARDS_READ = 200
STAGE_DIRS = {"synthesize": "tasks", "sample": "trajectories", "verify": "verified"}


@dataclass
class Work:
    """Shard k -> its tasks (the selection read), the factor from the selection to all shards, and per stage
    the shards a run directory already finished (their requests are in its cache: free)."""

    tasks: dict[int, list[dict]]
    scale: float
    total_shards: int
    done: dict[str, set[int]] = field(default_factory=dict)
    source: str = "made in memory"

    def pending(self, stage: str) -> dict[int, list[dict]]:
        return {k: tasks for k, tasks in self.tasks.items() if k not in self.done.get(stage, set())}


def _selected(count: int) -> list[int]:
    step = max(1, -(-count // MAX_SHARDS_READ))
    return list(range(0, count, step))


def _stand_in(config, item: dict, pools: dict) -> dict | None:
    """Task content for a plan item, made without requests."""
    synthesize = config["synthesize"]
    if "generator" in item:
        return SynthesizeStage(config, "plan").generate(item)
    if "seeds" in item:
        return seedlib.seed_content(synthesize["seeds"][item["position"]], item["index"])[0]
    spec = synthesize["llm_tasks"][item["position"]]
    if spec["name"] not in pools:
        pools[spec["name"]] = seed_pool(config, spec)
    pool = pools[spec["name"]]
    return {**pool[item["index"] % len(pool)], **({"domain": spec["domain"]} if spec.get("domain") else {})} if pool else None


def made_in_memory(config) -> Work:
    plan = SynthesizeStage(config, config.stage_hash("synthesize")).plan()
    chosen = _selected(len(plan))
    pools: dict = {}
    tasks = {}
    for k in chosen:
        contents = [(i, _stand_in(config, item, pools)) for i, item in enumerate(plan[k])]
        tasks[k] = [{"id": f"plan-{k}-{i}", **content} for i, content in contents if content is not None]
    return Work(tasks, len(plan) / len(chosen) if chosen else 1.0, len(plan))


def finished(run_dir: Path, config, stage: str, count: int) -> set[int]:
    folder = run_dir / STAGE_DIRS[stage]
    stage_hash = config.stage_hash(stage)
    return {k for k in range(count) if shards.is_done(folder / shards.shard_name(k), stage_hash)}


def work(config, run_dir: Path | None) -> Work:
    """The tasks to plan for; with a run directory, what it finished is read from it and marked done."""
    if run_dir is None or not (run_dir / "tasks").is_dir():
        planned = made_in_memory(config)
        if run_dir is not None:
            planned.done = {stage: finished(run_dir, config, stage, planned.total_shards) for stage in STAGE_DIRS}
        return planned
    count = len(SynthesizeStage(config, config.stage_hash("synthesize")).plan())
    done = {stage: finished(run_dir, config, stage, count) for stage in STAGE_DIRS}
    if len(done["synthesize"]) < count:
        planned = made_in_memory(config)
        planned.done = done
        return planned
    chosen = _selected(count)
    tasks = {k: shards.read_shard(run_dir / "tasks" / shards.shard_name(k), "task", validate=False) for k in chosen}
    return Work(tasks, count / len(chosen) if chosen else 1.0, count, done, f"read from {run_dir / 'tasks'}")
