"""Adaptive samples per task: a teacher with `stop_after_passing: M` samples a task until M of its samples
pass the program checks (`verify.checks`, run at sample time: verify decides passing, but the stop rule
cannot wait for it), at most `samples_per_task` times.

Samples go in waves of as many as are still needed (M - passing so far), so no more than M pass, an easy task
costs M samples and a hard one the cap. Which samples run depends only on their outcomes, in sample order, so
a re-run runs the same ones (from the cache). Every row of the group records `meta.adaptive`.
"""

import asyncio


async def until_passing(sample, passes, target: int, cap: int) -> list[dict] | None:
    """`sample(k)` -> the rows of sample k (its own row first) or None when it waits on a Batch API round;
    `passes(row)` -> whether the program checks pass it (synchronous: run in a thread). The group's rows, or
    None while some sample waits."""
    done: list[list[dict]] = []
    passing = 0
    while len(done) < cap and passing < target:
        wave = range(len(done), min(cap, len(done) + target - passing))
        results = await asyncio.gather(*(sample(k) for k in wave))
        if any(rows is None for rows in results):
            return None
        verdicts = await asyncio.gather(*(asyncio.to_thread(passes, rows[0]) for rows in results))
        passing += sum(verdicts)
        done += results
    record = {"stop_after_passing": target, "cap": cap, "sampled": len(done), "passing": passing}
    return [{**row, "meta": {**row["meta"], "adaptive": record}} for rows in done for row in rows]
