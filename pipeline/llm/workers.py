"""How many worker processes a row stage's LLM traffic needs on this machine (for `run.workers: auto`).

One event loop serves a sample row in about 0.7 ms of CPU (the lean request path, the cache, the episode:
docs/llm.md), so at about half a core, where replies rarely wait their turn, it keeps up with some 600
requests per second. A stage's endpoints ask for at most max_concurrency / latency requests per second;
the latency is not known before the run, so it is the endpoint's target_latency_s or a fast hosted
model's half second. Worker processes cost a start-up each (imports, endpoint checks) and share the CPUs
with tools, shard I/O and often the server itself: at most half of the CPUs go to them.

    workers = choose_workers(config["run"]["workers"], config["endpoints"], stage_endpoints)
"""

import math
import os

PROCESS_REQUESTS_PER_S = 600
ASSUMED_LATENCY_S = 0.5


def choose_workers(setting, profiles: dict, names, cpus: int | None = None) -> int:
    """`run.workers` as a number of processes: the number itself, or for "auto" enough processes for the
    endpoints' combined request rate, at least 1 and at most half of the CPUs."""
    if setting != "auto":
        return int(setting)
    rate = sum(profiles[name]["max_concurrency"] / (profiles[name].get("target_latency_s") or ASSUMED_LATENCY_S) for name in set(names))
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus // 2, math.ceil(rate / PROCESS_REQUESTS_PER_S)))
