"""The one LLM client: every request trajforge makes to an LLM goes through `LLMClient`.

    client = LLMClient("gpt", config["endpoints"]["gpt"], cache)
    reply = await client.chat(messages, tools=tools, sample_key=["task-1", 0], temperature=0.7, max_tokens=256)
    reply = await client.complete(prompt, stop=["Observation:"], sample_key=["task-1", 0], max_tokens=128)
    reply.text, reply.reasoning, reply.tool_calls, reply.usage()

Messages are row messages (tool-call arguments as objects); they become JSON strings here, at the API
boundary. The client owns the endpoint's adaptive concurrency and shared cool-down (pipeline/llm/concurrency.py),
RPM/TPM limits, retries of transient failures with full-jitter backoff on top of Retry-After (never earlier),
patience with a busy endpoint (429s are retried until `rate_limit_patience_s`, also past `max_retries`),
timeouts, the response cache, token and cost accounting (cached prompt tokens and the batch discount:
pricing.py) and `budget_usd`; reasoning traces (reasoning.py) and token ids and logprobs (capture.py) are read
from the replies. Requests go over a lean aiohttp path (pipeline/llm/http.py); the openai SDK serves the
preflight and the Batch API. Failures are one of two types:
- `LLMError`: this request failed for good (400 context length, 401, 404 model, retries exhausted, ...);
  the caller records it on its row.
- `EndpointStopped`: no more requests may go to this endpoint (budget reached, quota exhausted); the stage
  stops, finished shards are kept, the rest is left for a later run.
"""

import email.utils
import json
import time
from dataclasses import dataclass, field

import aiohttp
import openai
from tenacity import AsyncRetrying, retry_if_exception, wait_random_exponential

from pipeline.errors import UserError
from pipeline.llm import capture, local, pricing, reasoning, transient
from pipeline.llm.cache import ResponseCache, request_key
from pipeline.llm.concurrency import AdaptiveConcurrency, headroom
from pipeline.llm.http import JSONPoster
from pipeline.llm.limits import RateLimiter

PATHS = {"chat": "/chat/completions", "completion": "/completions"}
MAX_BACKOFF_S = 60.0
JITTER = wait_random_exponential(multiplier=0.5, max=MAX_BACKOFF_S)  # uniform in [0, 0.5 s * 2^(attempt-1)], at most 60 s
COOL_DOWN_S = 1.0  # a 429 without Retry-After cools the endpoint down this long


class LLMError(Exception):
    """A request that failed for good. `kind` is one of: timeout, connection, rate_limit, server, malformed,
    context_length, bad_request, auth, not_found, content_filter."""

    def __init__(self, kind: str, message: str, status: int | None = None, retryable: bool = False, retry_after: float | None = None):
        super().__init__(f"{kind}" + (f" (HTTP {status})" if status else "") + f": {message}")
        self.kind, self.status, self.retryable, self.retry_after = kind, status, retryable, retry_after


class EndpointStopped(UserError):
    """No more requests may be sent to an endpoint; finished shards are kept, the rest waits for a later run."""

    exit_code = 3


class Deferred(Exception):
    """The request was queued for the next Batch API round; the episode resumes from the cache after it."""


@dataclass
class Reply:
    text: str | None
    tool_calls: list[dict] = field(default_factory=list)  # {"id", "name", "arguments": the JSON string as emitted}
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    seconds: float = 0.0
    reasoning: str | None = None  # the reasoning trace (pipeline/llm/reasoning.py)
    cached_tokens: int | None = None  # prompt tokens served from the provider's prompt cache; None: not reported
    reasoning_tokens: int | None = None  # of the completion tokens; None: not reported
    tokens: dict = field(default_factory=dict)  # token ids and logprobs, when the endpoint captures them (capture.py)

    def usage(self) -> dict:
        """What the reply cost, the same whether it came from the endpoint or the cache (rows stay reproducible).
        Cached and reasoning tokens appear only where the endpoint reported them."""
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "llm_calls": 1, "cost_usd": self.cost_usd}
        for key in ("cached_tokens", "reasoning_tokens"):
            if getattr(self, key) is not None:
                usage[key] = getattr(self, key)
        return usage

    def to_cache(self) -> dict:
        """The reply as the server sent it (reasoning in its field, content untouched): how it is read is the
        endpoint's `reasoning` setting, applied on the way out. Fields a server did not send are left out."""
        stored = {"text": self.text, "tool_calls": self.tool_calls, "finish_reason": self.finish_reason,
                  "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "cost_usd": self.cost_usd}
        extra = {"reasoning": self.reasoning, "cached_tokens": self.cached_tokens, "reasoning_tokens": self.reasoning_tokens,
                 "tokens": self.tokens or None}
        return stored | {key: value for key, value in extra.items() if value is not None}


def api_messages(messages: list[dict], reasoning_history: str = "drop") -> list[dict]:
    """Row messages -> OpenAI request messages: tool-call arguments become JSON strings; earlier turns'
    reasoning goes back as `reasoning_history` says (pipeline/llm/reasoning.py)."""
    out = []
    for message in messages:
        if "tool_calls" in message:
            calls = [{**call, "function": {**call["function"], "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False)}}
                     for call in message["tool_calls"]]
            message = {**message, "tool_calls": calls}
        out.append(reasoning.history_message(message, reasoning_history))
    return out


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_details(usage: dict) -> tuple[int | None, int | None]:
    """(cached prompt tokens, reasoning tokens) where the usage reports them: OpenAI, vLLM, OpenRouter and Gemini
    say `prompt_tokens_details.cached_tokens`, DeepSeek `prompt_cache_hit_tokens`, Moonshot `cached_tokens`;
    reasoning tokens are `completion_tokens_details.reasoning_tokens`."""
    prompt = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    completion = usage.get("completion_tokens_details") if isinstance(usage.get("completion_tokens_details"), dict) else {}
    cached = next((n for n in map(_count, (prompt.get("cached_tokens"), usage.get("prompt_cache_hit_tokens"), usage.get("cached_tokens")))
                   if n is not None), None)
    return cached, _count(completion.get("reasoning_tokens"))


def parse_reply(mode: str, data: dict) -> Reply:
    """A response body -> Reply; a body without the expected shape is a (retryable) malformed reply. Reasoning
    fields, cached and reasoning token counts, token ids and logprobs are read where present (never required)."""
    try:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        thought = None
        if mode == "completion":
            text, calls = choice["text"], []
        else:
            message = choice["message"]
            text = message.get("content")
            calls = [{"id": c.get("id"), "name": c["function"]["name"], "arguments": c["function"].get("arguments") or ""}
                     for c in message.get("tool_calls") or []]
            thought = next((v for v in (message.get("reasoning_content"), message.get("reasoning")) if isinstance(v, str) and v), None)
        prompt_tokens, completion_tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cached, reasoning_tokens = usage_details(usage)
        return Reply(text, calls, choice.get("finish_reason"), prompt_tokens, completion_tokens, reasoning=thought,
                     cached_tokens=None if cached is None else min(cached, prompt_tokens), reasoning_tokens=reasoning_tokens,
                     tokens=capture.from_reply(mode, data, choice))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise LLMError("malformed", f"response body has no usable choice ({type(exc).__name__}: {exc})", retryable=True) from None


def retry_after_seconds(headers) -> float | None:
    """Retry-After as seconds (also retry-after-ms and the HTTP-date form)."""
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def refused(exc: BaseException) -> OSError | None:
    """The socket error under a transport exception when the connection itself failed (refused, reset, no
    route): the innermost one says it best (ConnectionRefusedError under aiohttp's wrapper)."""
    seen, found = set(), None
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def status_error(status: int, headers, raw: bytes) -> Exception:
    """A non-2xx answer -> LLMError (retryable or not) or EndpointStopped."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    code = str(error.get("code") or error.get("type") or "")
    message = str(error.get("message") or raw[:300].decode("utf-8", "replace") or f"HTTP {status}")[:300]
    if status == 429 and code == "insufficient_quota":
        return EndpointStopped(f"the endpoint says the quota is exhausted: {message}")
    if status in (408, 409, 429) or status >= 500:
        kind = "rate_limit" if status == 429 else "server"
        return LLMError(kind, message, status, retryable=True, retry_after=retry_after_seconds(headers))
    if status == 400 and ("context_length" in code or "context length" in message.lower()):
        return LLMError("context_length", message, status)
    kind = {401: "auth", 403: "auth", 404: "not_found"}.get(status, "bad_request")
    return LLMError(kind, message, status)


def transport_error(exc: BaseException) -> LLMError:
    """No answer: the timeout ran out, or the connection was refused, reset or cut mid-body."""
    if isinstance(exc, TimeoutError):
        return LLMError("timeout", "no response in time", retryable=True)
    cause = refused(exc) or exc
    return LLMError("connection", f"{type(cause).__name__}: {cause}", retryable=True)


def parse_body(mode: str, raw: bytes) -> Reply:
    try:
        data = json.loads(raw)
    except ValueError as exc:  # a truncated or non-JSON 200 body
        raise LLMError("malformed", f"response body is not valid JSON ({exc})", retryable=True) from None
    return parse_reply(mode, data if isinstance(data, dict) else {})


class LLMClient:
    """One endpoint profile (a dict from the config's `endpoints`), its limits, cache and spend."""

    def __init__(self, name: str, profile: dict, cache: ResponseCache, api_key: str | None = None):
        self.name, self.profile, self.cache = name, profile, cache
        self.model, self.mode = profile["model"], profile["mode"]
        self.concurrency = AdaptiveConcurrency(profile["max_concurrency"], profile["adaptive_concurrency"], profile["target_latency_s"])
        self.limiter = RateLimiter(profile["rpm"], profile["tpm"])
        self.http = JSONPoster(profile["base_url"], api_key, profile["timeout_s"], profile["max_concurrency"])
        self._api_key = api_key
        self._api: openai.AsyncOpenAI | None = None
        self.budget = profile["budget_usd"]
        self.spent = cache.spent(name)  # by this run directory, all processes (as of this process's last reply)
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "rate_limited": 0, "failed": 0, "transient": 0, "spent_usd": 0.0}
        self.tokens_per_request = 0.0  # a running mean, to read x-ratelimit-remaining-tokens as requests
        self.watch = local.Watch.of(profile)  # the local server's process, for `base_url: local` endpoints
        self.batch = None  # a pipeline.llm.batch.BatchRounds when the endpoint uses the Batch API

    @property
    def api(self) -> openai.AsyncOpenAI:
        """The SDK client, for the preflight and the Batch API (Files, Batches); made on first use."""
        if self._api is None:
            self._api = openai.AsyncOpenAI(base_url=self.profile["base_url"], api_key=self._api_key or "unused", max_retries=0,
                                           timeout=self.profile["timeout_s"])
        return self._api

    async def chat(self, messages: list[dict], *, tools: list[dict] | None = None, sample_key=None, **params) -> Reply:
        """One chat request; the reply's reasoning is read as the endpoint's `reasoning` setting says."""
        body = {"model": self.model, "messages": api_messages(messages, self.profile["reasoning_history"]), **params,
                **capture.request_params("chat", self.profile["capture"])}
        if tools:
            body["tools"] = tools
        return reasoning.read(await self.request("chat", body, sample_key), self.profile["reasoning"])

    async def complete(self, prompt: str, *, sample_key=None, **params) -> Reply:
        body = {"model": self.model, "prompt": prompt, **params, **capture.request_params("completion", self.profile["capture"])}
        return await self.request("completion", body, sample_key)

    async def request(self, mode: str, body: dict, sample_key=None) -> Reply:
        """Send one request body (or answer it from the cache); raises LLMError, EndpointStopped or Deferred."""
        key = request_key(self.model, mode, body, sample_key)
        cached = self.cache.get(key)
        if cached is not None:
            self.stats["cache_hits"] += 1
            return Reply(**cached, cached=True)
        self.check_budget()
        if self.batch is not None:
            self.batch.defer(key, mode, body)
            raise Deferred(key)
        began = time.monotonic()
        try:
            reply = await self._send_with_retries(mode, body, began)
        except LLMError as exc:
            self.stats["failed"] += 1
            self.check_alive()  # a dead local server stops the stage, naming why, instead of failing rows
            if exc.retryable:
                self.stats["transient"] += 1
                transient.note(exc.kind)
            raise
        reply.seconds = time.monotonic() - began
        self.record(key, reply)
        return reply

    def record(self, key: str, reply: Reply, batch: bool = False) -> None:
        """Price a definitive reply (a Batch API one at the batch discount), count it and store it in the cache."""
        reply.cost_usd = self.cost(reply, batch)
        self.stats["spent_usd"] += reply.cost_usd
        self.spent = self.cache.put(key, self.name, self.model, reply.to_cache(), reply.cost_usd)

    def cost(self, reply: Reply, batch: bool = False) -> float:
        return pricing.cost_usd(self.profile, reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens or 0, batch)

    def check_alive(self) -> None:
        """Raise EndpointStopped, naming how and with the end of its log, when the endpoint's local server died."""
        if self.watch is not None:
            death = self.watch.death()
            if death:
                raise EndpointStopped(f"endpoints.{self.name}: {death}")

    def check_budget(self) -> None:
        if self.budget is not None and self.spent >= self.budget:
            raise EndpointStopped(f"endpoints.{self.name}.budget_usd={self.budget} reached "
                                  f"(${self.spent:.4f} spent by this run directory); "
                                  f"finished shards are kept: raise the budget and re-run to go on (cached replies are free)")

    async def _send_with_retries(self, mode: str, body: dict, began: float) -> Reply:
        retrying = AsyncRetrying(
            stop=self._stop(began + self.profile["rate_limit_patience_s"]), wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, LLMError) and e.retryable), before_sleep=self._count_retry, reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self._send_once(mode, body, began)

    def _count_retry(self, state) -> None:
        self.stats["retries"] += 1

    def _stop(self, deadline: float):
        """After max_retries, only a rate-limited request goes on, until the deadline: the endpoint is busy,
        not broken. One told to come back after the deadline gives up at once (the next run retries it)."""
        attempts = self.profile["max_retries"] + 1

        def stop(state) -> bool:
            exc = state.outcome.exception()
            busy = isinstance(exc, LLMError) and exc.kind == "rate_limit"
            if busy and exc.retry_after and time.monotonic() + exc.retry_after > deadline:
                return True
            return state.attempt_number >= attempts and not (busy and time.monotonic() < deadline)

        return stop

    @staticmethod
    def _wait(state) -> float:
        """Full jitter on top of Retry-After, so retries never come early and never all at once."""
        exc = state.outcome.exception()
        floor = exc.retry_after if isinstance(exc, LLMError) and exc.retry_after is not None else 0.0
        return floor + JITTER(state)

    async def _send_once(self, mode: str, body: dict, began: float) -> Reply:
        """One attempt, in a slot of the endpoint's concurrency (oldest requests first, retries included)."""
        estimated = estimate_tokens(body) if self.limiter.tokens else 0
        rank = await self.concurrency.acquire(began)
        try:
            await self.limiter.acquire(estimated)
            self.check_budget()
            self.check_alive()
            self.stats["requests"] += 1
            sent_at = time.monotonic()
            status, headers, raw = await self.http.post(PATHS[mode], body)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.concurrency.failed()
            raise transport_error(exc) from None
        except BaseException:
            self.concurrency.failed()
            raise
        if not 200 <= status < 300:
            error = status_error(status, headers, raw)
            if isinstance(error, LLMError) and error.kind == "rate_limit":
                self.stats["rate_limited"] += 1
                self.concurrency.rate_limited(sent_at, rank, COOL_DOWN_S if error.retry_after is None else error.retry_after)
            else:
                self.concurrency.failed()
            raise error
        self.concurrency.succeeded(sent_at, time.monotonic() - sent_at, headroom(headers, self.tokens_per_request))
        reply = parse_body(mode, raw)
        tokens = reply.prompt_tokens + reply.completion_tokens
        self.tokens_per_request += (tokens - self.tokens_per_request) * 0.1
        self.limiter.settle(estimated, tokens)
        if reply.finish_reason == "content_filter":
            raise LLMError("content_filter", "the endpoint withheld the reply (finish_reason=content_filter)")
        return reply

    async def close(self) -> None:
        await self.http.close()
        if self._api is not None:
            await self._api.close()


def estimate_tokens(body: dict) -> int:
    """A pre-request guess for the TPM limit: about 4 characters a token, plus the completion budget."""
    text = body.get("prompt") or json.dumps(body.get("messages", ""))
    return len(text) // 4 + int(body.get("max_tokens") or 256)
