"""Counts over finished trajectory shards, read from their columns (never whole rows): what the sample and
verify stages report in their summaries, and `add_stats` to sum such counts."""

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import shards


def add_stats(total: dict, stats: dict) -> None:
    """Sum `stats` into `total`, nested dicts (and Counters) key by key."""
    for key, value in stats.items():
        if isinstance(value, dict):
            add_stats(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def shard_rows(path: Path) -> dict:
    return {"rows_out": shards.rows_of(path)}


def trajectory_stats(path: Path) -> dict:
    """Rows, passed, errors, tokens, cost, failed checks and the funnel of one trajectory shard."""
    table = shards.read_parquet(path)
    stats = {"rows_out": table.num_rows}
    stats["passed"] = int(pc.sum(pc.fill_null(table["passed"], False).cast("int64")).as_py() or 0)
    stats["errors"] = table.num_rows - table["error"].null_count
    usage = table["usage"].combine_chunks()
    for key in ("prompt_tokens", "completion_tokens", "cost_usd"):
        stats[key] = pc.sum(usage.field(key)).as_py() or 0
    waiting = int(pc.sum(pc.match_substring(pc.cast(table["meta"], pa.string()), '"transient":').cast("int64")).as_py() or 0)
    if waiting:
        stats["waiting_retry"] = waiting
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


def summed(paths: list[Path], stats_of) -> dict:
    total: dict = {}
    for path in paths:
        add_stats(total, stats_of(path))
    return total
