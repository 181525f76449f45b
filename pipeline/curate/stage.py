"""The curate stage: all verified shards at once -> filtered, deduplicated, split dataset shards and a card.

Writes `dataset/data/{split}-{k:05d}-of-{n:05d}.parquet` and `dataset/README.md`, into a temporary folder
that replaces `dataset/` only when complete.
"""

import json
import math
import os
import shutil
from pathlib import Path

from pipeline import shards
from pipeline.curate.dedup import drop_exact_duplicates
from pipeline.curate.split import assign_splits
from pipeline.errors import UserError
from pipeline.publish import card

SPLITS = ("train", "validation")


def read_verified(in_dir: Path, verify_hash: str, num_shards: int) -> list[dict]:
    missing = [shards.shard_name(k) for k in range(num_shards) if not shards.is_done(in_dir / shards.shard_name(k), verify_hash)]
    if missing:
        raise UserError(f"{in_dir}: curate needs every verified shard; not done: {', '.join(missing[:5])}"
                        f"{' ...' if len(missing) > 5 else ''} (run `trajforge verify` first)")
    rows = []
    for k in range(num_shards):
        rows.extend(shards.read_shard(in_dir / shards.shard_name(k), "trajectory", validate=False))
    return rows


def write_split(folder: Path, split: str, rows: list[dict], rows_per_shard: int, stage_hash: str) -> int:
    n = max(1, math.ceil(len(rows) / rows_per_shard))
    for k in range(n):
        part = rows[k * rows_per_shard:(k + 1) * rows_per_shard]
        shards.write_shard(folder / "data" / f"{split}-{k:05d}-of-{n:05d}.parquet", part, "trajectory", stage_hash, marker=False)
    return n


def replace_dir(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old.{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


class CurateStage:
    name = "curate"

    def __init__(self, config, stage_hash: str, verify_hash: str, num_shards: int):
        self.config = config
        self.section = config["curate"]
        self.stage_hash = stage_hash
        self.verify_hash = verify_hash
        self.num_shards = num_shards

    def is_done(self, out_dir: Path) -> bool:
        manifest = out_dir / shards.MANIFEST
        return manifest.exists() and json.loads(manifest.read_text()).get("stage_hash") == self.stage_hash

    def run(self, in_dir: Path, out_dir: Path, progress) -> dict:
        verified = read_verified(in_dir, self.verify_hash, self.num_shards)
        progress(len(verified))
        funnel = {"verified": len(verified)}
        rows = [r for r in verified if r["passed"]] if self.section["require_passed"] else list(verified)
        funnel["passed"] = len(rows)
        removed = 0
        if self.section["dedup_exact"]:
            rows, removed = drop_exact_duplicates(rows)
        funnel["after exact dedup"] = len(rows)
        rows = assign_splits(rows, self.section["validation_fraction"], self.config["run"]["seed"])
        by_split = {split: [r for r in rows if r["split"] == split] for split in SPLITS}
        counts = {split: len(part) for split, part in by_split.items()}
        tmp = out_dir.with_name(f".{out_dir.name}.tmp.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        files = {split: write_split(tmp, split, part, self.section["rows_per_shard"], self.stage_hash)
                 for split, part in by_split.items() if part}
        (tmp / "README.md").write_text(card.render(self.section["card"], rows, verified, counts, funnel, self.stage_hash))
        manifest = {"stage": "curate", "stage_hash": self.stage_hash, "splits": counts, "files": files,
                    "funnel": funnel, "removed": {"not passed": funnel["verified"] - funnel["passed"], "exact duplicate": removed}}
        (tmp / shards.MANIFEST).write_text(json.dumps(manifest, indent=2))
        replace_dir(tmp, out_dir)
        return {"rows_in": len(verified), "rows_out": len(rows), "passed": len(rows), **{f"{s}_rows": n for s, n in counts.items()}}
