"""A fake OpenAI-compatible server over real HTTP on 127.0.0.1, for fault injection and throughput only
(the real teacher is tested against the real llama.cpp server).

    with FakeOpenAI(responder=solver) as server:      # serves in a thread; server.base_url ends in /v1
        server.faults += [Fault(500), Fault(429, {"Retry-After": "2"})]
        ...
        server.completions                             # [(path, body, monotonic arrival time)]

Completion requests take the next fault if any, else `responder(path, body) -> reply text or a dict`:
{"content", "tool_calls", "finish_reason"}, and the shapes reasoning servers use: "reasoning_content" or
"reasoning" (message fields), "usage" (merged over the default usage, e.g. prompt_tokens_details or DeepSeek's
prompt_cache_hit_tokens), "logprobs" ([(token, logprob)]), "token_ids" and "prompt_token_ids" (vLLM's
return_token_ids). `counting=True` reports usage as a server would: prompt and completion tokens counted with
a word-and-punctuation tokenizer, and cached tokens = the longest token prefix shared with an earlier prompt
(prompt caching), so a changed prefix shows as fewer cached tokens. It serves /models, /chat/completions,
/completions, and enough of /files and /batches for the Batch API path (`hold_batches` keeps jobs in_progress
until released). `raw_bodies` keeps the request bytes as they arrived. Load, as real servers show it:
- `max_concurrency=N` queues requests beyond N in flight (a server that is slow, never refusing);
- `rate_limit_cap=N` answers 429 with `Retry-After: retry_after` at once to a request beyond N in flight
  (a provider's concurrency limit); `server.rate_limited` counts them;
- `latency` is seconds, or a function of the requests in flight (a vLLM that slows down under load);
  `server.peak_in_flight` is the most it had at once.
"""

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Fault:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: str | None = None  # a raw body (e.g. truncated JSON); None: an error object
    delay: float = 0.0
    code: str | None = None  # the error object's code, e.g. insufficient_quota


def final_answer(path: str, body: dict):
    """Default responder: answer at once, in the shape each format expects."""
    if path.endswith("/completions") and "prompt" in body:
        return " The answer is plain.\nFinal Answer: 42"
    return "Thought: I know it.\nFinal Answer: 42"


TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def prompt_text(body: dict) -> str:
    """What a server would tokenize as the prompt: the tools, then the messages (or the completion prompt)."""
    if "prompt" in body:
        return body["prompt"]
    return json.dumps(body.get("tools") or [], ensure_ascii=False) + json.dumps(body["messages"], ensure_ascii=False)


def completion_body(path: str, body: dict, reply) -> dict:
    reply = {"content": reply} if isinstance(reply, str) else reply
    usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20, **reply.get("usage", {})}
    if path.endswith("/chat/completions"):
        calls = [{"id": c.get("id", f"call_{i}"), "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for i, c in enumerate(reply.get("tool_calls", []))]
        message = {"role": "assistant", "content": reply.get("content")}
        message.update({key: reply[key] for key in ("reasoning_content", "reasoning") if key in reply})
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": reply.get("finish_reason", "tool_calls" if calls else "stop")}
        if "logprobs" in reply:
            choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in reply["logprobs"]]}
        out = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice], "usage": usage}
    else:
        choice = {"index": 0, "text": reply["content"], "finish_reason": reply.get("finish_reason", "stop"), "logprobs": None}
        if "logprobs" in reply:
            choice["logprobs"] = {"tokens": [t for t, _ in reply["logprobs"]], "token_logprobs": [lp for _, lp in reply["logprobs"]],
                                  "top_logprobs": None, "text_offset": []}
        out = {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": body["model"], "choices": [choice], "usage": usage}
    if "token_ids" in reply:
        choice["token_ids"] = reply["token_ids"]
    if "prompt_token_ids" in reply:
        out["prompt_token_ids"] = reply["prompt_token_ids"]
    return out


class FakeOpenAI:
    def __init__(self, models=("fake-model",), responder=final_answer, latency=0.0, max_concurrency: int | None = None,
                 counting: bool = False, rate_limit_cap: int | None = None, retry_after: str = "1"):
        self.models, self.responder, self.latency = list(models), responder, latency
        self.max_concurrency, self.rate_limit_cap, self.retry_after = max_concurrency, rate_limit_cap, retry_after
        self.in_flight = self.peak_in_flight = self.rate_limited = self.model_lists = 0
        self.counting = counting
        self.prompts: list[list[str]] = []  # token lists of earlier prompts (counting=True): the prompt cache
        self.faults: list[Fault] = []
        self.completions: list[tuple[str, dict, float]] = []
        self.raw_bodies: list[bytes] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.hold_batches = False
        self.batch_polled = threading.Event()  # set at the first poll: the client has recorded the job by then
        self._ids = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self):
        self._gate = asyncio.Semaphore(self.max_concurrency) if self.max_concurrency else None
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/v1/chat/completions", self.complete)
        app.router.add_post("/v1/completions", self.complete)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{id}/content", self.download)
        app.router.add_post("/v1/batches", self.create_batch)
        app.router.add_get("/v1/batches/{id}", self.get_batch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def list_models(self, request):
        self.model_lists += 1
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})

    async def complete(self, request):
        raw = await request.read()
        body = json.loads(raw)
        self.raw_bodies.append(raw)
        self.completions.append((request.path, body, time.monotonic()))
        fault = self.faults.pop(0) if self.faults else None
        if fault and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault and fault.status != 200:
            error = {"error": {"message": f"fake error {fault.status}", "type": "fake", "code": fault.code}}
            return web.Response(status=fault.status, headers=fault.headers, text=fault.body or json.dumps(error), content_type="application/json")
        if fault and fault.body is not None:
            return web.Response(text=fault.body, content_type="application/json")
        if self.rate_limit_cap is not None and self.in_flight >= self.rate_limit_cap:
            self.rate_limited += 1
            error = {"error": {"message": "too many requests in flight", "type": "requests", "code": "rate_limit_exceeded"}}
            return web.json_response(error, status=429, headers={"Retry-After": self.retry_after})
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self._gate:
                async with self._gate:
                    await self._wait_latency()
            else:
                await self._wait_latency()
        finally:
            self.in_flight -= 1
        headers = fault.headers if fault else None  # a Fault(200, headers) answers normally, with those headers
        return web.json_response(self.answer(request.path, body), headers=headers)

    def answer(self, path: str, body: dict) -> dict:
        out = completion_body(path, body, self.responder(path, body))
        if self.counting:
            out["usage"] = self.counted_usage(body, out["choices"][0])
        return out

    def counted_usage(self, body: dict, choice: dict) -> dict:
        prompt = count_tokens(prompt_text(body))
        cached = max((next((i for i, (a, b) in enumerate(zip(prompt, seen)) if a != b), min(len(prompt), len(seen))) for seen in self.prompts),
                     default=0)
        self.prompts.append(prompt)
        message = choice.get("message") or {}
        generated = (choice.get("text") or message.get("content") or "") + (message.get("reasoning_content") or message.get("reasoning") or "")
        generated += "".join(c["function"]["name"] + c["function"]["arguments"] for c in message.get("tool_calls") or [])
        completion = len(count_tokens(generated))
        return {"prompt_tokens": len(prompt), "completion_tokens": completion, "total_tokens": len(prompt) + completion,
                "prompt_tokens_details": {"cached_tokens": cached}}

    async def _wait_latency(self) -> None:
        seconds = self.latency(self.in_flight) if callable(self.latency) else self.latency
        if seconds:
            await asyncio.sleep(seconds)

    def answer_line(self, line: dict) -> dict:
        path = line["url"].removeprefix("/v1")
        body = self.answer("/v1" + path, line["body"])
        return {"id": f"req-{next(self._ids)}", "custom_id": line["custom_id"], "response": {"status_code": 200, "body": body}, "error": None}

    async def upload(self, request):
        form = await request.post()
        data = form["file"].file.read()
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = data
        return web.json_response({"id": file_id, "object": "file", "bytes": len(data), "created_at": 0,
                                  "filename": form["file"].filename, "purpose": form.get("purpose", "batch"), "status": "processed"})

    async def download(self, request):
        return web.Response(body=self.files[request.match_info["id"]], content_type="application/octet-stream")

    async def create_batch(self, request):
        body = await request.json()
        batch_id = f"batch-{next(self._ids)}"
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].decode().splitlines() if line.strip()]
        self.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"], "input_file_id": body["input_file_id"],
                                  "completion_window": body["completion_window"], "created_at": 0, "status": "in_progress",
                                  "lines": lines}
        return web.json_response(self._public(batch_id))

    async def get_batch(self, request):
        batch = self.batches[request.match_info["id"]]
        self.batch_polled.set()
        if batch["status"] == "in_progress" and not self.hold_batches:
            out = "\n".join(json.dumps(self.answer_line(line)) for line in batch["lines"]) + "\n"
            batch["output_file_id"] = f"file-{next(self._ids)}"
            self.files[batch["output_file_id"]] = out.encode()
            batch["status"] = "completed"
        return web.json_response(self._public(batch["id"]))

    def _public(self, batch_id: str) -> dict:
        return {k: v for k, v in self.batches[batch_id].items() if k != "lines"}


def calculator_solver(path: str, body: dict):
    """A competent fake teacher for any format: one calculator call (6 * 7), then the observation as the
    final answer. It reads the format from the request: a prompt (react, completion mode), native tools
    (function_calling), a CoTA system prompt, else react in chat mode."""
    multiply = {"expression": "6 * 7"}
    if "prompt" in body:
        seen = re.findall(r"Observation: (.*)", body["prompt"].rsplit("Question:", 1)[1])
        return f" I know it now.\nFinal Answer: {seen[-1]}" if seen else f" I multiply.\nAction: calculator\nAction Input: {json.dumps(multiply)}"
    last = body["messages"][-1]
    observed = last["role"] == "tool" or last["content"].startswith("Observation: ")
    result = last["content"].removeprefix("Observation: ")
    if "tools" in body:
        call = {"id": "call_a", "name": "calculator", "arguments": json.dumps(multiply)}
        return {"content": result} if observed else {"content": "I multiply.", "tool_calls": [call]}
    if "JSON object per turn" in body["messages"][0]["content"]:
        action = {"thought": "done", "final_answer": result} if observed else {"thought": "I multiply.", "tool": "calculator", "arguments": multiply}
        return json.dumps(action)
    return f"Thought: done\nFinal Answer: {result}" if observed else f"Thought: I multiply.\nAction: calculator\nAction Input: {json.dumps(multiply)}"
