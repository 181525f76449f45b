"""Exact deduplication: the same format, normalized instruction and actions is the same trajectory."""

import re

from pipeline.jsonutil import content_hash


def exact_key(row: dict) -> str:
    instruction = re.sub(r"\s+", " ", row["instruction"].strip().casefold())
    actions = [(s["tool_name"], s["tool_arguments"]) for s in row["steps"] if s["action_type"] != "final_answer"]
    return content_hash(row["format"], instruction, actions, (row.get("final_answer") or "").strip().casefold())


def drop_exact_duplicates(rows: list[dict]) -> tuple[list[dict], int]:
    """Keep the best-scoring row of each key (ties broken by id); return (kept, removed count)."""
    best: dict[str, dict] = {}
    for row in rows:
        key = exact_key(row)
        current = best.get(key)
        if current is None or ((row["score"] or 0), current["id"]) > ((current["score"] or 0), row["id"]):
            best[key] = row
    kept = sorted(best.values(), key=lambda r: r["id"])
    return kept, len(rows) - len(kept)
