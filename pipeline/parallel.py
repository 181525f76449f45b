"""Run a row stage's shards in several worker processes (`run.workers`), on one machine.

One event loop runs out of CPU long before an endpoint runs out of capacity (the OpenAI SDK alone costs
about a millisecond of CPU per call), so past a few hundred requests per second the work is split across
processes, shard by shard: worker i takes shards todo[i], todo[i + W], ... Each worker opens the stage's
endpoints itself with 1/W of their concurrency and rate limits, and writes its own shards (shards are
atomic and independent, as under `--shard`). Workers report progress and their stats over a queue.
"""

import asyncio
import multiprocessing
import queue as queuelib
import traceback
from pathlib import Path

from pipeline.errors import UserError

POLL_S = 1.0


def _worker(name: str, data: dict, config_path: str, run_dir: str, todo: list[int], queue) -> None:
    from pipeline import config as configlib
    from pipeline import runner

    try:
        job = runner.ShardJob.build(name, configlib.Config(data, Path(config_path)), Path(run_dir))
        queue.put(("done", asyncio.run(job.run_all(todo, lambda n: queue.put(("progress", n))))))
    except (UserError, KeyboardInterrupt) as exc:
        queue.put(("error", exc))
    except BaseException as exc:
        queue.put(("error", RuntimeError("a worker process failed:\n" + "".join(traceback.format_exception(exc)))))


def run(name: str, config, run_dir: Path, todo: list[int], workers: int, progress) -> dict:
    """Run `todo` in `workers` processes; returns their summed stats. The first error stops the others."""
    from pipeline.ray_executor import share_endpoint_limits
    from pipeline.runner import add_stats

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    data = share_endpoint_limits(config.data, workers)
    processes = [context.Process(target=_worker, args=(name, data, str(config.path), str(run_dir), todo[i::workers], queue), daemon=True)
                 for i in range(workers)]
    for process in processes:
        process.start()
    stats, finished = {}, 0
    try:
        while finished < workers:
            try:
                kind, value = queue.get(timeout=POLL_S)
            except queuelib.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a worker process died (exit code {dead[0].exitcode})") from None
                continue
            if kind == "progress":
                progress(value)
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
