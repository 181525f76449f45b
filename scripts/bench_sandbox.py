#!/usr/bin/env python
"""Per-episode cost of the sandboxed python tool against a plain subprocess.

Runs a trivial snippet N times (default 100) each way and prints median and p95 wall time:
  plain      `python -c SNIPPET` in a subprocess (no isolation at all), as a user would run it
  plain -S   `python -s -S -c SNIPPET`: the same interpreter flags as the sandbox (no site import): the
             baseline for the target
  cold       what an episode's first cell costs: take a sandbox, run the cell, close the sandbox. Sandboxes are
             started ahead by the pool (pipeline/tools/pool.py); as on an idle machine, where episodes do not
             start faster than sandboxes do, each run waits (untimed) until the pool has one ready
  start      the same with no pool: start (cgroup, bwrap, seccomp, uid drop, interpreter), run, kill, clean
             up; the work the pool does ahead of time, and what the cold case costs when it cannot keep up
  warm       one more cell in an already running sandbox (every later call of the episode)
and the overhead of cold and start over `plain -S`. Target: cold median overhead at most 30 ms.

    .venv/bin/python scripts/bench_sandbox.py [--runs 100]
"""

import argparse
import statistics
import subprocess
import sys
import time

from pipeline.tools import pool
from pipeline.tools.limits import Limits
from pipeline.tools.sandbox import Sandbox, detect

SNIPPET = "print(1 + 1)"
TARGET_MS = 30


def plain(*flags: str) -> None:
    out = subprocess.run([sys.executable, *flags, "-c", SNIPPET], capture_output=True, text=True, check=True).stdout
    assert out == "2\n"


def one_cell(pooled: bool) -> None:
    with Sandbox(pooled=pooled) as box:
        assert box.run(SNIPPET).stdout == "2\n"


def pool_ready() -> None:
    """Untimed: wait until the pool holds a started sandbox."""
    pool.LAUNCHER.prepare(Limits(), detect())
    while pool.LAUNCHER.ready_count(Limits(), detect()) == 0:
        time.sleep(0.005)


def timed(variants: dict, runs: int) -> dict[str, list[float]]:
    """Wall times in ms, the variants interleaved run by run so that load from elsewhere hits all alike.
    A variant is (prepare, run): only `run` is timed."""
    samples = {name: [] for name in variants}
    for prepare, fn in variants.values():
        prepare()
        fn()  # warm the page cache
    for _ in range(runs):
        for name, (prepare, fn) in variants.items():
            prepare()
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    runs = parser.parse_args().runs
    how = detect()
    print(f"sandbox: {how.mechanism}, isolation {how.report()['isolation']}" + (f" (lacks {', '.join(how.missing)})" if how.missing else ""))
    nothing = lambda: None  # noqa: E731
    with Sandbox() as box:
        results = timed({"plain": (nothing, plain), "plain -S": (nothing, lambda: plain("-s", "-S")),
                         "cold": (pool_ready, lambda: one_cell(True)), "start": (nothing, lambda: one_cell(False)),
                         "warm": (nothing, lambda: box.run(SNIPPET))}, runs)
    print(f"{'':10}{'median ms':>10}{'p95 ms':>10}   ({runs} runs of {SNIPPET!r})")
    for name, samples in results.items():
        print(f"{name:10}{statistics.median(samples):>10.1f}{p95(samples):>10.1f}")
    baseline = statistics.median(results["plain -S"])
    for name in ("cold", "start"):
        print(f"overhead of {name} over plain -S: median {statistics.median(results[name]) - baseline:.1f} ms, "
              f"p95 {p95(results[name]) - p95(results['plain -S']):.1f} ms")
    cold = statistics.median(results["cold"]) - baseline
    print(f"target: a cold episode start at most {TARGET_MS} ms over plain -S (median): {'met' if cold <= TARGET_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
