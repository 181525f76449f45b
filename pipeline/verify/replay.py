"""Checks that re-examine the actions: tool-call validity, and replay of every action in a fresh environment.

Replay catches fabricated or edited observations: the tools are deterministic, so re-running the recorded
actions in order must reproduce the recorded observations, and, for stateful environments, the expected final
state.
"""

import json

from pipeline.jsonutil import canonical_json
from pipeline.tools import TOOLS, Env, final_state, run_action
from pipeline.tools.python import code_is_ours

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


def tool_call_problem(row: dict) -> str | None:
    """The first invalid action among those the row trains on: a step whose message is masked out of training
    (a self-reflected row's deliberate mistake, `train_mask` false) is context, not a target."""
    allowed = allowed_tools(row)
    mask = row.get("train_mask") or []
    for step in _actions(row):
        if step["message_index"] < len(mask) and not mask[step["message_index"]]:
            continue
        where = f"step {step['index']}"
        if step["tool_name"] is None:
            return f"{where}: the reply could not be parsed into a tool call ({step['error']})"
        offered = allowed + ["python"] if step["action_type"] == "code" else allowed  # CodeAct always runs python
        if step["tool_name"] not in TOOLS or step["tool_name"] not in offered:
            return f"{where}: unknown tool {step['tool_name']!r} (available: {', '.join(offered)})"
        try:
            arguments = json.loads(step["tool_arguments"] or "null")
        except json.JSONDecodeError:
            return f"{where}: tool_arguments is not JSON"
        problems = TOOLS[step["tool_name"]].argument_errors(arguments)
        if problems:
            return f"{where}: invalid arguments for {step['tool_name']}: {'; '.join(problems)}"
    return None


def _short(text: str | None, limit: int = 80) -> str:
    text = "" if text is None else text
    return repr(text if len(text) <= limit else text[:limit] + "...")


def replay_problem(row: dict, max_observation_chars: int, sandbox: dict | None) -> str | None:
    """Re-run every parsed action in a fresh environment built as sampling built it (same observation limit and
    sandbox limits); the first observation or state that differs."""
    allowed = allowed_tools(row)
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
