"""The curate stage: all verified shards -> filtered, decontaminated, deduplicated, mixed, split dataset shards,
export views, a dataset card and a report.

Two streaming passes over the verified shards: `scan` reads only the columns decisions need into a catalog
(one small entry per row) and MinHash signatures; the decisions are numpy over that catalog; `write` then copies
the kept rows shard by shard into `dataset/data/{split}-{k:05d}-of-{n:05d}.parquet`. Everything is written into
a temporary folder that replaces `dataset/` only when complete.
"""

import functools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline import atomic, shards
from pipeline.curate import decontam, dedup, mix, scan, textsig, views
from pipeline.curate import manifest
from pipeline.curate.split import assign_splits
from pipeline.curate.write import write_splits
from pipeline.environments import recordings
from pipeline.errors import UserError, storage_error
from pipeline.publish import card

log = logging.getLogger("trajforge")

REPORT = "_report.json"


def verified_paths(in_dir: Path, verify_hash: str, num_shards: int) -> list[Path]:
    paths = [in_dir / shards.shard_name(k) for k in range(num_shards)]
    missing = [p for p in paths if not shards.is_finished(p, verify_hash)]
    if missing:
        named = [p.name + (f" ({why})" if (why := shards.damage(p)) else "") for p in missing[:5]]
        raise UserError(f"{in_dir}: curate needs every verified shard; not done: {', '.join(named)}"
                        f"{' ...' if len(missing) > 5 else ''} (run `trajforge verify` first)")
    return paths


def decide(result: scan.Scan, section: dict, seed: int) -> tuple[np.ndarray, list[dict], dict]:
    """Each row's final reason code (0 = kept), the achieved mix table and the near-dedup parameters."""
    catalog = result.catalog
    reason = catalog.column("reason").to_numpy().copy()
    rank = dedup.rank_rows(catalog)
    alive = lambda: np.flatnonzero(reason == 0)  # noqa: E731
    if section["dedup_exact"]:
        reason[dedup.exact_duplicates(alive(), catalog.column("exact_key").to_numpy(), rank)] = scan.CODE["exact duplicate"]
    near = section["dedup_near"]
    lsh = {}
    if near["enabled"]:
        has = catalog.column("has_signature").to_numpy(zero_copy_only=False)
        candidates = alive()[has[alive()]]
        formats = textsig.hash_strings(catalog.column("format"))
        reason[dedup.near_duplicates(candidates, result.signatures, formats, rank, near["threshold"])] = scan.CODE["near duplicate"]
        bands, rows = dedup.lsh_bands(near["threshold"], near["num_perm"])
        lsh = {"threshold": near["threshold"], "num_perm": near["num_perm"], "bands": bands, "rows_per_band": rows,
               "shingle_words": near["shingle_words"]}
    caps = section["filters"]["domain_caps"]
    if caps:
        domains = catalog.column("domain").to_numpy(zero_copy_only=False)
        reason[mix.domain_capped(alive(), domains, caps, rank)] = scan.CODE["domain cap"]
    mix_table = []
    if section["mix"]["ratios"]:
        dropped, mix_table = mix.select(alive(), catalog, section["mix"], seed)
        reason[dropped] = scan.CODE["not selected by mix"]
    return reason, mix_table, lsh


def funnel(reason: np.ndarray) -> tuple[dict, dict]:
    counts = np.bincount(reason, minlength=len(scan.REASONS) + 1)
    removed = {name: int(counts[code]) for name, code in scan.CODE.items() if counts[code]}
    steps, remaining = {"verified": len(reason)}, len(reason)
    for name, code in scan.CODE.items():
        if counts[code]:
            remaining -= int(counts[code])
            steps[f"after {name}"] = remaining
    return steps, removed


class CurateStage:
    name = "curate"

    def __init__(self, config, stage_hash: str, verify_hash: str, num_shards: int):
        self.config = config
        self.section = config["curate"]
        self.stage_hash = stage_hash
        self.verify_hash = verify_hash
        self.num_shards = num_shards
        self.references = None

    @functools.cached_property
    def references_fingerprint(self) -> str | None:
        """Read once per run: checked by `is_done`, then recorded in the manifest `run` writes."""
        return decontam.fingerprint(self.section["decontam"], Path.cwd())

    def inputs(self, in_dir: Path) -> dict[str, str]:
        """The checksum of each verified shard there is: a verified shard redone (rows retried) re-runs curate."""
        paths = [in_dir / shards.shard_name(k) for k in range(self.num_shards)]
        return {p.name: shards.fingerprint(p) for p in paths if p.exists()}

    def is_done(self, out_dir: Path, in_dir: Path) -> bool:
        """Curated with this stage hash, from the verified shards that are there now, and with the same
        decontamination references (their contents, not only their names: an updated benchmark file re-runs
        curate)."""
        written, damaged = manifest.read(out_dir)
        if damaged:
            log.warning(f"{damaged}; curating again")
        if written is None:
            return False
        if written.get("stage_hash") != self.stage_hash or written.get("inputs") != self.inputs(in_dir):
            return False
        if written.get("references") != self.references_fingerprint:
            log.info("curate: the decontamination references changed since the last curate; curating again")
            return False
        return True

    @staticmethod
    def reused_summary(out_dir: Path) -> dict:
        """The summary of a curate that is already done (nothing written)."""
        written = json.loads((out_dir / manifest.NAME).read_text())  # `is_done` checked it against the files
        return {"stage": "curate", "reused": 1, "written": 0, "rows_out": sum(written["splits"].values()),
                **{f"{s}_rows": n for s, n in written["splits"].items()}}

    def shard_sizes(self, result: scan.Scan) -> tuple[int, int]:
        rows = max(result.catalog.num_rows, 1)
        per_shard = self.section["rows_per_shard"]
        if self.section["shard_bytes"]:
            per_shard = max(1, int(self.section["shard_bytes"] * rows / max(result.input_bytes, 1)))
        group = max(1, int(self.section["row_group_bytes"] * rows / max(result.input_uncompressed_bytes, 1)))
        return per_shard, min(group, per_shard)

    def prepare(self, in_dir: Path) -> list[Path]:
        """Everything that can fail before reading a row: the verified shards, the decontamination references."""
        paths = verified_paths(in_dir, self.verify_hash, self.num_shards)
        self.references = decontam.load_references(self.section["decontam"], Path.cwd())
        return paths

    def run(self, in_dir: Path, out_dir: Path, progress) -> dict:
        """Curate the verified shards in `in_dir` into `out_dir`, which is replaced only once complete; `progress`
        (description, total rows) -> a tqdm-like bar, one for each of the two passes."""
        paths = self.prepare(in_dir) if self.references is None else verified_paths(in_dir, self.verify_hash, self.num_shards)
        with progress("curate: scan", sum(map(shards.rows_of, paths))) as bar:
            result = scan.scan(paths, self.section, self.references, bar.update)
        seed = self.config["run"]["seed"]
        reason, mix_table, lsh = decide(result, self.section, seed)
        kept = np.flatnonzero(reason == 0)
        if not len(kept):
            steps, removed = funnel(reason)
            raise UserError(f"curate kept no rows of {len(reason)} ({', '.join(f'{k}: {v}' for k, v in removed.items())}); "
                            "nothing to write, dataset/ left as it was")
        catalog = result.catalog.take(pa.array(kept))
        split_of = assign_splits(catalog.column("task_id"), self.section["validation_fraction"], seed)
        tmp = atomic.temp_path(out_dir)
        try:
            rows_per_shard, group_rows = self.shard_sizes(result)
            with progress("curate: write", len(kept)) as bar:
                files = write_splits(paths, catalog.column("shard").to_numpy(), catalog.column("row").to_numpy(), split_of,
                                     tmp / "data", rows_per_shard, group_rows, self.stage_hash, bar.update)
            counts = {split: int((split_of == split).sum()) for split in files}
            view_counts = {name: views.write_view(name, tmp, tmp / name, paths, self.section["view_reasoning"]) for name in self.section["views"]}
            if self.section["recordings"]:  # the curated rows' tool I/O travels with the dataset (docs/environments.md)
                recordings.export_for_dataset(in_dir.parent, sorted((tmp / "data").glob("*.parquet")), tmp / "recordings")
            steps, removed = funnel(reason)
            report = {"funnel": steps, "removed": removed, "contaminated": result.contaminated, "mix": mix_table,
                      "near_dedup": lsh, "rows_per_shard": rows_per_shard, "row_group_rows": group_rows}
            card.write(tmp, card.CardInputs(self.config, catalog.append_column("split", pa.array(split_of)), result.stats,
                                            counts, view_counts, report, self.stage_hash))
            (tmp / REPORT).write_text(json.dumps(report, indent=2))
            manifest.write(tmp, {"stage": "curate", "stage_hash": self.stage_hash, "splits": counts, "files": files,
                                 "views": view_counts, "removed": removed,
                                 "references": self.references_fingerprint, "inputs": self.inputs(in_dir)})
            atomic.replace_dir(tmp, out_dir)
        except OSError as exc:  # a full disk: the dataset that was there stays
            raise storage_error(out_dir, exc.strerror or str(exc), f"{out_dir.name}/ is left as it was") from None
        finally:  # an error or Ctrl-C: the temporary folder goes at once (after a kill, the next run removes it)
            shutil.rmtree(tmp, ignore_errors=True)
        return {"rows_in": len(reason), "rows_out": len(kept), "removed": removed,
                **{f"{s}_rows": n for s, n in counts.items()}}
