"""A function's JSON schema from its type hints and docstring, for tools written as plain Python functions.

    def get_item(state, item_id: str, with_price: bool = False) -> str:
        \"\"\"Look up an item.

        Args:
            item_id: The item's id, e.g. "A1".
            with_price: Also say what it costs.
        \"\"\"

gives the description "Look up an item." and {"type": "object", "properties": {"item_id": {"type": "string",
"description": "The item's id, e.g. \\"A1\\"."}, "with_price": {"type": "boolean", "default": false, ...}},
"required": ["item_id"], "additionalProperties": false}. A first parameter named `state` is the episode's
state, not an argument. Hints: str, int, float, bool, list[X], dict, Literal[...], X | None; anything else
(or no hint) accepts any JSON value.
"""

import inspect
import re
import types
import typing

STATE_PARAMETER = "state"
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_ARGUMENT = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def type_schema(hint) -> dict:
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset):
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        schemas = [{"type": "null"} if a is type(None) else type_schema(a) for a in args]
        return {"anyOf": schemas} if all(schemas) else {}
    return {}


def docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {argument: description}) from a Google-style docstring: the first paragraph, and the
    entries of its Args section."""
    lines = inspect.cleandoc(doc or "").splitlines()
    described: dict[str, str] = {}
    summary, current, indent, in_args = [], None, None, False
    for line in lines:
        depth = len(line) - len(line.lstrip())
        if _SECTION.match(line):
            in_args, current, indent = True, None, None
        elif in_args and line.strip() and depth == 0:
            in_args = False  # the next section (Returns:, Raises:, ...)
        elif in_args and line.strip():
            match = _ARGUMENT.match(line)
            if match and indent in (None, depth):
                indent, current = depth, match.group(1).lstrip("*")
                described[current] = match.group(2).strip()
            elif current is not None:
                described[current] = f"{described[current]} {line.strip()}".strip()
        elif not in_args:
            summary.append(line)
    return "\n".join(summary).strip().split("\n\n")[0].replace("\n", " ").strip(), described


def takes_state(fn) -> bool:
    parameters = list(inspect.signature(fn).parameters)
    return bool(parameters) and parameters[0] == STATE_PARAMETER


def function_schema(fn) -> tuple[str, dict]:
    """(description, parameters schema) of `fn`."""
    description, described = docstring_parts(fn.__doc__)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an unresolvable forward reference: fall back to "any value"
        hints = {}
    properties, required = {}, []
    for position, (name, parameter) in enumerate(inspect.signature(fn).parameters.items()):
        if position == 0 and name == STATE_PARAMETER:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        schema = type_schema(hints.get(name))
        if name in described:
            schema["description"] = described[name]
        if parameter.default is parameter.empty:
            required.append(name)
        elif parameter.default is None or isinstance(parameter.default, (str, int, float, bool)):
            schema["default"] = parameter.default
        properties[name] = schema
    parameters = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        parameters["required"] = required
    return description, parameters
