"""Tool names: qualified names in tasks and configs, wire names for models.

Tasks, configs and trajectory steps address an environment's tool as `<environment>.<tool>` (`inv.get_item`);
built-in tools have bare names (`calculator`). Models see every tool under a wire name the OpenAI API accepts
(letters, digits, `_` and `-`, at most 64 characters) that is also a Python identifier, so CodeAct can call it
as a function: `inv__get_item`. A bare name is its own wire name. A name too long for the limit keeps a prefix
and gains a short hash, so the mapping stays a pure function of the qualified name.
"""

import hashlib
import re

SEPARATOR = "__"
MAX_WIRE_CHARS = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def qualified(environment: str, tool: str) -> str:
    return f"{environment}.{tool}"


def wire_name(name: str) -> str:
    """The name a model sees for the tool called `name` (qualified or bare)."""
    environment, dot, tool = name.partition(".")
    wire = f"{environment}{SEPARATOR}{tool}" if dot else name
    wire = _UNSAFE.sub("_", wire)
    if wire[:1].isdigit():
        wire = "_" + wire
    if len(wire) > MAX_WIRE_CHARS:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        wire = f"{wire[:MAX_WIRE_CHARS - 9]}_{digest}"
    return wire


def resolve(name: str | None, offered) -> str | None:
    """The qualified name among `offered` that a model meant by `name` (its wire name or the qualified name
    itself); `name` unchanged when none matches, so the caller reports it as an unknown tool."""
    if name is None or name in offered:
        return name
    for candidate in offered:
        if wire_name(candidate) == name:
            return candidate
    return name
