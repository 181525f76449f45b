"""Throughput of the sample stage against fake endpoints under load, beside raw aiohttp clients, in one run.

Each scenario starts the fake OpenAI-compatible endpoint (tests/fake_openai.py) in its own process and runs
the real sample stage (LLM teacher, react in chat mode, N single-step tasks) from a fresh run directory
(empty response cache) at client concurrency C:
- base: latency L, the endpoint queues beyond C; beside it the *floor* (raw aiohttp posting the same request
  bodies, doing nothing else: what this endpoint on this machine delivers at C to a client that costs
  almost no CPU) and bare openai.AsyncOpenAI. Ideal: C/L.
- cap: the endpoint answers 429 with `Retry-After` at once beyond `--cap` requests in flight (a provider's
  concurrency limit), the client asks for C with max_retries 5; beside it a raw aiohttp client that keeps
  its slot while it waits Retry-After. Ideal: cap/L.
- slowdown: no 429s, but latency grows with load, L * max(1, in_flight / knee)^2 (a self-hosted server
  that thrashes past its knee), once without and once with `target_latency_s`. Ideal: knee/L.
Per scenario it prints completed rows per second, the fraction of the ideal, requests per row (as the
endpoint counted them, 429s included), rows lost (rows whose request failed for good), CPU per row (this
process and its workers, not the endpoint's) and the concurrency the client settled at. The last line is
`sample/floor = X.XX` for the base scenario.

    .venv/bin/python scripts/bench_sample.py --n 2000 --latency 0.2 --concurrency 64 --cap 32
"""

import argparse
import asyncio
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline import config as configlib  # noqa: E402
from pipeline import runner, shards  # noqa: E402
from pipeline.formats import FORMATS  # noqa: E402
from pipeline.sample.agent import start_episode  # noqa: E402
from pipeline.shardjob import ShardSpec  # noqa: E402


@dataclass
class Load:
    """How the fake endpoint behaves: base latency, queueing cap, 429 cap, knee of a thrashing server."""

    latency: float
    queue_cap: int | None = None
    rate_limit_cap: int | None = None
    knee: int | None = None


class Thrashing:
    """Latency that grows with the square of the load past the knee (picklable for the server process)."""

    def __init__(self, latency: float, knee: int):
        self.latency, self.knee = latency, knee

    def __call__(self, in_flight: int) -> float:
        return self.latency * max(1.0, in_flight / self.knee) ** 2


def serve(load: Load, pipe) -> None:
    from tests.fake_openai import FakeOpenAI

    latency = Thrashing(load.latency, load.knee) if load.knee else load.latency
    with FakeOpenAI(latency=latency, max_concurrency=load.queue_cap, rate_limit_cap=load.rate_limit_cap) as server:
        pipe.send(server.port)
        while pipe.recv() == "count":
            pipe.send((len(server.completions), server.rate_limited))
            server.completions.clear()
            server.rate_limited = 0


class Endpoint:
    """A fake endpoint in its own process (so its CPU is not this process's)."""

    def __init__(self, load: Load):
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=serve, args=(load, child), daemon=True)

    def __enter__(self) -> "Endpoint":
        self.process.start()
        self.base_url = f"http://127.0.0.1:{self.pipe.recv()}/v1"
        return self

    def counts(self) -> tuple[int, int]:
        """Requests received and 429s sent since the last call."""
        self.pipe.send("count")
        return self.pipe.recv()

    def __exit__(self, *exc) -> None:
        self.pipe.send("stop")
        self.process.join(10)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_config(base_url: str, n: int, rows_per_shard: int, workers: int, **endpoint) -> configlib.Config:
    data = {
        "run": {"name": "bench", "rows_per_shard": rows_per_shard, "workers": workers},
        "endpoints": {"fake": {"base_url": base_url, "model": "fake-model", "mode": "chat", "timeout_s": 60, **endpoint}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": n}]},
        "sample": {"teachers": [{"name": "bench", "policy": "llm", "endpoint": "fake", "formats": ["react"], "max_steps": 1}]},
    }
    return configlib.Config(configlib.validate_data(data, "bench"), Path("bench.yaml"))


@dataclass
class Result:
    seconds: float
    cpu: float
    rows: int
    lost: int
    requests: int
    concurrency: str = ""


def bench_sample(endpoint: Endpoint, tasks_dir: Path, args, **settings) -> Result:
    config = make_config(endpoint.base_url, args.n, args.rows_per_shard, args.workers, **settings)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-sample-"))
    try:
        shutil.copytree(tasks_dir, run_dir / "tasks")
        endpoint.counts()  # the preflight's requests are not the stage's
        began, cpu = time.perf_counter(), cpu_seconds()
        runner.preflight(["sample"], config, {"name": "local"})  # what `trajforge sample` does first
        (summary,) = runner.run_stages(["sample"], config, run_dir, ShardSpec(), echo=lambda _: None)
        seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    settled = summary["endpoints"]["fake"]["concurrency"]
    return Result(seconds, cpu, summary["rows_out"], summary["errors"], endpoint.counts()[0], str(settled))


def bench_bare_openai(endpoint: Endpoint, prompts: list[list[dict]], concurrency: int, max_tokens: int) -> Result:
    import openai

    async def main():
        client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="unused", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(messages):
            async with gate:
                reply = await client.chat.completions.create(model="fake-model", messages=messages, temperature=0.0, max_tokens=max_tokens, seed=0)
                return reply.choices[0].message.content

        await asyncio.gather(*(one(m) for m in prompts))
        await client.close()

    return timed(main, endpoint, len(prompts))


def bench_raw(endpoint: Endpoint, prompts: list[list[dict]], concurrency: int, max_tokens: int, max_retries: int = 0) -> Result:
    """Raw aiohttp under a semaphore; a 429 is retried after Retry-After while keeping the slot."""
    import aiohttp

    lost = 0

    async def main():
        nonlocal lost
        gate = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def one(messages):
                nonlocal lost
                body = {"model": "fake-model", "messages": messages, "temperature": 0.0, "max_tokens": max_tokens, "seed": 0}
                async with gate:
                    for _ in range(max_retries + 1):
                        async with session.post(endpoint.base_url + "/chat/completions", json=body) as response:
                            if response.status != 429:
                                return (await response.json())["choices"][0]["message"]["content"]
                            await asyncio.sleep(float(response.headers.get("Retry-After", 1)))
                    lost += 1

            await asyncio.gather(*(one(m) for m in prompts))

    result = timed(main, endpoint, len(prompts))
    result.lost = lost
    return result


def timed(main, endpoint: Endpoint, rows: int) -> Result:
    endpoint.counts()
    began, cpu = time.perf_counter(), cpu_seconds()
    asyncio.run(main())
    return Result(time.perf_counter() - began, cpu_seconds() - cpu, rows, 0, endpoint.counts()[0])


def report(name: str, result: Result, ideal: float) -> float:
    rate = (result.rows - result.lost) / result.seconds
    settled = f"  settled at C={result.concurrency}" if result.concurrency else ""
    print(f"  {name:<22} {rate:7.1f} rows/s  {rate / ideal:5.3f} of ideal  {result.requests / result.rows:5.2f} requests/row  "
          f"{result.lost:4d} rows lost  {result.cpu / result.rows * 1000:6.3f} ms CPU/row{settled}", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="single-step tasks")
    parser.add_argument("--latency", type=float, default=0.2, help="endpoint latency L in seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="client concurrency C (max_concurrency)")
    parser.add_argument("--cap", type=int, default=32, help="requests in flight the cap scenario's endpoint allows (429 beyond)")
    parser.add_argument("--knee", type=int, default=32, help="in-flight requests past which the slowdown endpoint thrashes")
    parser.add_argument("--target-latency", type=float, default=0.3, help="target_latency_s in the slowdown scenario")
    parser.add_argument("--rows-per-shard", type=int, default=250)
    parser.add_argument("--workers", type=int, default=1, help="processes running the sample stage (run.workers)")
    parser.add_argument("--scenarios", default="base,cap,slowdown", help="comma-separated subset of base,cap,slowdown")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    C, L = args.concurrency, args.latency
    print(f"N={args.n} L={L * 1000:.0f}ms C={C} workers={args.workers} ({os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start)", flush=True)

    template = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    try:
        config = make_config("http://127.0.0.1:1/v1", args.n, args.rows_per_shard, 1)
        runner.run_stages(["synthesize"], config, template, ShardSpec(), echo=lambda _: None)
        tasks = [t for p in sorted((template / "tasks").glob("part-*.parquet")) for t in shards.read_shard(p, "task", validate=False)]
        prompts = [start_episode(task, FORMATS["react"]).messages for task in tasks]
        max_tokens = config["sample"]["teachers"][0]["max_tokens"]
        tasks_dir = template / "tasks"
        ratio = None
        if "base" in scenarios:
            print(f"base: the endpoint queues beyond C; ideal C/L = {C / L:.1f}/s")
            with Endpoint(Load(L, queue_cap=C)) as endpoint:
                sample = report("sample", bench_sample(endpoint, tasks_dir, args, max_concurrency=C), C / L)
                report("bare AsyncOpenAI", bench_bare_openai(endpoint, prompts, C, max_tokens), C / L)
                floor = report("floor (raw aiohttp)", bench_raw(endpoint, prompts, C, max_tokens), C / L)
                ratio = sample / floor
        if "cap" in scenarios:
            ideal = args.cap / L
            print(f"cap: 429 with Retry-After: 1 beyond {args.cap} in flight, client C={C}, max_retries 5; ideal cap/L = {ideal:.1f}/s")
            with Endpoint(Load(L, rate_limit_cap=args.cap)) as endpoint:
                report("sample", bench_sample(endpoint, tasks_dir, args, max_concurrency=C, max_retries=5), ideal)
                report("raw aiohttp, keeps slot", bench_raw(endpoint, prompts, C, max_tokens, max_retries=5), ideal)
        if "slowdown" in scenarios:
            ideal = args.knee / L
            print(f"slowdown: latency L*max(1, in_flight/{args.knee})^2, no 429s, client C={C}; ideal knee/L = {ideal:.1f}/s")
            with Endpoint(Load(L, knee=args.knee)) as endpoint:
                report("sample", bench_sample(endpoint, tasks_dir, args, max_concurrency=C), ideal)
                report(f"sample, target {args.target_latency}s", bench_sample(endpoint, tasks_dir, args, max_concurrency=C,
                                                                            target_latency_s=args.target_latency), ideal)
                report("floor (raw aiohttp)", bench_raw(endpoint, prompts, C, max_tokens), ideal)
    finally:
        shutil.rmtree(template, ignore_errors=True)
    if ratio is not None:
        print(f"sample/floor = {ratio:.2f}")


if __name__ == "__main__":
    main()
