"""The shard job: input shard k of a row stage becomes output shard k, written atomically; which shards are
done. Every executor (pipeline/executors/) runs shards through this module; none re-implements it.

Row stages (synthesize, sample, verify) map input shard k to output shard k. `--shard I/N` selects the shards
k with k % N == I, so a scheduler array can split any row stage. A shard is done when its file carries the
stage hash, holds no transient failure and was made from the input shard that is there now (pipeline/shards.py).
"""

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic, shards
from pipeline import config as configlib
from pipeline.errors import UserError
from pipeline.llm import transient
from pipeline.sample.stage import SampleStage
from pipeline.stages import PREVIOUS, STAGE_DIRS
from pipeline.synthesize.stage import SynthesizeStage
from pipeline.verify.stage import VerifyStage

log = logging.getLogger("trajforge")

ROW_STAGES = {"synthesize": SynthesizeStage, "sample": SampleStage, "verify": VerifyStage}


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


def num_shards(config: configlib.Config) -> int:
    """The number of shards of every row stage: fixed by the synthesize plan."""
    return len(SynthesizeStage(config, config.stage_hash("synthesize")).plan())


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
        previous = PREVIOUS.get(name)
        in_dir = run_dir / STAGE_DIRS[previous] if previous else None
        stage = ROW_STAGES[name](config, config.stage_hash(name))
        return cls(name, config, stage, plan, in_dir, run_dir / STAGE_DIRS[name], run_dir)

    @property
    def num_shards(self) -> int:
        return len(self.plan)

    def out_path(self, k: int) -> Path:
        return self.out_dir / shards.shard_name(k)

    def in_path(self, k: int) -> Path:
        return self.in_dir / shards.shard_name(k)

    def input_count(self, k: int) -> int:
        """Rows in input shard k (plan items for synthesize; 0 for an input that is missing or damaged)."""
        if self.in_dir is None:
            return len(self.plan[k])
        return shards.rows_of(self.in_path(k))

    def expected_rows(self, todo: list[int]) -> int:
        """What the stage will write for shards `todo`: the total of a progress bar."""
        return sum(self.stage.expected_outputs(self.input_count(k)) for k in todo)

    def todo(self, selected: list[int]) -> list[int]:
        """The selected shards that are not done, after removing what killed writers left; refuses when the
        stage before has not made their inputs (or they are damaged). A damaged shard is named and redone."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic.clean(self.out_dir)
        todo = [k for k in selected if not self.done(k)]
        if self.in_dir is not None:
            previous = PREVIOUS[self.name]
            missing = [k for k in todo if not shards.is_finished(self.in_path(k), self.config.stage_hash(previous))]
            if missing:
                named = [shards.shard_name(k) + (f" ({why})" if (why := shards.damage(self.in_path(k))) else "") for k in missing[:5]]
                raise UserError(f"{self.in_dir}: {self.name} needs {', '.join(named)}{' ...' if len(missing) > 5 else ''} "
                                f"from {previous} (missing, damaged or made by another config); run `trajforge {previous}` first")
        for k in todo:
            why = shards.damage(self.out_path(k))
            if why:
                log.warning(f"{self.out_path(k)}: {why}; redoing it")
        return todo

    def done(self, k: int) -> bool:
        """Shard k is done, and was made from the input that is there now (a damaged input: it was not)."""
        fingerprint = self.input_fingerprint(k)
        if fingerprint is None and self.in_dir is not None and self.in_path(k).exists():
            return False
        return shards.is_done(self.out_path(k), self.stage.stage_hash, fingerprint)

    def input_fingerprint(self, k: int) -> str | None:
        """The checksum of input shard k (None for synthesize, whose input is the plan, or a missing or damaged
        input)."""
        if self.in_dir is None:
            return None
        return shards.fingerprint(self.in_path(k))

    def input_rows(self, k: int) -> list[dict]:
        if self.in_dir is None:
            return self.plan[k]
        kind = "task" if self.name == "sample" else "trajectory"
        return shards.read_shard(self.in_path(k), kind, validate=getattr(self.stage, "validate_input", True))

    async def run(self, k: int, progress) -> bool:
        """Process and write shard k; False when the stage answered None (its rows wait on a Batch API round)."""
        stage_hash = self.stage.stage_hash
        fingerprint = await asyncio.to_thread(self.input_fingerprint, k)
        with transient.watching() as failures:  # what failed for a transient reason: the next run redoes the shard
            out = await self.stage.process(await asyncio.to_thread(self.input_rows, k), progress)
        if out is None:
            return False
        # reading, validating and writing a shard take a while: in a thread, so other shards' requests go on
        await asyncio.to_thread(self.write, k, out, stage_hash, len(failures), fingerprint)
        return True

    def write(self, k: int, rows: list[dict], stage_hash: str, pending: int = 0, fingerprint: str | None = None) -> None:
        shards.write_shard(self.out_path(k), rows, self.stage.output_kind, stage_hash, pending=pending, input_fingerprint=fingerprint)
        shards.write_manifest(self.out_dir, self.name, stage_hash, self.num_shards)

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

    def summary(self, selected: list[int], todo: list[int], stats: dict) -> dict:
        """The stage summary after running `todo` of `selected`: shard counts, the stage's own stats of this
        invocation (`stats`), then the stage's summary of every selected shard."""
        manifest = shards.write_manifest(self.out_dir, self.name, self.stage.stage_hash, self.num_shards)
        summary = {"stage": self.name, "shards": len(selected), "written": len(todo), "reused": len(selected) - len(todo),
                   "rows_in": sum(map(self.input_count, selected)), "complete": manifest["complete"], **stats}
        summary.update(self.stage.summarize([self.out_path(k) for k in selected]))
        return summary


@contextlib.contextmanager
def _frozen_heap():
    """What exists when a stage starts (modules, config, the plan) lives as long as the stage: moved out of the
    collector's way, so full collections stay short and no longer pause the event loop for a fifth of a second
    under load. The young generations are collected first (a full collection of a heap holding pyarrow and
    the SDK took 0.1-0.4 s of a stage's start on a loaded machine; cyclic garbage already old enough to be in
    the oldest generation is a few objects from start-up) and everything is handed back afterwards."""
    gc.collect(1)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
