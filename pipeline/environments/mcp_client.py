"""One MCP client session through the official `mcp` SDK, usable from the worker threads tool calls run in.

The SDK is async (anyio) and its sessions must be entered and left by one task, so every session of the
process lives on one background event loop: a holder task enters `mcp.Client`, signals that it is ready and
waits to be told to close; tool calls are submitted to that loop and awaited with a timeout. A server that
exits, closes the connection or does not answer in time raises EnvironmentDown naming the environment and
what it was asked; an error the server reports for a call (a tool error, invalid parameters) is a ToolError,
which the tool turns into an error observation.
"""

import asyncio
import concurrent.futures
import os
import shutil
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from pipeline.tools.base import EnvironmentDown, Observation, ToolError

GRACE_S = 5.0  # past the SDK's own request timeout, before the call is abandoned here
CLOSE_TIMEOUT_S = 10.0  # the SDK stops a stdio server within about 4.5 s (stdin closed, SIGTERM, SIGKILL)
LOG_TAIL_CHARS = 400

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _forget_loop() -> None:
    global _loop
    _loop = None  # a forked child has the parent's loop object but not its thread


os.register_at_fork(after_in_child=_forget_loop)


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for MCP sessions, started on first use (a daemon thread)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="trajforge-mcp", daemon=True).start()
        return _loop


def log_tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").strip()
    return f"; end of {path}: {text[-LOG_TAIL_CHARS:]}" if text else ""


def describe(exc: BaseException) -> str:
    """One line for an exception, unwrapping the exception groups anyio raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str], timeout_s: float):
    import httpx2  # the HTTP client the mcp SDK is built on
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout_s, read=timeout_s)) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


def transport(target: dict, errlog):
    """The SDK transport for `target`: {"command", "args", "env", "cwd"} (stdio) or {"url", "headers"}."""
    if "url" in target:
        return _http_transport(target["url"], target["headers"], target["timeout_s"])
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=target["command"], args=target["args"], env=target["env"], cwd=target["cwd"])
    return stdio_client(params, errlog=errlog)


class Connection:
    """One MCP session. `label` names it in errors ("environment 'inv' (python srv.py)")."""

    def __init__(self, label: str, target: dict, startup_timeout_s: float, log_path: Path | None, scratch: Path | None = None):
        self.label, self.target, self.startup_timeout_s, self.log_path = label, target, startup_timeout_s, log_path
        self.scratch = scratch  # the server's own folder, removed when the session closes
        self.client = None
        self._ready: concurrent.futures.Future = concurrent.futures.Future()
        self._closing = asyncio.Event()
        self._done = threading.Event()
        self._holder: concurrent.futures.Future | None = None
        self._started = False
        self._log = None

    def open(self) -> "Connection":
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a")
        self._holder = asyncio.run_coroutine_threadsafe(self._hold(), background_loop())
        try:
            self._ready.result(self.startup_timeout_s)
        except concurrent.futures.TimeoutError:
            self.close()
            raise EnvironmentDown(f"{self.label}: the MCP server did not answer within {self.startup_timeout_s:g}s of starting"
                                  f"{log_tail(self.log_path)}") from None
        except Exception as exc:
            self.close()
            raise EnvironmentDown(f"{self.label}: cannot start the MCP server ({describe(exc)}){log_tail(self.log_path)}") from None
        return self

    async def _hold(self) -> None:
        from mcp import Client

        self._started = True
        try:
            async with Client(transport(self.target, self._log), cache=None) as client:
                self.client = client
                self._ready.set_result(None)
                await self._closing.wait()
        except BaseException as exc:  # a failed start is reported by open(); a later death by the next call
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(describe(exc)))
        finally:
            self.client = None
            self._done.set()

    def request(self, what: str, coroutine_fn, timeout_s: float):
        """Run `coroutine_fn(client)` on the session's loop; `what` names the request in errors."""
        client = self.client
        if client is None:
            raise EnvironmentDown(f"{self.label}: the MCP session is closed (the server exited?) before {what}{log_tail(self.log_path)}")
        future = asyncio.run_coroutine_threadsafe(coroutine_fn(client), background_loop())
        try:
            return future.result(timeout_s + GRACE_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise EnvironmentDown(f"{self.label}: the MCP server did not answer {what} within {timeout_s:g}s") from None
        except Exception as exc:
            raise self._failure(what, exc, timeout_s) from None

    def _failure(self, what: str, exc: Exception, timeout_s: float) -> Exception:
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        if isinstance(exc, MCPError) and exc.code == REQUEST_TIMEOUT:
            return EnvironmentDown(f"{self.label}: the MCP server did not answer {what} within {timeout_s:g}s")
        if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
            return EnvironmentDown(f"{self.label}: the MCP server closed the connection (it exited?) during {what}{log_tail(self.log_path)}")
        if isinstance(exc, MCPError):  # the server answered with an error: the call was wrong, not the server
            return ToolError(exc.message)
        return EnvironmentDown(f"{self.label}: {what} failed ({describe(exc)}){log_tail(self.log_path)}")

    def list_tools(self, timeout_s: float) -> list:
        async def all_pages(client):
            tools, cursor = [], None
            for _ in range(1000):  # a server that pages forever must not hang the start
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
            return tools

        return self.request("tools/list", all_pages, timeout_s)

    def call_tool(self, name: str, arguments: dict, timeout_s: float) -> Observation:
        result = self.request(f"tools/call {name}", lambda client: client.call_tool(name, arguments, read_timeout_seconds=timeout_s), timeout_s)
        return result_observation(result)

    def close(self) -> None:
        background_loop().call_soon_threadsafe(self._closing.set)
        if self._holder is not None and not self._ready.done():
            self._holder.cancel()  # still starting (a server that never answers): stop waiting for it
        if self._started:
            self._done.wait(CLOSE_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def result_observation(result) -> Observation:
    """A CallToolResult as observation text: its text blocks, in order; other blocks named by their type; the
    structured content as JSON when there is no text. `is_error` makes it an error observation."""
    import json

    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind or 'content'}{': ' + block.mime_type if getattr(block, 'mime_type', None) else ''}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, sort_keys=True))
    text = "\n".join(parts) if parts else "(no output)"
    return Observation(f"Error: {text}" if result.is_error else text, bool(result.is_error))
