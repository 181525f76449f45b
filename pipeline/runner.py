"""The local executor: owns the run directory, shard selection, resume, progress bars and stage summaries.

Row stages (synthesize, sample, verify) map input shard k to output shard k; curate sees all shards at once.
`--shard I/N` processes only shards k with k % N == I, so a scheduler array can split any row stage.
"""

import asyncio
import contextlib
import fcntl
import gc
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
from pipeline import parallel, report, shards
from pipeline.curate.stage import CurateStage
from pipeline.errors import UserError
from pipeline.llm import endpoints, local
from pipeline.sample.stage import SampleStage
from pipeline.synthesize.stage import SynthesizeStage
from pipeline.verify import committee
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
        stats["funnel"] = funnel(table)
    return stats


def funnel(table) -> dict:
    """Per source (program, llm:<model>): rows, rows that ended without error, rows that passed verify."""
    out = {}
    for source, error, passed in zip(*(table[c].to_pylist() for c in ("source", "error", "passed"))):
        counts = out.setdefault(source, {"rows": 0, "no_error": 0, "passed": 0})
        counts["rows"] += 1
        counts["no_error"] += error is None
        counts["passed"] += passed is True
    return out


def add_stats(total: dict, stats: dict) -> None:
    """Sum `stats` into `total`, nested dicts (and Counters) key by key."""
    for key, value in stats.items():
        if isinstance(value, dict):
            add_stats(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


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
    run_dir: Path

    @classmethod
    def build(cls, name: str, config: configlib.Config, run_dir: Path) -> "ShardJob":
        plan = SynthesizeStage(config, config.stage_hash("synthesize")).plan()
        in_dir = run_dir / STAGE_DIRS[PREVIOUS[name]] if name in PREVIOUS else None
        stage = ROW_STAGES[name](config, config.stage_hash(name))
        return cls(name, config, stage, plan, in_dir, run_dir / STAGE_DIRS[name], run_dir)

    def input_rows(self, k: int) -> list[dict]:
        if self.in_dir is None:
            return self.plan[k]
        return shards.read_shard(self.in_dir / shards.shard_name(k), "task" if self.name == "sample" else "trajectory")

    async def run(self, k: int, progress) -> bool:
        """Process and write shard k; False when the stage answered None (its rows wait on a Batch API round)."""
        stage_hash = self.stage.stage_hash
        out = await self.stage.process(await asyncio.to_thread(self.input_rows, k), progress)
        if out is None:
            return False
        # reading, validating and writing a shard take a while: in a thread, so other shards' requests go on
        await asyncio.to_thread(self.write, k, out, stage_hash)
        return True

    def write(self, k: int, rows: list[dict], stage_hash: str) -> None:
        shards.write_shard(self.out_dir / shards.shard_name(k), rows, self.stage.output_kind, stage_hash)
        shards.write_manifest(self.out_dir, self.name, stage_hash, len(self.plan))

    async def run_all(self, todo: list[int], progress) -> dict:
        """Run shards `todo` inside the stage's own context (its LLM endpoints), up to `stage.shards_in_flight`
        at once so an endpoint stays busy across shard boundaries; shards waiting on a Batch API round are
        tried again after `stage.batch_round()`. Returns the stage's stats (LLM requests, cache hits, ...)."""
        with _frozen_heap():
            return await self._run_all(todo, progress)

    async def _run_all(self, todo: list[int], progress) -> dict:
        opened = self.stage.open(self.run_dir) if hasattr(self.stage, "open") else contextlib.nullcontext()
        async with opened:
            gate = asyncio.Semaphore(getattr(self.stage, "shards_in_flight", 1))
            pending = list(todo)

            async def one(k: int) -> None:
                async with gate:
                    if await self.run(k, progress):
                        pending.remove(k)

            while pending:
                running = [asyncio.ensure_future(one(k)) for k in list(pending)]
                try:
                    await asyncio.gather(*running)
                except BaseException:  # one shard failed: stop the others before the stage's context closes
                    for task in running:
                        task.cancel()
                    await asyncio.gather(*running, return_exceptions=True)
                    raise
                if pending and not await self.stage.batch_round():
                    raise RuntimeError(f"{self.name}: shards {pending} wait on replies, but no request is pending")
            return self.stage.stats() if hasattr(self.stage, "stats") else {}


@contextlib.contextmanager
def _frozen_heap():
    """What exists when a stage starts (modules, config, the plan) lives as long as the stage: moved out of the
    collector's way, so full collections stay short and no longer pause the event loop for a fifth of a second
    under load. Garbage is collected first and everything is handed back afterwards, so nothing leaks."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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

    extra = {}
    if todo:
        used = configlib.stage_endpoints(config.data, name)
        with local.serving(config["endpoints"], used, run_dir) as profiles:  # base_url: local -> a running server
            served = configlib.Config({**config.data, "endpoints": profiles}, config.path)
            workers = min(config["run"]["workers"], len(todo))
            if executor and executor["name"] == "ray":
                from pipeline import ray_executor

                ray_executor.run_shards(name, served, run_dir, todo, executor.get("address"))
            else:
                total = sum(job.stage.expected_outputs(count(k)) for k in todo)
                with tqdm(total=total, desc=name, unit="row", dynamic_ncols=True) as bar:
                    if workers > 1:
                        extra = parallel.run(name, served, run_dir, todo, workers, bar.update)
                    else:
                        extra = asyncio.run(ShardJob.build(name, served, run_dir).run_all(todo, bar.update))
    manifest = shards.write_manifest(out_dir, name, stage_hash, total_shards)
    summary = {"stage": name, "shards": len(selected), "written": len(todo), "reused": len(selected) - len(todo),
               "rows_in": sum(map(count, selected)), "complete": manifest["complete"], **extra}
    for k in selected:
        add_stats(summary, shard_stats(out_dir / shards.shard_name(k)))
    if name == "verify":
        tables = [pq.read_table(out_dir / shards.shard_name(k), columns=["judgments", "checks"]) for k in selected]
        summary["judges"] = committee.run_stats([pair for t in tables for pair in zip(t["judgments"].to_pylist(), t["checks"].to_pylist())])
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
    if "requests" in s:
        parts.append(f"{s['requests']} LLM requests ({s.get('cache_hits', 0)} cache hits, {s.get('retries', 0)} retries)")
    if s.get("reused"):
        parts.append(f"[reused {s['reused']} finished shard(s), wrote {s.get('written', 0)}]")
    parts.append(f"{s['seconds']:.1f}s")
    lines = [" ".join(parts)]
    for name, counts in sorted(s.get("funnels", {}).items()):  # LLM task synthesis, simulated users, reflection
        lines.append(f"  {name}: " + ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in counts.items()))
    if s["stage"] == "verify":
        lines += [f"  {source}: {c['rows']} sampled -> {c['no_error']} ended without error -> {c['passed']} passed verification"
                  for source, c in sorted(s.get("funnel", {}).items())]
    if s.get("judges"):
        j = s["judges"]
        lenient = "n/a" if j["leniency"] is None else f"{j['leniency']:.0%}"
        lines.append(f"  committee: passed {j['committee_pass_rate']:.0%} of {j['rows_judged']} rows; abstentions {j['abstentions']}; "
                     f"agreement {j['pairwise_agreement'] or 'n/a'}; Fleiss' kappa {j['fleiss_kappa']}; "
                     f"passed {lenient} of rows whose answer check failed")
    return "\n".join(lines)


def run_stages(stages: list[str], config: configlib.Config, run_dir: Path, spec: ShardSpec, echo=print,
               executor: dict | None = None) -> list[dict]:
    used = set().union(*(configlib.stage_endpoints(config.data, name) for name in stages))
    if used:  # a bad endpoint fails the run before its first stage, not halfway
        asyncio.run(endpoints.check(config["endpoints"], used))
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
