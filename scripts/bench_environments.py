#!/usr/bin/env python
"""What an environment tool costs, on the example inventory (examples/): the figures that decide isolation.

  mcp per-episode   a fresh stdio server for an episode: start, list nothing, reset, first call, close
  mcp call          one more tools/call on a running stdio server (every later call of an episode)
  mcp shared        a call on the stage's shared server, reset between episodes
  python call       a call of a Python-module tool (in-process, in a thread with a timeout)

Prints median and p95 of each. No target: per-episode servers cost what starting the server costs (its
interpreter and imports), so a server that is slow to start is better `shared` with a `reset_tool`.

    .venv/bin/python scripts/bench_environments.py [--episodes 5] [--calls 50]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

from pipeline.environments import Toolbox  # noqa: E402
from pipeline.environments.mcp import McpEnvironment  # noqa: E402
from pipeline.environments.python_module import PythonEnvironment  # noqa: E402

SERVER = {"command": ["python", str(ROOT / "examples" / "inventory_server.py")], "reset_tool": "reset", "snapshot_tool": "snapshot",
          "max_sessions": 8, "call_timeout_s": 60, "startup_timeout_s": 60}
ARGUMENTS = {"item_id": "A1"}


def line(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"{name:<16} median {statistics.median(ms):8.2f} ms   p95 {ms[int(0.95 * (len(ms) - 1))]:8.2f} ms   ({len(ms)} runs)"


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def mcp(isolation: str, episodes: int, calls: int) -> tuple[list[float], list[float]]:
    environment = McpEnvironment("inv", {**SERVER, "isolation": isolation}, None)
    environment.open()
    toolbox, starts, later = Toolbox({"inv": environment}), [], []
    try:
        for _ in range(episodes):
            env = toolbox.env(["inv.get_item"], {}, 4000, {})
            tool = env.tools["inv.get_item"]
            began = time.perf_counter()
            tool.run(ARGUMENTS, env)
            first = time.perf_counter() - began
            later += [timed(lambda: tool.run(ARGUMENTS, env)) for _ in range(calls)]
            starts.append(first + timed(env.close))
    finally:
        toolbox.close()
    return starts, later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    starts, calls = mcp("per_episode", args.episodes, args.calls)
    print(line("mcp per-episode", starts))
    print(line("mcp call", calls))
    _, shared_calls = mcp("shared", args.episodes, args.calls)
    print(line("mcp shared", shared_calls))
    module = PythonEnvironment("inv", {"module": "inventory_tools", "isolation": "per_episode", "call_timeout_s": 30})
    module.open()
    env = Toolbox({"inv": module}).env(["inv.get_item"], {}, 4000, {})
    print(line("python call", [timed(lambda: env.tools["inv.get_item"].run(ARGUMENTS, env)) for _ in range(args.calls * 4)]))


if __name__ == "__main__":
    main()
