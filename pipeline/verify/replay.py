"""Checks that re-examine the actions: tool-call validity, and replay of every action in a fresh environment.

Replay catches fabricated or edited observations: the built-in tools are deterministic, so re-running the
actions in order must reproduce the observations, and, for stateful environments, the expected final state.
Environment tools (MCP servers, modules, plugins) are answered from the run's recording of the episode
(pipeline/environments/recordings.py), so a row is re-verified offline; `live` re-executes them against the
environment instead, and a difference is drift.
"""

import json

from pipeline.environments import Toolbox
from pipeline.jsonutil import canonical_json
from pipeline.llm import transient
from pipeline.tools import TOOLS, EnvironmentLost, Observation, Tool, final_state, run_action
from pipeline.tools.naming import wire_name
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


def _tools(toolbox: Toolbox | None) -> dict[str, Tool]:
    """What a check can reach: the verify stage's toolbox (built-ins and environments), else the built-ins."""
    return TOOLS if toolbox is None else toolbox.tools


def _not_here(arguments, env) -> Observation:
    return Observation("Error: this tool is described by the row, not available here", error=True)


def offered_tools(row: dict, toolbox: Toolbox | None = None) -> dict[str, Tool]:
    """The tools a row offers, by name: the tool the toolbox has where there is one, else a tool made from the
    row's own `tools` spec (imported trajectories), good for validating arguments but not for running."""
    tools = _tools(toolbox)
    specs = {s["function"]["name"]: s["function"] for s in row.get("tools") or []
             if isinstance(s, dict) and isinstance(s.get("function"), dict) and s["function"].get("name")}
    offered = {}
    for name in allowed_tools(row):
        if name in tools:
            offered[name] = tools[name]
        elif name in specs:
            offered[name] = Tool(name, specs[name].get("description", ""), specs[name].get("parameters") or {"type": "object"}, _not_here)
    return offered


def tool_call_problem(row: dict, toolbox: Toolbox | None = None) -> str | None:
    """The first invalid action among those the row trains on: a step whose message is masked out of training
    (a self-reflected row's deliberate mistake, `train_mask` false) is context, not a target. Code actions are
    read too (pipeline/verify/codecalls.py): their calls must be as valid as tool calls in the other formats;
    inside code the tools are functions under their wire names (`inv__get_item`)."""
    offered = offered_tools(row, toolbox)
    registered = {wire_name(name) for name in [*_tools(toolbox), *offered]}
    mask = row.get("train_mask") or []
    defined: set[str] = set()
    for step in _actions(row):
        trained = not (step["message_index"] < len(mask) and not mask[step["message_index"]])
        problem = _call_problem(step, offered)
        code = codecalls.code_of(step) if problem is None else None
        if code is not None:
            functions = {wire_name(n): t for n, t in offered.items() if n != "python"} if step["action_type"] == "code" else {}
            problem, bound = codecalls.cell_problem(code, defined, functions, registered)
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


def _around_difference(a: str | None, b: str | None, context: int = 30, limit: int = 80) -> tuple[str, str]:
    """Both texts shown from a little before where they first differ, so a long observation shows its change."""
    a, b = a or "", b or ""
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, at - context) if max(len(a), len(b)) > limit else 0
    lead = "..." if start else ""
    return _short(lead + a[start:], limit), _short(lead + b[start:], limit)


def _short(text: str | None, limit: int = 80) -> str:
    text = "" if text is None else text
    return repr(text if len(text) <= limit else text[:limit] + "...")


def unknown_tools(row: dict, toolbox: Toolbox | None = None) -> list[str]:
    """Tools a row's actions use (for CodeAct: every tool it offers inside the code) that are not known here."""
    used = {s["tool_name"] for s in _actions(row) if s["tool_name"]}
    if any(s["action_type"] == "code" for s in _actions(row)):
        used |= set(allowed_tools(row))
    return sorted(name for name in used if name not in _tools(toolbox))


def replay_env(row: dict, max_observation_chars: int, sandbox: dict | None, toolbox: Toolbox, live: bool):
    """(a fresh Env built as sampling built it, None) or (None, why it cannot be built). Offline, environment
    tools answer from the row's recording; live, they are called."""
    names = allowed_tools(row)
    spec = row.get("environment")
    ours = code_is_ours(row.get("source") or "", (row.get("meta") or {}).get("task_source") or "")
    if live or not any(toolbox.tools[n].recorded for n in names if n in toolbox.tools):
        return toolbox.env(names, spec, max_observation_chars, sandbox or {}, f"replay:{row.get('id')}", trusted_code=ours), None
    recording = (row.get("meta") or {}).get("recording")
    if not recording or toolbox.recordings is None:
        return None, "the row uses environment tools but names no recording of them (meta.recording)"
    episode = toolbox.recordings.episode(recording["attempt"])
    return toolbox.replay_env(names, spec, max_observation_chars, sandbox or {}, episode, trusted_code=ours), None


def replay_problem(row: dict, max_observation_chars: int, sandbox: dict | None, toolbox: Toolbox | None = None,
                   live: bool = False) -> str | None:
    """Re-run every parsed action in a fresh environment built as sampling built it (same observation limit and
    sandbox limits); the first observation or state that differs. A live environment that fails the replay
    makes the row wait for a retry (a transient failure), not fail."""
    toolbox = toolbox or Toolbox()
    if unknown := unknown_tools(row, toolbox):
        return f"cannot replay: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a tool known here, so the observations cannot be reproduced"
    env, problem = replay_env(row, max_observation_chars, sandbox, toolbox, live)
    if problem:
        return problem
    try:
        with env:
            return _replayed(row, env, "the environment now says" if live else "replayed")
    except EnvironmentLost as exc:
        transient.note("environment")
        return f"the live environment failed during replay: {exc}"


def _replayed(row: dict, env, replayed_by: str) -> str | None:
    allowed = allowed_tools(row)
    for step in _actions(row):
        if step["tool_name"] is None:
            continue  # nothing was executed for an unparseable reply
        try:
            arguments = json.loads(step["tool_arguments"] or "null")
        except json.JSONDecodeError:
            return f"step {step['index']}: tool_arguments is not JSON"
        replayed = run_action(step["action_type"], step["tool_name"], arguments, env, allowed).content
        if replayed != step["observation"]:
            recorded, now = _around_difference(step["observation"], replayed)
            return f"step {step['index']} ({step['tool_name']}): recorded observation {recorded} != {replayed_by} {now}"
    expected = ((row.get("ground_truth") or {}).get("final_state"))
    if expected is not None:
        state = final_state(env)
        if canonical_json(state) != canonical_json(expected):
            return f"final state after replay differs from the expected one: {_short(canonical_json(state), 200)}"
    return None
