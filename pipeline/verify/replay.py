"""Checks that re-examine the actions: tool-call validity, and replay of every action in a fresh environment.

Replay catches fabricated or edited observations: the tools are deterministic, so re-running the recorded
actions in order must reproduce the recorded observations, and, for stateful environments, the expected final
state.
"""

import json

from pipeline.jsonutil import canonical_json
from pipeline.tools import TOOLS, Env, Observation, Tool, final_state, run_action
from pipeline.tools.python import code_is_ours
from pipeline.verify import codecalls

ACTION_TYPES = ("tool_call", "code")


def allowed_tools(row: dict) -> list[str]:
    names = (row.get("meta") or {}).get("tools")
    if names:
        return list(names)
    return [spec["function"]["name"] for spec in row.get("tools") or []]


def _actions(row: dict):
    for step in row["steps"]:
        if step["action_type"] in ACTION_TYPES:
            yield step


def _not_here(arguments, env) -> Observation:
    return Observation("Error: this tool is described by the row, not available here", error=True)


def offered_tools(row: dict) -> dict[str, Tool]:
    """The tools a row offers, by name: the registered tool where there is one, else a tool made from the
    row's own `tools` spec (imported trajectories), good for validating arguments but not for running."""
    specs = {s["function"]["name"]: s["function"] for s in row.get("tools") or []
             if isinstance(s, dict) and isinstance(s.get("function"), dict) and s["function"].get("name")}
    offered = {}
    for name in allowed_tools(row):
        if name in TOOLS:
            offered[name] = TOOLS[name]
        elif name in specs:
            offered[name] = Tool(name, specs[name].get("description", ""), specs[name].get("parameters") or {"type": "object"}, _not_here)
    return offered


def tool_call_problem(row: dict) -> str | None:
    """The first invalid action among those the row trains on: a step whose message is masked out of training
    (a self-reflected row's deliberate mistake, `train_mask` false) is context, not a target. Code actions are
    read too (pipeline/verify/codecalls.py): their calls must be as valid as tool calls in the other formats."""
    offered = offered_tools(row)
    mask = row.get("train_mask") or []
    defined: set[str] = set()
    for step in _actions(row):
        trained = not (step["message_index"] < len(mask) and not mask[step["message_index"]])
        problem = _call_problem(step, offered)
        code = codecalls.code_of(step) if problem is None else None
        if code is not None:
            functions = {n: t for n, t in offered.items() if n != "python"} if step["action_type"] == "code" else {}
            problem, bound = codecalls.cell_problem(code, defined, functions, set(TOOLS) | set(offered))
            defined |= bound
            problem = problem or codecalls.runtime_problem(step["observation"])
        if problem and trained:
            return f"step {step['index']}: {problem}"
    return None


def _call_problem(step: dict, offered: dict[str, Tool]) -> str | None:
    if step["tool_name"] is None:
        return f"the reply could not be parsed into a tool call ({step['error']})"
    names = list(offered) + (["python"] if step["action_type"] == "code" and "python" not in offered else [])  # CodeAct always runs python
    if step["tool_name"] not in names:
        return f"unknown tool {step['tool_name']!r} (available: {', '.join(names)})"
    try:
        arguments = json.loads(step["tool_arguments"] or "null")
    except json.JSONDecodeError:
        return "tool_arguments is not JSON"
    problems = (offered.get(step["tool_name"]) or TOOLS["python"]).argument_errors(arguments)
    if problems:
        return f"invalid arguments for {step['tool_name']}: {'; '.join(problems)}"
    return None


def _short(text: str | None, limit: int = 80) -> str:
    text = "" if text is None else text
    return repr(text if len(text) <= limit else text[:limit] + "...")


def unknown_tools(row: dict) -> list[str]:
    """Tools a row's actions use (for CodeAct: every tool it offers inside the code) that are not registered."""
    used = {s["tool_name"] for s in _actions(row) if s["tool_name"]}
    if any(s["action_type"] == "code" for s in _actions(row)):
        used |= set(allowed_tools(row))
    return sorted(name for name in used if name not in TOOLS)


def replay_problem(row: dict, max_observation_chars: int, sandbox: dict | None) -> str | None:
    """Re-run every parsed action in a fresh environment built as sampling built it (same observation limit and
    sandbox limits); the first observation or state that differs."""
    allowed = allowed_tools(row)
    if unknown := unknown_tools(row):
        return f"cannot replay: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a tool known here, so the observations cannot be reproduced"
    ours = code_is_ours(row.get("source") or "", (row.get("meta") or {}).get("task_source") or "")
    with Env(row.get("environment"), max_observation_chars, sandbox, trusted_code=ours) as env:
        for step in _actions(row):
            if step["tool_name"] is None:
                continue  # nothing was executed for an unparseable reply
            try:
                arguments = json.loads(step["tool_arguments"] or "null")
            except json.JSONDecodeError:
                return f"step {step['index']}: tool_arguments is not JSON"
            replayed = run_action(step["action_type"], step["tool_name"], arguments, env, allowed).content
            if replayed != step["observation"]:
                return f"step {step['index']}: recorded observation {_short(step['observation'])} != replayed {_short(replayed)}"
        expected = ((row.get("ground_truth") or {}).get("final_state"))
        if expected is not None:
            state = final_state(env)
            if canonical_json(state) != canonical_json(expected):
                return f"final state after replay differs from the expected one: {_short(canonical_json(state), 200)}"
    return None
