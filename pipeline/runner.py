"""The local executor: owns the run directory, shard selection, resume, progress bars and stage summaries.

Row stages (synthesize, sample, verify) map input shard k to output shard k; curate sees all shards at once.
`--shard I/N` processes only shards k with k % N == I, so a scheduler array can split any row stage.
"""

import asyncio
import fcntl
from collections import Counter
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from tqdm import tqdm

from pipeline import config as configlib
from pipeline import report, shards
from pipeline.curate.stage import CurateStage
from pipeline.errors import UserError
from pipeline.sample.stage import SampleStage
from pipeline.synthesize.stage import SynthesizeStage
from pipeline.verify.stage import VerifyStage

STAGE_DIRS = {"synthesize": "tasks", "sample": "trajectories", "verify": "verified", "curate": "dataset"}
ROW_STAGES = {"synthesize": SynthesizeStage, "sample": SampleStage, "verify": VerifyStage}
PREVIOUS = {"sample": "synthesize", "verify": "sample", "curate": "verify"}


@dataclass(frozen=True)
class ShardSpec:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "ShardSpec":
        if not text:
            return cls()
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise UserError(f"--shard {text!r}: expected I/N with integers, e.g. --shard 0/4") from None
        if count < 1 or not 0 <= index < count:
            raise UserError(f"--shard {text!r}: need 0 <= I < N")
        return cls(index, count)

    def selects(self, k: int) -> bool:
        return k % self.count == self.index


def open_run(config: configlib.Config, run_dir: Path | None, reconfigure: bool = False) -> Path:
    """Create or reopen the run directory; refuse one made by a different config unless `reconfigure`."""
    run_dir = Path(run_dir) if run_dir else Path("runs") / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    with open(run_dir / ".config.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if saved.exists():
            old = yaml.safe_load(saved.read_text())
            diffs = configlib.differences(old, config.data)
            if diffs and not reconfigure:
                previous = configlib.Config(old, saved)
                changed = [s for s in configlib.STAGES if previous.stage_hash(s) != config.stage_hash(s)]
                raise UserError(
                    f"{run_dir} was made by a different config: {'; '.join(diffs[:6])}{' ...' if len(diffs) > 6 else ''}. "
                    f"This changes the output of: {', '.join(changed)}. Re-run with --reconfigure to redo those stages "
                    f"in place, or pass a new --run-dir.")
        tmp = saved.with_name(f".config.yaml.{os.getpid()}.tmp")
        tmp.write_text(yaml.safe_dump(config.data, sort_keys=False))
        os.replace(tmp, saved)
    return run_dir


def num_shards(config: configlib.Config) -> int:
    return len(SynthesizeStage(config, config.stage_hash("synthesize")).plan())


def shard_stats(path: Path) -> dict:
    """Counts for the summary, read from a finished shard's columns."""
    table = pq.read_table(path)
    stats = {"rows_out": table.num_rows}
    if "passed" in table.column_names:
        stats["passed"] = int(pc.sum(pc.fill_null(table["passed"], False).cast("int64")).as_py() or 0)
        stats["errors"] = table.num_rows - table["error"].null_count
        usage = table["usage"].combine_chunks()
        for key in ("prompt_tokens", "completion_tokens", "cost_usd"):
            stats[key] = pc.sum(usage.field(key)).as_py() or 0
        failed = Counter(c["name"] for checks in table["checks"].to_pylist() for c in checks or [] if not c["passed"])
        if failed:
            stats["checks_failed"] = failed
    return stats


def _num_rows(path: Path) -> int:
    return pq.read_metadata(path).num_rows if path.exists() else 0


@dataclass
class ShardJob:
    """Everything needed to turn input shard k of a row stage into output shard k; built once per process."""

    name: str
    config: configlib.Config
    stage: object
    plan: list
    in_dir: Path | None
    out_dir: Path

    @classmethod
    def build(cls, name: str, config: configlib.Config, run_dir: Path) -> "ShardJob":
        plan = SynthesizeStage(config, config.stage_hash("synthesize")).plan()
        in_dir = run_dir / STAGE_DIRS[PREVIOUS[name]] if name in PREVIOUS else None
        stage = ROW_STAGES[name](config, config.stage_hash(name))
        return cls(name, config, stage, plan, in_dir, run_dir / STAGE_DIRS[name])

    def input_rows(self, k: int) -> list[dict]:
        if self.in_dir is None:
            return self.plan[k]
        return shards.read_shard(self.in_dir / shards.shard_name(k), "task" if self.name == "sample" else "trajectory")

    async def run(self, k: int, progress) -> None:
        stage_hash = self.stage.stage_hash
        out = await self.stage.process(self.input_rows(k), progress)
        shards.write_shard(self.out_dir / shards.shard_name(k), out, self.stage.output_kind, stage_hash)
        shards.write_manifest(self.out_dir, self.name, stage_hash, len(self.plan))


def run_row_stage(name: str, config: configlib.Config, run_dir: Path, spec: ShardSpec, executor: dict | None = None) -> dict:
    """Run the selected, unfinished shards of a row stage; `executor` {"name": "ray", "address": ...} or local."""
    began = time.perf_counter()
    job = ShardJob.build(name, config, run_dir)
    stage_hash, total_shards, out_dir = job.stage.stage_hash, len(job.plan), job.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    shards.clean_stale_temps(out_dir)
    selected = [k for k in range(total_shards) if spec.selects(k)]
    todo = [k for k in selected if not shards.is_done(out_dir / shards.shard_name(k), stage_hash)]
    if job.in_dir is not None:
        previous = PREVIOUS[name]
        missing = [shards.shard_name(k) for k in todo if not shards.is_done(job.in_dir / shards.shard_name(k), config.stage_hash(previous))]
        if missing:
            raise UserError(f"{job.in_dir}: {name} needs {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                            f"from {previous} (missing or made by another config); run `trajforge {previous}` first")
        count = lambda k: _num_rows(job.in_dir / shards.shard_name(k))
    else:
        count = lambda k: len(job.plan[k])

    if todo and executor and executor["name"] == "ray":
        from pipeline import ray_executor

        ray_executor.run_shards(name, config, run_dir, todo, executor.get("address"))
    elif todo:
        async def work(bar):
            for k in todo:
                await job.run(k, bar.update)

        with tqdm(total=job.stage.expected_outputs(sum(map(count, todo))), desc=name, unit="row", dynamic_ncols=True) as bar:
            asyncio.run(work(bar))
    manifest = shards.write_manifest(out_dir, name, stage_hash, total_shards)
    summary = {"stage": name, "shards": len(selected), "written": len(todo), "reused": len(selected) - len(todo),
               "rows_in": sum(map(count, selected)), "complete": manifest["complete"]}
    for k in selected:
        for key, value in shard_stats(out_dir / shards.shard_name(k)).items():
            summary[key] = summary.get(key, Counter() if isinstance(value, Counter) else 0) + value
    summary["seconds"] = round(time.perf_counter() - began, 2)
    return summary


def run_curate(config: configlib.Config, run_dir: Path, spec: ShardSpec) -> dict:
    if spec.count > 1:
        raise UserError("curate reads every shard at once: run it without --shard, after all shards are verified")
    began = time.perf_counter()
    stage = CurateStage(config, config.stage_hash("curate"), config.stage_hash("verify"), num_shards(config))
    out_dir = run_dir / STAGE_DIRS["curate"]
    if stage.is_done(out_dir):
        manifest = json.loads((out_dir / shards.MANIFEST).read_text())
        summary = {"stage": "curate", "reused": 1, "written": 0, "rows_out": sum(manifest["splits"].values()), **{
            f"{s}_rows": n for s, n in manifest["splits"].items()}}
    else:
        stage.prepare(run_dir / STAGE_DIRS["verify"])
        with tqdm(desc="curate", unit="row", dynamic_ncols=True) as bar:
            summary = {"stage": "curate", "reused": 0, "written": 1, **stage.run(run_dir / STAGE_DIRS["verify"], out_dir, bar.update)}
    summary["seconds"] = round(time.perf_counter() - began, 2)
    return summary


def format_summary(s: dict) -> str:
    parts = [f"{s['stage']}:"]
    if "rows_in" in s:
        parts.append(f"{s['rows_in']} rows in ->")
    parts.append(f"{s.get('rows_out', 0)} out")
    if "passed" in s and s["stage"] == "verify":
        parts.append(f"({s['passed']} passed, {s.get('errors', 0)} with errors)")
    elif s.get("errors"):
        parts.append(f"({s['errors']} with errors)")
    if s.get("checks_failed"):
        parts.append("failed checks: " + ", ".join(f"{name} {n}" for name, n in sorted(s["checks_failed"].items(), key=lambda kv: -kv[1])))
    if "train_rows" in s:
        parts.append(f"(train {s.get('train_rows', 0)}, validation {s.get('validation_rows', 0)})")
    if s.get("removed"):
        parts.append("removed: " + ", ".join(f"{reason} {n}" for reason, n in s["removed"].items()) + ";")
    tokens = s.get("prompt_tokens", 0) + s.get("completion_tokens", 0)
    if tokens:
        parts.append(f"{tokens} tokens, ${s.get('cost_usd', 0):.4f}")
    if s.get("reused"):
        parts.append(f"[reused {s['reused']} finished shard(s), wrote {s.get('written', 0)}]")
    parts.append(f"{s['seconds']:.1f}s")
    return " ".join(parts)


def run_stages(stages: list[str], config: configlib.Config, run_dir: Path, spec: ShardSpec, echo=print,
               executor: dict | None = None) -> list[dict]:
    summaries = []
    for name in stages:
        if name in ROW_STAGES:
            summary = run_row_stage(name, config, run_dir, spec, executor)
        elif name == "curate":
            if spec.count > 1:
                echo(f"curate: skipped under --shard {spec.index}/{spec.count}; run `trajforge curate` once all shards are verified")
                continue
            summary = run_curate(config, run_dir, spec)
        else:
            raise UserError(f"stage {name!r} cannot run from `trajforge run`; use `trajforge {name}`")
        report.record_summary(run_dir, summary)
        summaries.append(summary)
        echo(format_summary(summary))
    return summaries
