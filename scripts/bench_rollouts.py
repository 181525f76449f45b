"""Monte Carlo step values against an endpoint with fixed latency: labelled steps per second, requests per
labelled step at N rollouts per step, and the share of requests answered from the cache on a re-run (must be
100%).

Synthesizes T arithmetic tasks and samples them with the program teacher (function_calling), then starts the fake
OpenAI-compatible endpoint (tests/fake_openai.py) in its own process with latency L and a concurrency cap C; it
follows each task's solution from whatever a prefix observed (tests/step_fakes.py), so every continuation runs to
its end. Verify with `verify.step_values` (N rollouts per step, client concurrency C) runs twice: from an empty
response cache, then again on the same run directory with verified/ removed. The last lines are
`labelled steps/s = X`, `requests per labelled step = X` and `re-run from cache = X%`.

    .venv/bin/python scripts/bench_rollouts.py --tasks 40 --rollouts 4 --latency 0.2 --concurrency 32
"""

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline import config as configlib  # noqa: E402
from pipeline import runner  # noqa: E402
from pipeline.shardjob import ShardSpec  # noqa: E402


def serve(run_dir: str, latency: float, cap: int, pipe) -> None:
    from tests.fake_openai import FakeOpenAI
    from tests.step_fakes import follower

    with FakeOpenAI(models=("follower",), responder=follower(Path(run_dir)), latency=latency, max_concurrency=cap) as server:
        pipe.send(server.port)
        pipe.recv()  # until the parent asks for the count
        pipe.send(len(server.completions))
        pipe.recv()  # until the parent says stop


def make_config(base_url: str, tasks: int, rollouts: int, concurrency: int) -> configlib.Config:
    data = {
        "run": {"name": "bench-rollouts", "rows_per_shard": 10},
        "endpoints": {"fake": {"base_url": base_url, "model": "follower", "max_concurrency": concurrency, "timeout_s": 60}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": tasks}]},
        "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["function_calling"]}]},
        "verify": {"step_values": {"teacher": {"endpoint": "fake", "temperature": 0.7}, "rollouts_per_step": rollouts}},
    }
    return configlib.Config(configlib.validate_data(data, "bench"), Path("bench.yaml"))


def verify(config: configlib.Config, run_dir: Path) -> tuple[float, dict]:
    began = time.perf_counter()
    (summary,) = runner.run_stages(["verify"], config, run_dir, ShardSpec(), echo=lambda _: None)
    return time.perf_counter() - began, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40, help="arithmetic tasks (2-4 tool steps and a final answer each)")
    parser.add_argument("--rollouts", type=int, default=4, help="N: rollouts per step")
    parser.add_argument("--latency", type=float, default=0.2, help="endpoint latency L in seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="client concurrency C (and the endpoint's cap)")
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="bench-rollouts-"))
    parent, child = multiprocessing.Pipe()
    server = None
    try:
        prepared = make_config("http://127.0.0.1:9/v1", args.tasks, args.rollouts, args.concurrency)
        runner.run_stages(["synthesize", "sample"], prepared, run_dir, ShardSpec(), echo=lambda _: None)
        server = multiprocessing.get_context("spawn").Process(target=serve, args=(str(run_dir), args.latency, args.concurrency, child), daemon=True)
        server.start()
        config = make_config(f"http://127.0.0.1:{parent.recv()}/v1", args.tasks, args.rollouts, args.concurrency)
        seconds, first = verify(config, run_dir)
        shutil.rmtree(run_dir / "verified")
        _, again = verify(config, run_dir)
        parent.send("count")
        served = parent.recv()
    finally:
        if server is not None:
            parent.send("stop")
            server.join(10)
        shutil.rmtree(run_dir, ignore_errors=True)
    steps = first["step_values"]["steps_labeled"]
    asked = again["requests"] + again["cache_hits"]
    print(f"T={args.tasks} N={args.rollouts} L={args.latency * 1000:.0f}ms C={args.concurrency} ({os.cpu_count()} CPUs): "
          f"{steps} steps labelled in {seconds:.2f}s with {first['requests']} requests (endpoint saw {served} in both runs)")
    print(f"labelled steps/s = {steps / seconds:.2f}")
    print(f"requests per labelled step = {first['requests'] / steps:.2f}")
    print(f"re-run from cache = {100 * again['cache_hits'] / asked:.1f}% ({again['requests']} requests, {again['cache_hits']} cache hits)")


if __name__ == "__main__":
    main()
