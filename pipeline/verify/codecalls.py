"""Tool-call validity inside code (CodeAct cells and python tool calls), read with `ast`: a call to a function
that no cell so far defined, imported or was offered is invalid, and so is a call to an offered tool with
positional arguments, unknown or missing keywords, or literal values its JSON schema rejects: the same defects
the tool_calls check catches in the text and function-calling formats. The interpreter persists through an
episode, so a name bound by an earlier cell counts as defined."""

import ast
import builtins
import json
import re

SANDBOX_NAMES = {"ToolCallError", "_", "__name__", "__builtins__"}
NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")
INVALID_ARGUMENTS = re.compile(r"ToolCallError: (invalid arguments for \w+[^\n]*)|TypeError: (\w+\(\) takes keyword arguments only)")
_MISSING = object()


def bound_names(tree: ast.AST) -> set[str]:
    """Every name a cell binds anywhere (assignments, definitions, imports, loop and with targets,
    parameters): over-approximated, so a name is never reported undefined by mistake."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.MatchAs) and node.name:
            names.add(node.name)
    return names


def _literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _MISSING


def tool_call_problem_in(call: ast.Call, name: str, tool) -> str | None:
    """Whether one call of an offered tool function is valid against the tool's schema."""
    if call.args:
        return f"{name}() takes keyword arguments only"
    if any(k.arg is None for k in call.keywords):
        return None  # **kwargs: the keys are not known before running
    given = {k.arg: _literal(k.value) for k in call.keywords}
    literal = {key: value for key, value in given.items() if value is not _MISSING}
    problems = [p for p in tool.argument_errors(literal)
                if not any(f"'{key}' is a required property" in p for key in given if key not in literal)]
    return f"invalid arguments for {name}: {'; '.join(problems)}" if problems else None


def cell_problem(code: str, defined: set[str], offered: dict, registered: set[str]) -> tuple[str | None, set[str]]:
    """(the first invalid call in one cell, the names it binds)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError) as exc:
        return f"the code does not parse ({type(exc).__name__}: {getattr(exc, 'msg', exc)})", set()
    bound = bound_names(tree)
    known = defined | bound | set(offered) | set(dir(builtins)) | SANDBOX_NAMES
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        name = node.func.id
        if name in offered and name not in defined | bound:
            problem = tool_call_problem_in(node, name, offered[name])
            if problem:
                return problem, bound
        elif name not in known:
            if name in registered:
                return f"calls the tool {name}(), which this task does not offer (offered: {', '.join(sorted(offered)) or 'none'})", bound
            return f"calls {name}(), which is not defined (offered: {', '.join(sorted(offered)) or 'none'})", bound
    return None, bound


def runtime_problem(observation: str | None) -> str | None:
    """What the interpreter said about an invalid call, where the code hid it from static reading."""
    text = observation or ""
    if match := NAME_ERROR.search(text):
        return f"called {match.group(1)}, which was not defined (NameError)"
    if match := INVALID_ARGUMENTS.search(text):
        return match.group(1) or match.group(2)
    return None


def code_of(step: dict) -> str | None:
    """The code of a code action (CodeAct) or a python tool call, else None."""
    if step.get("tool_name") != "python" or not step.get("tool_arguments"):
        return None
    try:
        arguments = json.loads(step["tool_arguments"])
    except json.JSONDecodeError:
        return None
    code = arguments.get("code") if isinstance(arguments, dict) else None
    return code if isinstance(code, str) else None
