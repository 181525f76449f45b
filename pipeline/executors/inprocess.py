"""The in-process executor: every shard of the stage in this process, on one event loop (asyncio), up to the
stage's `shards_in_flight` at once; a tqdm bar counts rows.

STYLE: an executor only decides where `job.run_all` runs and shows progress; reading, processing, writing
and done-ness of a shard are the shard job's (pipeline/shardjob.py).
"""

import asyncio

from tqdm import tqdm


def run(job, todo: list[int], options: dict) -> dict:
    with tqdm(total=job.expected_rows(todo), desc=job.name, unit="row", dynamic_ncols=True) as bar:
        return asyncio.run(job.run_all(todo, bar.update))
