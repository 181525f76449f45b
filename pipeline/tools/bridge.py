"""Host-side tool calls made from inside a sandbox (CodeAct code calling `sql(...)`): the one place their
limits are applied, whatever the tool (a registered tool, and later an MCP or Python-module tool).

A call runs in a thread of its own and is waited for at most the per-call limit (`tool_call_seconds`) and
never past the cell's deadline. A thread cannot be killed, so a call over its limit is abandoned: its result,
if it ever comes, is dropped, and the code sees an error. Tools bound their own work too (the calculator's
number sizes, sql's VM steps), so an abandoned call ends soon by itself.
"""

import threading
import time
from typing import Callable

ToolCaller = Callable[[str, dict], tuple[str, bool]]


class DeadlinePassed(Exception):
    """The cell's deadline passed while a tool call was running."""


def call(call_tool: ToolCaller, name: str, arguments: dict, deadline: float, seconds: float, max_chars: int) -> tuple[str, bool]:
    """(content, is_error) of one call, within `seconds` and the cell's `deadline`, content cut to `max_chars`."""
    outcome: list[tuple[str, bool]] = []

    def work():
        try:
            outcome.append(call_tool(name, arguments))
        except Exception as exc:  # a tool that raises anyway is an error observation, as in Tool.run
            outcome.append((f"{name} failed: {type(exc).__name__}: {exc}", True))

    worker = threading.Thread(target=work, name=f"tool-call-{name}", daemon=True)
    worker.start()
    wait = min(seconds, deadline - time.monotonic())
    worker.join(max(0.0, wait))
    if not outcome:
        if wait < seconds:
            raise DeadlinePassed(name)
        return f"{name}: no result within {seconds:g} s (the per-call time limit); the call was abandoned", True
    content, is_error = outcome[0]
    if len(content) > max_chars:
        return content[:max_chars] + f"\n({name}: the result was cut at the output limit of {max_chars} characters)", True
    return content, is_error
