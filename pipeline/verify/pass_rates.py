"""Pass rates per task: of a task's samples by LLM teachers, the share that passed verification, written on
every row of the task as `meta.pass_rate = {rate, passed, samples}` (null rate when no LLM teacher sampled it).

Sample shard k holds every trajectory of task shard k, so one verified shard has all the samples of its tasks.
Only plain samples count: program-teacher rows are gold (they pass by construction and say nothing about how
hard the task is for a model), self-reflected copies and feedback retries are derived from a sample, and a row
waiting for a retry after a transient failure has no outcome yet. Curate
filters and mixes by the band a rate falls in (pipeline/curate/scan.py); the card shows the distribution.
"""

def is_model_sample(row: dict) -> bool:
    meta = row.get("meta") or {}
    return row["source"].startswith("llm:") and not ({"reflection", "parent_id", "transient"} & set(meta))


def pass_rates(rows: list[dict]) -> dict[str, dict]:
    """task id -> {rate, passed, samples} over its model samples."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        seen = counts.setdefault(row["task_id"], [0, 0])
        if is_model_sample(row):
            seen[0] += bool(row["passed"])
            seen[1] += 1
    return {task: {"rate": passed / samples if samples else None, "passed": passed, "samples": samples}
            for task, (passed, samples) in counts.items()}


def annotate(rows: list[dict]) -> list[dict]:
    """The rows with their task's pass rate in meta."""
    rates = pass_rates(rows)
    return [{**row, "meta": {**(row.get("meta") or {}), "pass_rate": rates[row["task_id"]]}} for row in rows]

