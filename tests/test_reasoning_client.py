"""The LLM client and reasoning-model replies, against the fake OpenAI-compatible server over real HTTP: reasoning
in each shape servers use, cached and reasoning token counts, honest cost (cached prompt price, batch discount),
token ids and logprobs (and their absence), and how earlier reasoning goes back to the model."""

import asyncio
import json

import pytest

from pipeline.llm import reasoning
from pipeline.llm.cache import ResponseCache
from pipeline.llm.client import LLMClient
from tests.fake_openai import FakeOpenAI
from tests.test_llm_client import profile

HELLO = [{"role": "user", "content": "What is 6 * 7?"}]


def ask(tmp_path, reply, mode="chat", messages=HELLO, **settings):
    """One request to a fake server answering `reply`; returns (the Reply, the request body the server got)."""

    async def run(server):
        client = LLMClient("fake", profile(server, mode=mode, **settings), ResponseCache(tmp_path / "cache.sqlite"))
        try:
            if mode == "chat":
                return await client.chat(messages, sample_key=["t", 0])
            return await client.complete("Question: 6 * 7?\nThought:", sample_key=["t", 0])
        finally:
            await client.close()

    with FakeOpenAI(responder=lambda path, body: reply) as server:
        result = asyncio.run(run(server))
        return result, server.completions[-1][1] if server.completions else None


@pytest.mark.parametrize("shape", [
    {"reasoning_content": "6 times 7 is 42.", "content": "42"},  # DeepSeek, SGLang, llama.cpp, older vLLM
    {"reasoning": "6 times 7 is 42.", "content": "42"},  # newer vLLM, OpenRouter
    {"content": "<think>\n6 times 7 is 42.\n</think>\n\n42"},  # Qwen3 served raw
    {"content": "6 times 7 is 42.\n</think>\n\n42"},  # R1 distill: the template opened <think> in the prompt
])
def test_reasoning_is_read_from_every_shape_and_kept_out_of_the_text(tmp_path, shape):
    reply, _ = ask(tmp_path, shape)
    assert reply.reasoning == "6 times 7 is 42." and reply.text == "42"


def test_reasoning_off_leaves_the_content_as_sent(tmp_path):
    reply, _ = ask(tmp_path, {"content": "<think>hm</think>42", "reasoning_content": "field"}, reasoning="off")
    assert reply.reasoning is None and reply.text == "<think>hm</think>42"


def test_field_mode_does_not_touch_tags_and_tags_mode_ignores_the_field(tmp_path):
    field, _ = ask(tmp_path / "a", {"content": "<think>tags</think>42", "reasoning_content": "field"}, reasoning="field")
    assert (field.reasoning, field.text) == ("field", "<think>tags</think>42")
    tags, _ = ask(tmp_path / "b", {"content": "<think>tags</think>42", "reasoning_content": "field"}, reasoning="tags")
    assert (tags.reasoning, tags.text) == ("tags", "42")


def test_think_tags_are_reasoning_only_where_they_open_the_reply():
    assert reasoning.from_tags("The answer <think>x</think> is 42") == (None, "The answer <think>x</think> is 42")
    assert reasoning.from_tags("<think>\nstill thinking when max_tokens") == ("still thinking when max_tokens", "")
    assert reasoning.from_tags("42") == (None, "42")


def test_completion_mode_never_splits_reasoning(tmp_path):
    reply, _ = ask(tmp_path, " <think>x</think> Final Answer: 42", mode="completion")
    assert reply.reasoning is None and reply.text == " <think>x</think> Final Answer: 42"


@pytest.mark.parametrize("usage", [
    {"prompt_tokens_details": {"cached_tokens": 600}},  # OpenAI, vLLM, OpenRouter, Gemini
    {"prompt_cache_hit_tokens": 600, "prompt_cache_miss_tokens": 400},  # DeepSeek
    {"cached_tokens": 600},  # Moonshot
])
def test_cached_prompt_tokens_are_priced_at_the_cached_price(tmp_path, usage):
    prices = {"price_input_per_mtok": 2.0, "price_cached_input_per_mtok": 0.5, "price_output_per_mtok": 8.0}
    reply, _ = ask(tmp_path, {"content": "42", "usage": {"prompt_tokens": 1000, "completion_tokens": 200, **usage}}, **prices)
    assert reply.cached_tokens == 600
    assert reply.cost_usd == pytest.approx((400 * 2.0 + 600 * 0.5 + 200 * 8.0) / 1e6)  # $0.0027, not $0.0036
    assert reply.usage()["cached_tokens"] == 600


def test_without_a_cached_price_cached_tokens_cost_the_input_price(tmp_path):
    reply, _ = ask(tmp_path, {"content": "42", "usage": {"prompt_tokens": 1000, "completion_tokens": 200,
                                                          "prompt_tokens_details": {"cached_tokens": 600}}},
                   price_input_per_mtok=2.0, price_output_per_mtok=8.0)
    assert reply.cost_usd == pytest.approx((1000 * 2.0 + 200 * 8.0) / 1e6)


def test_reasoning_tokens_are_counted_where_the_usage_reports_them(tmp_path):
    reply, _ = ask(tmp_path, {"content": "42", "reasoning_content": "...", "usage": {
        "prompt_tokens": 50, "completion_tokens": 300, "completion_tokens_details": {"reasoning_tokens": 280}}})
    assert reply.usage() == {"prompt_tokens": 50, "completion_tokens": 300, "llm_calls": 1, "cost_usd": 0.0, "reasoning_tokens": 280}
    plain, _ = ask(tmp_path / "plain", "42")
    assert "reasoning_tokens" not in plain.usage() and "cached_tokens" not in plain.usage()


def test_implausible_usage_details_are_ignored(tmp_path):
    reply, _ = ask(tmp_path, {"content": "42", "usage": {"prompt_tokens": 10, "completion_tokens": 1,
                                                          "prompt_tokens_details": {"cached_tokens": "lots"},
                                                          "completion_tokens_details": [], "cached_tokens": -3}})
    assert reply.cached_tokens is None and reply.reasoning_tokens is None


def test_chat_capture_asks_for_logprobs_and_token_ids_and_reads_them(tmp_path):
    shape = {"content": "42", "logprobs": [("4", -0.25), ("2", -0.5)], "token_ids": [19, 17], "prompt_token_ids": [1, 2, 3]}
    reply, body = ask(tmp_path, shape, capture={"logprobs": True, "token_ids": True})
    assert body["logprobs"] is True and body["return_token_ids"] is True
    assert reply.tokens == {"prompt_token_ids": [1, 2, 3], "token_ids": [19, 17], "logprobs": [-0.25, -0.5], "token_texts": ["4", "2"]}


def test_completion_capture_reads_the_legacy_logprobs_shape(tmp_path):
    reply, body = ask(tmp_path, {"content": " 42", "logprobs": [(" 4", -0.1), ("2", -0.2)]}, mode="completion",
                      capture={"logprobs": True})
    assert body["logprobs"] == 0 and "return_token_ids" not in body
    assert reply.tokens == {"logprobs": [-0.1, -0.2], "token_texts": [" 4", "2"]}


def test_vllm_tokens_as_token_ids_give_the_ids(tmp_path):
    reply, _ = ask(tmp_path, {"content": "42", "logprobs": [("token_id:19", -0.25), ("token_id:17", -0.5)]}, capture={"logprobs": True})
    assert reply.tokens["token_ids"] == [19, 17]


def test_without_capture_nothing_extra_is_asked(tmp_path):
    reply, body = ask(tmp_path, {"content": "42", "token_ids": [1]})
    assert set(body) == {"model", "messages"} and reply.tokens == {"token_ids": [1]}


def test_malformed_token_data_counts_as_not_returned(tmp_path):
    reply, _ = ask(tmp_path, {"content": "42", "token_ids": ["a", 2], "logprobs": [("4", "high")]}, capture={"logprobs": True, "token_ids": True})
    assert reply.text == "42" and reply.tokens == {"token_texts": ["4"]}


def test_cached_reply_is_read_again_with_the_reasoning_setting(tmp_path):
    shape = {"content": "<think>x</think>42"}
    first, _ = ask(tmp_path, shape, reasoning="off")
    again, body = ask(tmp_path, shape, reasoning="tags")  # same run directory: answered from the cache
    assert body is None and first.text == "<think>x</think>42" and (again.reasoning, again.text) == ("x", "42")


HISTORY = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "r"}, {"role": "user", "content": "q2"}]


@pytest.mark.parametrize("mode, sent", [
    ("drop", {"role": "assistant", "content": "a"}),
    ("field", {"role": "assistant", "content": "a", "reasoning_content": "r"}),
    ("tags", {"role": "assistant", "content": "<think>\nr\n</think>\n\na"}),
])
def test_earlier_reasoning_goes_back_as_the_endpoint_expects(tmp_path, mode, sent):
    _, body = ask(tmp_path, "ok", messages=HISTORY, reasoning_history=mode)
    assert body["messages"][1] == sent


def test_batch_replies_are_priced_at_the_batch_discount(tmp_path):
    prices = {"price_input_per_mtok": 2.0, "price_cached_input_per_mtok": 0.5, "price_output_per_mtok": 8.0, "batch": True,
              "batch_poll_s": 0.01, "batch_discount": 0.5}
    usage = {"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 600}}

    async def run(server):
        from pipeline.llm.batch import BatchRounds
        from pipeline.llm.client import Deferred

        client = LLMClient("fake", profile(server, **prices), ResponseCache(tmp_path / "cache.sqlite"))
        client.batch = BatchRounds(client)
        try:
            with pytest.raises(Deferred):
                await client.chat(HELLO, sample_key=["t", 0])
            await client.batch.run_round()
            return await client.chat(HELLO, sample_key=["t", 0]), client.spent
        finally:
            await client.close()

    with FakeOpenAI(responder=lambda path, body: {"content": "42", "usage": usage}) as server:
        reply, spent = asyncio.run(run(server))
    assert reply.cached and reply.cost_usd == pytest.approx(0.5 * (400 * 2.0 + 600 * 0.5 + 200 * 8.0) / 1e6)
    assert spent == pytest.approx(reply.cost_usd)
    line = json.loads(next(iter(server.files.values())).decode().splitlines()[0])
    assert line["body"]["messages"] == HELLO
