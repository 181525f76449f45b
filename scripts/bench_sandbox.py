#!/usr/bin/env python
"""Per-execution cost of the sandboxed python tool against a plain subprocess.

Runs a trivial snippet N times (default 100) four ways and prints median and p95 wall time of each:
  plain      `python -c SNIPPET` in a subprocess (no isolation at all), as a user would run it
  plain -S   `python -s -S -c SNIPPET`: the same interpreter flags as the sandbox (no site import), so that
             the difference to `cold` is the cost of the isolation itself: the baseline for the target
  cold       a fresh sandbox per run: start (cgroup, bwrap, seccomp, uid drop, interpreter), run, kill, clean up
             (what the first python call of an episode pays, and what a one-shot tool would pay every time)
  warm       one more cell in an already running sandbox (every later call of the episode: the python tool
             and CodeAct keep one interpreter per episode)
and the overhead of cold over `plain -S`. Target: median overhead at most 50 ms.

    .venv/bin/python scripts/bench_sandbox.py [--runs 100]
"""

import argparse
import statistics
import subprocess
import sys
import time

from pipeline.tools import isolation
from pipeline.tools.sandbox import Sandbox

SNIPPET = "print(1 + 1)"


def timed(variants: dict, runs: int) -> dict[str, list[float]]:
    """Wall times in ms, the variants interleaved run by run so that load from elsewhere hits all alike."""
    samples = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm the page cache
    for _ in range(runs):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return samples


def plain(*flags: str) -> None:
    out = subprocess.run([sys.executable, *flags, "-c", SNIPPET], capture_output=True, text=True, check=True).stdout
    assert out == "2\n"


def cold() -> None:
    with Sandbox() as box:
        assert box.run(SNIPPET).stdout == "2\n"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    runs = parser.parse_args().runs
    how = isolation.detect()
    print(f"sandbox: {how.mechanism}, isolation {how.report()['isolation']}" + (f" (lacks {', '.join(how.missing)})" if how.missing else ""))
    with Sandbox() as box:
        results = timed({"plain": plain, "plain -S": lambda: plain("-s", "-S"), "cold": cold,
                         "warm": lambda: box.run(SNIPPET)}, runs)
    print(f"{'':10}{'median ms':>10}{'p95 ms':>10}   ({runs} runs of {SNIPPET!r})")
    for name, samples in results.items():
        print(f"{name:10}{statistics.median(samples):>10.1f}{p95(samples):>10.1f}")
    median = statistics.median(results["cold"]) - statistics.median(results["plain -S"])
    tail = p95(results["cold"]) - p95(results["plain -S"])
    print(f"overhead of a cold sandbox over plain -S: median {median:.1f} ms, p95 {tail:.1f} ms "
          f"(target: median <= 50 ms: {'met' if median <= 50 else 'MISSED'})")


if __name__ == "__main__":
    main()
