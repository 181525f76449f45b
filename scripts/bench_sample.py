"""Throughput of the sample stage against an endpoint with fixed latency, beside a bare reference client.

Starts the fake OpenAI-compatible endpoint (tests/fake_openai.py) in its own process with latency L and a
concurrency cap of C, then in the same run:
- sample: the real sample stage (LLM teacher, react in chat mode) over N single-step tasks at client
  concurrency C (endpoint max_concurrency: C), from a fresh run directory (empty response cache);
- reference: bare openai.AsyncOpenAI (default transport) under an asyncio.Semaphore(C), the same prompts;
- ceiling: raw aiohttp posting the same request bodies, doing nothing else: what this endpoint on this
  machine delivers at concurrency C to a client that costs almost no CPU (the endpoint shares the machine's
  CPUs, so C/L itself may be out of reach).
For each it prints requests/s, the fraction of the limit C/L, and CPU seconds per call (this process and
its workers, not the endpoint's). The last lines are `sample/ceiling = X.XX` and `sample/reference = X.XX`.

    .venv/bin/python scripts/bench_sample.py --n 5000 --latency 0.2 --concurrency 64
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline import config as configlib  # noqa: E402
from pipeline import runner, shards  # noqa: E402
from pipeline.shardjob import ShardSpec  # noqa: E402
from pipeline.formats import FORMATS  # noqa: E402
from pipeline.sample.agent import start_episode  # noqa: E402


def serve(latency: float, cap: int, port_out) -> None:
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI(latency=latency, max_concurrency=cap) as server:
        port_out.send(server.port)
        port_out.recv()  # until the parent says stop


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_config(base_url: str, n: int, concurrency: int, rows_per_shard: int, workers: int) -> configlib.Config:
    data = {
        "run": {"name": "bench", "rows_per_shard": rows_per_shard, "workers": workers},
        "endpoints": {"fake": {"base_url": base_url, "model": "fake-model", "mode": "chat", "max_concurrency": concurrency, "timeout_s": 60}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": n}]},
        "sample": {"teachers": [{"name": "bench", "policy": "llm", "endpoint": "fake", "formats": ["react"], "max_steps": 1}]},
    }
    return configlib.Config(configlib.validate_data(data, "bench"), Path("bench.yaml"))


def bench_sample(config: configlib.Config, run_dir: Path) -> tuple[float, float, int]:
    runner.run_stages(["synthesize"], config, run_dir, ShardSpec(), echo=lambda _: None)
    began, cpu = time.perf_counter(), cpu_seconds()
    (summary,) = runner.run_stages(["sample"], config, run_dir, ShardSpec(), echo=lambda _: None)
    return time.perf_counter() - began, cpu_seconds() - cpu, summary["requests"]


def reference_prompts(run_dir: Path) -> list[list[dict]]:
    tasks = [t for p in sorted((run_dir / "tasks").glob("part-*.parquet")) for t in shards.read_shard(p, "task", validate=False)]
    return [start_episode(task, FORMATS["react"]).messages for task in tasks]


def bench_reference(base_url: str, prompts: list[list[dict]], concurrency: int, max_tokens: int) -> tuple[float, float, int]:
    import openai

    async def main():
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(messages):
            async with gate:
                reply = await client.chat.completions.create(model="fake-model", messages=messages, temperature=0.0, max_tokens=max_tokens, seed=0)
                return reply.choices[0].message.content

        await asyncio.gather(*(one(m) for m in prompts))
        await client.close()

    began, cpu = time.perf_counter(), cpu_seconds()
    asyncio.run(main())
    return time.perf_counter() - began, cpu_seconds() - cpu, len(prompts)


def bench_ceiling(base_url: str, prompts: list[list[dict]], concurrency: int, max_tokens: int) -> tuple[float, float, int]:
    import aiohttp

    async def main():
        gate = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def one(messages):
                body = {"model": "fake-model", "messages": messages, "temperature": 0.0, "max_tokens": max_tokens, "seed": 0}
                async with gate, session.post(base_url + "/chat/completions", json=body) as response:
                    return (await response.json())["choices"][0]["message"]["content"]

            await asyncio.gather(*(one(m) for m in prompts))

    began, cpu = time.perf_counter(), cpu_seconds()
    asyncio.run(main())
    return time.perf_counter() - began, cpu_seconds() - cpu, len(prompts)


def report(name: str, seconds: float, cpu: float, calls: int, limit: float) -> float:
    rate = calls / seconds
    print(f"{name:<10} {calls} calls in {seconds:6.2f}s  {rate:7.1f} requests/s  {rate / limit:5.3f} of C/L  {cpu / calls * 1000:6.3f} ms CPU per call")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="single-step tasks")
    parser.add_argument("--latency", type=float, default=0.2, help="endpoint latency L in seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="client concurrency C (and the endpoint's cap)")
    parser.add_argument("--rows-per-shard", type=int, default=250)
    parser.add_argument("--workers", type=int, default=1, help="processes running the sample stage (run.workers)")
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(args.latency, args.concurrency, child), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{parent.recv()}/v1"
    limit = args.concurrency / args.latency
    print(f"N={args.n} L={args.latency * 1000:.0f}ms C={args.concurrency} workers={args.workers}: "
          f"limit C/L = {limit:.1f} requests/s ({os.cpu_count()} CPUs)")
    run_dir = Path(tempfile.mkdtemp(prefix="bench-sample-"))
    try:
        config = make_config(base_url, args.n, args.concurrency, args.rows_per_shard, args.workers)
        sample = report("sample", *bench_sample(config, run_dir), limit)
        prompts = reference_prompts(run_dir)
        max_tokens = config["sample"]["teachers"][0]["max_tokens"]
        reference = report("reference", *bench_reference(base_url, prompts, args.concurrency, max_tokens), limit)
        ceiling = report("ceiling", *bench_ceiling(base_url, prompts, args.concurrency, max_tokens), limit)
    finally:
        parent.send("stop")
        server.join(10)
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"sample/ceiling = {sample / ceiling:.2f}")
    print(f"sample/reference = {sample / reference:.2f}")


if __name__ == "__main__":
    main()
