"""The host's half of the control channel with the interpreter (sandbox_server.py has the other half).

Host to interpreter: a 4-byte length and a `marshal`led value. Interpreter to host: one JSON line per frame.
The interpreter's side is reachable by the code it runs, so every frame read here is untrusted input: it must
parse (bounded nesting), be of one of the expected kinds with exactly the expected fields and types, and belong
to the cell in flight; anything else raises `Forged`, and the sandbox is reset.
"""

import json
import marshal

MAX_LINE_BYTES = 16 << 20
_DONE = {"done": int, "stdout": str, "stdout_bytes": int, "stderr": str, "stderr_bytes": int,
         "value": (str, type(None)), "error": (str, type(None)), "threads": int}
_CALL = {"call": str, "arguments": dict}
_READY = {"ready": bool, "fd": int}


class Forged(Exception):
    """A frame the interpreter would not send: the code wrote to the control channel."""


def encode(message: dict) -> bytes:
    data = marshal.dumps(message)
    return len(data).to_bytes(4, "big") + data


def _typed(frame: dict, fields: dict) -> bool:
    return frame.keys() == fields.keys() and all(
        isinstance(frame[k], t) and not (t is int and isinstance(frame[k], bool)) for k, t in fields.items())


def decode(line: bytes) -> dict:
    try:
        frame = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: '[' nested 100,000 deep
        raise Forged("the interpreter's reply was garbled") from None
    if not isinstance(frame, dict):
        raise Forged("the interpreter's reply was not an object")
    return frame


def ready(frame: dict) -> int:
    """The descriptor the interpreter reads requests from."""
    if not _typed(frame, _READY) or frame["ready"] is not True:
        raise Forged("the interpreter's first reply was not its greeting")
    return frame["fd"]


def call_or_done(frame: dict, cell: int) -> str:
    """'call' or 'done', for a well-formed frame of cell `cell`."""
    if _typed(frame, _CALL):
        return "call"
    if _typed(frame, _DONE) and frame["done"] == cell and min(frame["stdout_bytes"], frame["stderr_bytes"], frame["threads"]) >= 0:
        return "done"
    raise Forged("the interpreter sent a malformed message")
