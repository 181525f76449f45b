"""The worker-process executor (`run.workers: N`): a row stage's shards in N processes on this machine.

One event loop runs out of CPU long before an endpoint runs out of capacity (the OpenAI SDK alone costs
about a millisecond of CPU per call), so past a few hundred requests per second the work is split across
processes, shard by shard: worker i takes shards todo[i], todo[i + W], ... Each worker rebuilds the shard job
from plain data (the config dict, the run directory) with 1/W of every endpoint's concurrency and rate
limits, and writes its own shards (shards are atomic and independent, as under `--shard`). Workers report
progress and their stats over a queue.

STYLE: an executor only decides where `job.run_all` runs and shows progress; reading, processing, writing
and done-ness of a shard are the shard job's (pipeline/shardjob.py).
"""

import asyncio
import multiprocessing
import queue as queuelib
import traceback
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import UserError
from pipeline.llm.endpoints import share_endpoint_limits
from pipeline.rowstats import add_stats

POLL_S = 1.0


def _worker(name: str, data: dict, config_path: str, run_dir: str, todo: list[int], queue) -> None:
    from pipeline import config as configlib
    from pipeline.shardjob import ShardJob

    try:
        job = ShardJob.build(name, configlib.Config(data, Path(config_path)), Path(run_dir))
        queue.put(("done", asyncio.run(job.run_all(todo, lambda n: queue.put(("progress", n))))))
    except (UserError, KeyboardInterrupt) as exc:
        queue.put(("error", exc))
    except BaseException as exc:
        queue.put(("error", RuntimeError("a worker process failed:\n" + "".join(traceback.format_exception(exc)))))


def run(job, todo: list[int], options: dict) -> dict:
    """Run `todo` in run.workers processes; returns their summed stats. The first error stops the others."""
    workers = min(options["workers"], len(todo))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    data = share_endpoint_limits(job.config.data, workers)
    processes = [context.Process(target=_worker, args=(job.name, data, str(job.config.path), str(job.run_dir), todo[i::workers], queue),
                                 daemon=True) for i in range(workers)]
    for process in processes:
        process.start()
    stats, finished = {}, 0
    try:
        with tqdm(total=job.expected_rows(todo), desc=job.name, unit="row", dynamic_ncols=True) as bar:
            while finished < workers:
                try:
                    kind, value = queue.get(timeout=POLL_S)
                except queuelib.Empty:
                    dead = [p for p in processes if p.exitcode not in (None, 0)]
                    if dead:
                        raise RuntimeError(f"a worker process died (exit code {dead[0].exitcode})") from None
                    continue
                if kind == "progress":
                    bar.update(value)
                elif kind == "done":
                    add_stats(stats, value)
                    finished += 1
                else:
                    raise value
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    return stats
