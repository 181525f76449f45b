"""A fake OpenAI-compatible server over real HTTP on 127.0.0.1, for fault injection and throughput only
(the real teacher is tested against the real llama.cpp server).

    with FakeOpenAI(responder=solver) as server:      # serves in a thread; server.base_url ends in /v1
        server.faults += [Fault(500), Fault(429, {"Retry-After": "2"})]
        ...
        server.completions                             # [(path, body, monotonic arrival time)]

Completion requests take the next fault if any, else `responder(path, body) -> reply text or
{"tool_calls": [...], "content": ...}`. It serves /models, /chat/completions, /completions, and enough of
/files and /batches for the Batch API path (`hold_batches` keeps jobs in_progress until released).
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


def completion_body(path: str, body: dict, reply) -> dict:
    usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    if path.endswith("/chat/completions"):
        reply = {"content": reply} if isinstance(reply, str) else reply
        calls = [{"id": c.get("id", f"call_{i}"), "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for i, c in enumerate(reply.get("tool_calls", []))]
        message = {"role": "assistant", "content": reply.get("content")}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": reply.get("finish_reason", "tool_calls" if calls else "stop")}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice], "usage": usage}
    choice = {"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}
    return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": body["model"], "choices": [choice], "usage": usage}


class FakeOpenAI:
    def __init__(self, models=("fake-model",), responder=final_answer, latency: float = 0.0, max_concurrency: int | None = None):
        self.models, self.responder, self.latency = list(models), responder, latency
        self.max_concurrency = max_concurrency
        self.faults: list[Fault] = []
        self.completions: list[tuple[str, dict, float]] = []
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
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})

    async def complete(self, request):
        body = await request.json()
        self.completions.append((request.path, body, time.monotonic()))
        fault = self.faults.pop(0) if self.faults else None
        if fault and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault and fault.status != 200:
            error = {"error": {"message": f"fake error {fault.status}", "type": "fake", "code": fault.code}}
            return web.Response(status=fault.status, headers=fault.headers, text=fault.body or json.dumps(error), content_type="application/json")
        if fault and fault.body is not None:
            return web.Response(text=fault.body, content_type="application/json")
        if self._gate:
            async with self._gate:
                await asyncio.sleep(self.latency)
        elif self.latency:
            await asyncio.sleep(self.latency)
        return web.json_response(completion_body(request.path, body, self.responder(request.path, body)))

    def answer_line(self, line: dict) -> dict:
        path = line["url"].removeprefix("/v1")
        body = completion_body("/v1" + path, line["body"], self.responder("/v1" + path, line["body"]))
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
