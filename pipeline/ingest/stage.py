"""The import: trajectories from elsewhere written as the run's `trajectories/` shards, so verify, curate and
publish run on them as on sampled rows. A run with an `import` config section has no synthesize or sample
stage: its plan is the source's records cut into shards of `run.rows_per_shard` (so the shard count, as for
any run, follows from the config), and the shards carry the sample stage's hash, which covers the `import`
section and the source's content. A record that cannot be mapped is counted and reported with where it is
(`file:line`); one that maps but breaks the schema is stored repaired and fails verify's `schema` check."""

import time
from pathlib import Path

from pipeline import atomic, shards
from pipeline.errors import UserError
from pipeline.ingest import CONVERSATIONS, build, source, trajforge
from pipeline.jsonutil import dotted_get
from pipeline import schema_repair as repair

FIELDS = ("ground_truth", "environment", "task_id", "domain", "meta", "usage", "temperature")
OUT_DIR = "trajectories"


def plan(config) -> list[list[dict]]:
    """Shards of record indices."""
    found = source.records(config["import"])
    if not found:
        raise UserError(f"import.path: {config['import']['path']} has no records to import")
    size = config["run"]["rows_per_shard"]
    items = [{"import": config["import"]["name"], "index": i} for i in range(len(found))]
    return [items[i:i + size] for i in range(0, len(items), size)]


def field_paths(spec: dict) -> dict[str, str]:
    """Where each task field is in a record: `import.fields`, else the field's own name (inside ATIF's
    `extra`, since an ATIF document allows no other keys)."""
    prefix = "extra." if spec["format"] == "atif" else ""
    return {name: spec["fields"].get(name, prefix + name) for name in FIELDS}


def _field(record, dotted: str):
    try:
        return dotted_get(record, dotted)
    except KeyError:
        return None


def map_record(record: source.Record, spec: dict, stage_hash: str) -> tuple[dict | None, str | None]:
    """(row, None), or (None, why the record cannot be mapped). A row that breaks the schema comes back
    repaired (its `schema` check will fail)."""
    if record.problem:
        return None, record.problem
    try:
        if spec["format"] == "trajforge":
            row = trajforge.row_of(record.raw)
        else:
            found = CONVERSATIONS[spec["format"]](record.raw)
            fields = {name: _field(record.raw, dotted) for name, dotted in field_paths(spec).items()}
            row = build.trajectory_row(found["messages"], found["tools"], fields, spec, record.where, stage_hash,
                                       found.get("model"), found.get("untrained"))
    except build.Unmappable as exc:
        return None, str(exc)
    return repair.repaired(row), None


def run_import(config, run_dir: Path, progress=lambda n: None) -> dict:
    """Write the import's shards (skipping those already written with this stage hash); the summary counts
    records, rows, repaired rows and unmappable records, with where each unmappable one is and why."""
    began = time.perf_counter()
    spec, stage_hash = config["import"], config.stage_hash("sample")
    shard_plan, found = plan(config), source.records(config["import"])
    out_dir = Path(run_dir) / OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.clean(out_dir)
    summary = {"stage": "import", "rows_in": len(found), "rows_out": 0, "repaired": 0, "unmappable": [], "shards": len(shard_plan),
               "written": 0, "reused": 0}
    for k, items in enumerate(shard_plan):
        rows = []
        for item in items:
            row, reason = map_record(found[item["index"]], spec, stage_hash)
            if row is None:
                summary["unmappable"].append({"where": found[item["index"]].where, "reason": reason})
            else:
                rows.append(row)
                summary["repaired"] += "schema_repair" in row["meta"]
        summary["rows_out"] += len(rows)
        path = out_dir / shards.shard_name(k)
        if shards.is_done(path, stage_hash):
            summary["reused"] += 1
        else:
            shards.write_shard(path, rows, "trajectory", stage_hash)
            summary["written"] += 1
        progress(len(items))
    summary["complete"] = shards.write_manifest(out_dir, "import", stage_hash, len(shard_plan))["complete"]
    summary["seconds"] = round(time.perf_counter() - began, 2)
    return summary


def format_summary(summary: dict, limit: int = 10) -> str:
    lines = [f"import: {summary['rows_in']} records -> {summary['rows_out']} rows in {summary['shards']} shard(s) "
             f"({summary['repaired']} break the schema and are stored repaired; {len(summary['unmappable'])} could not be mapped) "
             f"[reused {summary['reused']} finished shard(s), wrote {summary['written']}] {summary['seconds']:.1f}s"]
    for skipped in summary["unmappable"][:limit]:
        lines.append(f"  not mapped: {skipped['where']}: {skipped['reason']}")
    if len(summary["unmappable"]) > limit:
        lines.append(f"  ... and {len(summary['unmappable']) - limit} more (all in report.json)")
    return "\n".join(lines)
