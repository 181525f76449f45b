"""The LLM client against a fake OpenAI-compatible server over real HTTP: retries, Retry-After, timeouts,
classified errors, the response cache, budget and rate limits."""

import asyncio
import multiprocessing
import os
import json

import pytest

from pipeline import config as configlib
from pipeline import schema
from pipeline.llm.cache import ResponseCache
from pipeline.llm.client import EndpointStopped, LLMClient, LLMError
from tests.fake_openai import FakeOpenAI, Fault

HELLO = [{"role": "user", "content": "hi"}]


def profile(server: FakeOpenAI, **overrides) -> dict:
    """An endpoint profile with the config schema's defaults."""
    root = schema.load_schema("config")
    data = {"base_url": server.base_url, "model": "fake-model", "timeout_s": 5, "max_retries": 3, **overrides}
    return configlib.apply_defaults(root["$defs"]["endpoint"], data, root)


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def ask(server, tmp_path, calls=1, sample_keys=None, **overrides):
    """Make `calls` chat requests with one client; returns (replies or exceptions, client stats)."""

    async def run():
        client = LLMClient("fake", profile(server, **overrides), ResponseCache(tmp_path / "cache.sqlite"))
        try:
            keys = sample_keys or [["task", i] for i in range(calls)]
            return await asyncio.gather(*(client.chat(HELLO, sample_key=k) for k in keys), return_exceptions=True), client.stats
        finally:
            await client.close()

    return asyncio.run(run())


def test_server_errors_are_retried_until_success(server, tmp_path):
    server.faults += [Fault(500), Fault(503)]
    (reply,), stats = ask(server, tmp_path)
    assert reply.text.endswith("Final Answer: 42")
    assert len(server.completions) == 3 and stats["retries"] == 2


def test_429_waits_as_long_as_retry_after_says(server, tmp_path):
    server.faults.append(Fault(429, {"Retry-After": "2"}))
    (reply,), _ = ask(server, tmp_path)
    first, second = server.completions[0][2], server.completions[1][2]
    assert reply.text and second - first >= 1.95  # backoff alone would wait at most 1 s here


def test_timeout_becomes_a_classified_error_after_retries(server, tmp_path):
    server.faults += [Fault(delay=3), Fault(delay=3)]
    (error,), stats = ask(server, tmp_path, timeout_s=0.3, max_retries=1)
    assert isinstance(error, LLMError) and error.kind == "timeout"
    assert len(server.completions) == 2 and stats["failed"] == 1


def test_truncated_body_is_retried(server, tmp_path):
    server.faults.append(Fault(body='{"id": "chatcmpl-1", "choi'))
    (reply,), _ = ask(server, tmp_path)
    assert reply.text and len(server.completions) == 2


@pytest.mark.parametrize("fault, kind", [
    (Fault(400, code="context_length_exceeded"), "context_length"),
    (Fault(400), "bad_request"),
    (Fault(401), "auth"),
    (Fault(404), "not_found"),
])
def test_definitive_errors_are_not_retried(server, tmp_path, fault, kind):
    server.faults.append(fault)
    (error,), _ = ask(server, tmp_path)
    assert isinstance(error, LLMError) and error.kind == kind and error.status == fault.status
    assert len(server.completions) == 1


def test_insufficient_quota_stops_the_endpoint(server, tmp_path):
    server.faults.append(Fault(429, code="insufficient_quota"))
    (error,), _ = ask(server, tmp_path)
    assert isinstance(error, EndpointStopped) and "quota" in str(error)
    assert len(server.completions) == 1


def test_cache_answers_a_repeated_request_without_sending_it(server, tmp_path):
    ask(server, tmp_path, sample_keys=[["task", 0]])
    (reply,), stats = ask(server, tmp_path, sample_keys=[["task", 0]])
    assert reply.cached and stats["requests"] == 0 and stats["cache_hits"] == 1
    assert len(server.completions) == 1


def test_a_damaged_cache_entry_is_asked_for_again_and_replaced(server, tmp_path):
    import sqlite3

    ask(server, tmp_path, sample_keys=[["task", 0]])
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        db.execute("UPDATE replies SET reply = '{\"text\": \"half'")
    (reply,), stats = ask(server, tmp_path, sample_keys=[["task", 0]])
    assert not reply.cached and stats["requests"] == 1 and reply.text.endswith("Final Answer: 42")
    (reply,), stats = ask(server, tmp_path, sample_keys=[["task", 0]])
    assert reply.cached and stats["requests"] == 0


def test_sample_key_keeps_samples_of_one_task_apart(server, tmp_path):
    ask(server, tmp_path, sample_keys=[["task", 0], ["task", 1]])
    assert len(server.completions) == 2


def test_transient_failures_are_not_cached(server, tmp_path):
    server.faults.append(Fault(500))
    (error,), _ = ask(server, tmp_path, max_retries=0)
    assert isinstance(error, LLMError)
    (reply,), stats = ask(server, tmp_path, max_retries=0)
    assert reply.text and not reply.cached and stats["requests"] == 1


def test_cache_file_holds_no_api_key(server, tmp_path, monkeypatch):
    async def run():
        client = LLMClient("fake", profile(server), ResponseCache(tmp_path / "cache.sqlite"), api_key="sk-secret-123")
        await client.chat(HELLO, sample_key=["t", 0])
        await client.close()

    asyncio.run(run())
    assert b"sk-secret-123" not in (tmp_path / "cache.sqlite").read_bytes()


def test_budget_stops_new_requests_and_persists_across_clients(server, tmp_path):
    prices = {"price_input_per_mtok": 50.0, "price_output_per_mtok": 50.0, "budget_usd": 0.0015}  # $0.001 per request
    results, stats = ask(server, tmp_path, calls=3, max_concurrency=1, **prices)
    assert [type(r).__name__ for r in results] == ["Reply", "Reply", "EndpointStopped"]
    assert len(server.completions) == 2 and stats["spent_usd"] == pytest.approx(0.002)
    (again,), _ = ask(server, tmp_path, sample_keys=[["other", 0]], **prices)
    assert isinstance(again, EndpointStopped) and len(server.completions) == 2


def test_rpm_limit_spaces_requests(server, tmp_path):
    ask(server, tmp_path, calls=9, rpm=60)  # a burst of 6, then one a second: the 9th 3 s after the client starts
    times = sorted(t for _, _, t in server.completions)
    assert times[-1] - times[0] >= 2.0  # without the limit: a few milliseconds


def test_tool_call_arguments_are_objects_in_rows_and_strings_on_the_wire(server, tmp_path):
    messages = HELLO + [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": {"expression": "1+1"}}}]},
                        {"role": "tool", "tool_call_id": "c1", "content": "2"}]

    async def run():
        client = LLMClient("fake", profile(server), ResponseCache(tmp_path / "cache.sqlite"))
        await client.chat(messages, sample_key=["t", 0])
        await client.close()

    asyncio.run(run())
    sent = server.completions[0][1]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"expression": "1+1"}
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"expression": "1+1"}


def _open_cache_and_write(path, barrier) -> None:
    barrier.wait()
    ResponseCache(path).put(f"key-{os.getpid()}", "fake", "fake-model", {"text": "x"}, 0.0)


def test_worker_processes_can_open_a_new_cache_file_at_the_same_moment(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(15):  # without the retry, switching a new file to WAL failed in about one trial in eight
        path, barrier = tmp_path / f"cache-{attempt}.sqlite", context.Barrier(4)
        processes = [context.Process(target=_open_cache_and_write, args=(path, barrier)) for _ in range(4)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        assert [p.exitcode for p in processes] == [0, 0, 0, 0]
        assert ResponseCache(path).count() == 4


def test_a_refused_connection_is_a_connection_error_not_a_timeout(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def run():
        client = LLMClient("fake", {**profile(FakeOpenAI(), max_retries=1), "base_url": f"http://127.0.0.1:{port}/v1"},
                           ResponseCache(tmp_path / "cache.sqlite"))
        try:
            return await asyncio.gather(client.chat(HELLO, sample_key=["t"]), return_exceptions=True), client.stats
        finally:
            await client.close()

    (error,), stats = asyncio.run(run())
    assert isinstance(error, LLMError) and error.kind == "connection" and "ConnectionRefusedError" in str(error)
    assert stats["retries"] == 1 and stats["transient"] == 1


def test_a_dead_local_server_stops_the_endpoint_with_how_it_died(server, tmp_path):
    log = tmp_path / "local-teacher.log"
    log.write_text("llama_model_loader: loaded\nggml_repack: AMX tile\n")
    note = tmp_path / ".local-teacher-1.died"
    watch = {"pid": os.getpid(), "log": str(log), "note": str(note)}

    async def run():
        client = LLMClient("local", {**profile(server), "local_server": watch}, ResponseCache(tmp_path / "cache.sqlite"))
        try:
            first = await client.chat(HELLO, sample_key=["a"])
            note.write_text(f"the local teacher (llama.cpp) died with SIGSEGV; end of {log}: ggml_repack: AMX tile")
            return first, await asyncio.gather(client.chat(HELLO, sample_key=["b"]), return_exceptions=True)
        finally:
            await client.close()

    first, (error,) = asyncio.run(run())
    assert first.text and isinstance(error, EndpointStopped) and error.exit_code == 3
    assert str(error).startswith("endpoints.local: the local teacher (llama.cpp) died with SIGSEGV; end of ")
