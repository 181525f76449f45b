"""Export views: derived layouts of the curated rows (never the source of truth). A view is a module with
SCHEMA (its Arrow schema) and build(rows, context) -> rows; a new view is one file plus one registry line, or,
from an installed package, a `trajforge.views` entry point naming such a module (pipeline/plugins.py).

Each view is written beside data/ as its own folder with the same split files, `{view}/{split}-k-of-n.parquet`,
which the card lists as its own config; `trajforge export` writes one anywhere.
"""

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from pipeline import atomic, plugins, shards
from pipeline import rows as rowlib
from pipeline.curate import manifest
from pipeline.curate.views import dpo, prm, react, rl, sharegpt, step_pairs, trl
from pipeline.curate.write import shard_file
from pipeline.errors import UserError, storage_error

VIEWS = {
    "trl": (trl.SCHEMA, trl.build),
    "sharegpt": (sharegpt.SCHEMA, sharegpt.build),
    "react": (react.SCHEMA, react.build),
    "dpo": (dpo.SCHEMA, dpo.trajectory_pairs),
    "dpo_step": (dpo.SCHEMA, step_pairs.build),
    "rl": (rl.SCHEMA, rl.build),
    "prm": (prm.SCHEMA, prm.build),
}
VIEWS = plugins.Registry("views", VIEWS, lambda name, view: (view.SCHEMA, view.build))
NEEDS_FAILED = {"dpo", "dpo_step", "prm"}


@dataclass
class Context:
    failed: dict[str, list[dict]] = field(default_factory=dict)
    reasoning: str = "render"  # curate.view_reasoning: how text views show reasoning_content
    seen: set[str] = field(default_factory=set)  # tasks whose failed rows a view has used (each once)


def failed_rows(verified: list[Path]) -> dict[str, list[dict]]:
    """Failed trajectories of the run by task id that are real model attempts (dpo.real_attempt), read from
    verified/ (curate's data holds passed rows only)."""
    out: dict[str, list[dict]] = {}
    for path in verified:
        table = shards.read_parquet(path, filters=pc.field("passed") == False)  # noqa: E712
        for row in rowlib.from_table(table, "trajectory"):
            if dpo.real_attempt(row):
                out.setdefault(row["task_id"], []).append(row)
    return out


def write_view(name: str, dataset_dir: Path, out_dir: Path, verified: list[Path], reasoning: str) -> dict[str, int]:
    """data/{split}-k-of-n.parquet -> out_dir/{split}-j-of-m.parquet in the view's layout; returns rows per split.
    Data files whose rows give no view rows (e.g. no preference pair) give no file: `datasets` cannot read an
    empty Parquet file, so the view's files are numbered over the non-empty ones."""
    schema, build = VIEWS[name]
    context = Context(failed_rows(verified) if name in NEEDS_FAILED else {}, reasoning)
    parts: dict[str, list[Path]] = {}
    counts: dict[str, int] = {}
    for path in sorted((dataset_dir / "data").glob("*.parquet")):
        split = path.name.split("-")[0]
        rows = build(shards.read_shard(path, "trajectory", validate=False), context)
        if rows:
            part = out_dir / f".{split}-{len(parts.get(split, [])):05d}.part"
            shards.write_table_atomic(part, rowlib.to_table_with_schema(rows, schema), compression="zstd")
            parts.setdefault(split, []).append(part)
            counts[split] = counts.get(split, 0) + len(rows)
    for split, files in parts.items():
        for k, part in enumerate(files):
            part.rename(out_dir / shard_file(split, k, len(files)))
    return counts


EMPTY = {  # why a view can have no rows on a sound run
    "dpo": "no curated task has a failed model attempt in verified/ to pair with",
    "dpo_step": ("no failed trajectory of a curated task has a step judged bad (verify.step_judge), and no rollout "
                 "branch or step candidate gives a pair"),
}
_EXPORTED = re.compile(r"^[A-Za-z0-9_]+-\d{5}-of-\d{5}\.parquet$")


def export(name: str, dataset_dir: Path, out: Path, verified: list[Path], reasoning: str) -> dict[str, int]:
    """`trajforge export`: the view `name` of the curated dataset in place of the folder `out` (an earlier export
    is replaced whole, so no file of it stays; a folder holding anything else is refused). A view with no rows
    writes nothing and says why."""
    damaged = manifest.read(dataset_dir)[1]
    if damaged:
        raise UserError(f"{damaged}: run `trajforge curate` to rebuild the dataset before exporting it")
    if out.exists():
        foreign = [p.name for p in out.iterdir() if not _EXPORTED.match(p.name)] if out.is_dir() else [out.name]
        if foreign:
            raise UserError(f"--out {out}: exists and holds {foreign[0]}, which is not an earlier export; choose an empty or new folder")
    atomic.clean(out.parent, out.name)
    tmp = atomic.temp_path(out)
    try:
        counts = write_view(name, dataset_dir, tmp, verified, reasoning)
        if not sum(counts.values()):
            raise UserError(f"export {name}: the view has no rows in this run ({EMPTY.get(name, 'the curated rows give none')}); "
                            f"nothing written{f', {out} left as it was' if out.exists() else ''}")
        atomic.replace_dir(tmp, out)
    except OSError as exc:
        raise storage_error(out, exc.strerror or str(exc), f"{out} is left as it was") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts
