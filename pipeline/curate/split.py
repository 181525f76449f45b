"""Train/validation split by task id, so no task appears in both splits."""

from pipeline.jsonutil import content_hash


def assign_splits(rows: list[dict], validation_fraction: float, seed: int) -> list[dict]:
    """Set `split` on each row. Deterministic: a task's split depends only on its id and the seed."""
    tasks = sorted({r["task_id"] for r in rows})
    position = {t: int(content_hash(seed, t), 16) / 16**16 for t in tasks}
    validation = {t for t in tasks if position[t] < validation_fraction}
    if validation_fraction > 0 and not validation and len(tasks) > 1:
        validation = {min(tasks, key=position.get)}  # small runs still get a validation split
    if len(validation) == len(tasks) and len(tasks) > 1:
        validation.discard(max(tasks, key=position.get))
    return [{**r, "split": "validation" if r["task_id"] in validation else "train"} for r in rows]
