"""Rate limits and load against a fake OpenAI-compatible server over real HTTP: a 429 storm loses no row and
its retries are spread, never earlier than Retry-After; one 429 cools the whole endpoint down; the adaptive
concurrency drops under 429s (and rate-limit headers, and a latency target) and recovers; `run.workers: auto`."""

import asyncio
import json
import time
from collections import Counter

import pytest
import yaml

from pipeline import cli
from pipeline.llm.cache import ResponseCache
from pipeline.llm.client import LLMClient, LLMError
from pipeline.llm.concurrency import AdaptiveConcurrency
from pipeline.llm.http import env_proxy
from pipeline.llm.workers import choose_workers
from tests.fake_openai import FakeOpenAI, Fault, calculator_solver
from tests.test_llm_client import profile


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def ask_many(server, tmp_path, prompts: list[str], **overrides):
    """Send one chat request per prompt with one client; returns (replies or exceptions, client)."""

    async def run():
        client = LLMClient("fake", profile(server, **overrides), ResponseCache(tmp_path / "cache.sqlite"))
        try:
            messages = [[{"role": "user", "content": p}] for p in prompts]
            return await asyncio.gather(*(client.chat(m, sample_key=[p]) for m, p in zip(messages, prompts)), return_exceptions=True), client
        finally:
            await client.close()

    return asyncio.run(run())


def arrivals_by_prompt(server) -> dict[str, list[float]]:
    seen = {}
    for _, body, at in server.completions:
        seen.setdefault(body["messages"][0]["content"], []).append(at)
    return seen


def test_a_429_storm_loses_no_row_and_its_retries_are_spread_never_before_retry_after(tmp_path):
    with FakeOpenAI(latency=0.05, rate_limit_cap=4, retry_after="1") as server:
        prompts = [f"q{i}" for i in range(40)]
        results, client = ask_many(server, tmp_path, prompts, max_concurrency=16, max_retries=1)
        assert [r for r in results if not hasattr(r, "text")] == []  # max_retries 1 alone would have lost rows
        assert server.rate_limited >= 12  # 16 sent at once against a cap of 4
        retried = {p: times for p, times in arrivals_by_prompt(server).items() if len(times) > 1}
        first_gaps = [times[1] - times[0] for times in retried.values()]
        assert min(first_gaps) >= 0.99  # Retry-After: 1, never undercut
        buckets = Counter(int(times[1] * 10) for times in retried.values())  # 100 ms windows
        assert len(buckets) >= 3 and max(buckets.values()) <= len(retried) / 2  # not in lockstep


def test_rate_limited_requests_go_on_past_max_retries_until_the_patience_runs_out(server, tmp_path):
    server.faults += [Fault(429, {"Retry-After": "0"})] * 3
    (reply,), client = ask_many(server, tmp_path, ["patient"], max_retries=0)
    assert reply.text and len(server.completions) == 4 and client.stats["rate_limited"] == 3
    server.faults += [Fault(429, {"Retry-After": "0"})] * 3
    (error,), client = ask_many(server, tmp_path, ["impatient"], max_retries=1, rate_limit_patience_s=0)
    assert isinstance(error, LLMError) and error.kind == "rate_limit" and error.status == 429
    assert len(server.completions) == 4 + 2 and client.stats["failed"] == 1


def test_a_retry_after_past_the_patience_gives_up_at_once(server, tmp_path):
    server.faults.append(Fault(429, {"Retry-After": "3600"}))
    start = time.monotonic()
    (error,), _ = ask_many(server, tmp_path, ["later"], rate_limit_patience_s=60)
    assert isinstance(error, LLMError) and error.kind == "rate_limit" and time.monotonic() - start < 5


def test_one_429_holds_back_every_request_to_the_endpoint_until_retry_after(server, tmp_path):
    server.faults.append(Fault(429, {"Retry-After": "1"}))

    async def run():
        client = LLMClient("fake", profile(server, max_concurrency=8), ResponseCache(tmp_path / "cache.sqlite"))
        try:
            first = asyncio.ensure_future(client.chat([{"role": "user", "content": "first"}], sample_key=["first"]))
            while not client.stats["rate_limited"]:  # until the 429 is in
                await asyncio.sleep(0.005)
            await client.chat([{"role": "user", "content": "second"}], sample_key=["second"])
            await first
        finally:
            await client.close()

    asyncio.run(run())
    seen = arrivals_by_prompt(server)
    assert seen["second"][0] - seen["first"][0] >= 0.99  # the second never got a 429 itself, yet waited


def test_concurrency_drops_under_429s_and_recovers_when_they_stop(tmp_path):
    async def run(server):
        client = LLMClient("fake", profile(server, max_concurrency=16), ResponseCache(tmp_path / "cache.sqlite"))
        try:
            await asyncio.gather(*(client.chat([{"role": "user", "content": f"a{i}"}], sample_key=[i]) for i in range(40)))
            low = client.concurrency.limit
            server.rate_limit_cap, server.peak_in_flight = None, 0
            await asyncio.gather(*(client.chat([{"role": "user", "content": f"b{i}"}], sample_key=[i]) for i in range(600)))
            return low, client.concurrency.limit
        finally:
            await client.close()

    with FakeOpenAI(latency=0.02, rate_limit_cap=4, retry_after="0.3") as server:
        low, recovered = asyncio.run(run(server))
        assert low <= 4 and recovered >= 12 and server.peak_in_flight >= 12


def test_remaining_requests_header_lowers_the_concurrency(server, tmp_path):
    server.faults += [Fault(200, {"x-ratelimit-remaining-requests": "0"})] * 40
    results, client = ask_many(server, tmp_path, [f"h{i}" for i in range(40)], max_concurrency=16)
    assert all(hasattr(r, "text") for r in results)
    assert client.concurrency.limit < 16 * 0.95


def test_latency_target_backs_off_on_a_server_that_slows_down_under_load(tmp_path):
    with FakeOpenAI(latency=lambda in_flight: 0.01 * in_flight) as server:
        _, untargeted = ask_many(server, tmp_path, [f"u{i}" for i in range(150)], max_concurrency=32)
        loaded_peak, server.peak_in_flight = server.peak_in_flight, 0
        results, targeted = ask_many(server, tmp_path, [f"t{i}" for i in range(150)], max_concurrency=32, target_latency_s=0.08)
    assert all(hasattr(r, "text") for r in results)
    assert loaded_peak == 32 and untargeted.concurrency.settled() == 32
    assert targeted.concurrency.settled() <= 16 and targeted.concurrency.limit <= 16  # about 8 keeps replies near 0.08 s


def test_a_cancelled_waiter_gives_its_slot_back():
    async def run():
        pacer = AdaptiveConcurrency(1)
        await pacer.acquire(0.0)
        waiting = asyncio.ensure_future(pacer.acquire(1.0))
        await asyncio.sleep(0)
        waiting.cancel()
        pacer.failed()
        await asyncio.wait_for(pacer.acquire(2.0), 1)  # the slot is free, not held by the cancelled waiter
        return pacer.in_flight

    assert asyncio.run(run()) == 1


def test_slots_go_to_the_oldest_request_first():
    async def run():
        pacer, order = AdaptiveConcurrency(1), []
        await pacer.acquire(0.0)

        async def one(priority):
            await pacer.acquire(priority)
            order.append(priority)
            pacer.failed()

        waiting = [asyncio.ensure_future(one(p)) for p in (3.0, 1.0, 2.0)]
        await asyncio.sleep(0)
        pacer.failed()
        await asyncio.gather(*waiting)
        return order

    assert asyncio.run(run()) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("url, expected", [("http://127.0.0.1:8000/v1", None), ("https://api.example.com/v1", "http://proxy:3128")])
def test_the_request_path_honours_proxy_variables(monkeypatch, url, expected):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert env_proxy(url) == expected


def test_the_sample_stage_under_a_429_cap_loses_no_row_and_shows_where_concurrency_settled(tmp_path, capsys):
    with FakeOpenAI(responder=calculator_solver, latency=0.05, rate_limit_cap=3, retry_after="0.5") as server:
        config = {
            "run": {"rows_per_shard": 6},
            "endpoints": {"fake": {"base_url": server.base_url, "model": "fake-model", "max_concurrency": 12, "max_retries": 0}},
            "synthesize": {"generators": [{"name": "arithmetic", "count": 24}]},
            "sample": {"teachers": [{"name": "t", "policy": "llm", "endpoint": "fake", "formats": ["react"], "max_steps": 4}]},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample"]) == 0
        rate_limited, model_lists = server.rate_limited, server.model_lists
    summary = json.loads((tmp_path / "run" / "report.json").read_text())["stages"]["sample"]
    assert summary["rows_out"] == 24 and summary.get("errors", 0) == 0  # max_retries 0: every 429 would have cost a row
    settled = summary["endpoints"]["fake"]
    assert rate_limited > 0 and settled["rate_limited"] == rate_limited and settled["concurrency"] in (3, 4)  # the server's cap
    assert model_lists == 1  # checked before the first stage, not again when the stage opens it
    assert f"fake: concurrency settled at {settled['concurrency']} of 12 ({rate_limited} answers were 429)" in capsys.readouterr().out


@pytest.mark.parametrize("setting, concurrency, target, cpus, expected", [
    (3, 64, None, 2, 3),          # a number is a number
    ("auto", 64, None, 2, 1),     # 128 requests/s: one process
    ("auto", 1024, None, 16, 4),  # 2,048 requests/s: four processes of 600
    ("auto", 1024, None, 4, 2),   # at most half of the CPUs
    ("auto", 1024, 4.0, 16, 1),   # a slow endpoint: 256 requests/s
    ("auto", 1, None, 16, 1),     # the embedded llama.cpp teacher
])
def test_auto_workers_follow_the_endpoints_request_rate(setting, concurrency, target, cpus, expected):
    profiles = {"e": {"max_concurrency": concurrency, "target_latency_s": target}}
    assert choose_workers(setting, profiles, ["e"], cpus) == expected


def test_auto_workers_without_llm_endpoints_is_one():
    assert choose_workers("auto", {}, [], 16) == 1
