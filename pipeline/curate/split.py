"""Train/validation split by task id, so no task appears in both splits."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.curate import textsig


def task_positions(tasks: pa.Array, seed: int) -> np.ndarray:
    """A position in [0, 1) per task id, from a hash of the id and the seed."""
    mixed = textsig.fmix64(textsig.hash_strings(tasks) ^ textsig.fmix64(np.array([seed + 1], dtype=np.uint64)))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_splits(task_ids: pa.Array, validation_fraction: float, seed: int) -> np.ndarray:
    """'train' or 'validation' for each row, by its task id. Deterministic: a task's split depends only on its id
    and the seed; a run with two or more tasks gets at least one in each split when the fraction is above 0."""
    tasks = pc.unique(task_ids)
    position = task_positions(tasks, seed)
    validation = position < validation_fraction
    if len(tasks) > 1 and validation_fraction > 0:
        if not validation.any():
            validation[np.argmin(position)] = True  # small runs still get a validation split
        if validation.all():
            validation[np.argmax(position)] = False
    chosen = tasks.filter(pa.array(validation))
    return np.where(pc.is_in(task_ids, chosen).to_numpy(zero_copy_only=False), "validation", "train")
