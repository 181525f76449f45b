"""Program checks. A check is a plain function `(row, options) -> {name, passed, detail}`; `options` are the
check's settings from the config (`verify.checks[i].options`). A new check is one function plus one registry
line, and its options' defaults in DEFAULT_OPTIONS. An installed package adds checks through the
`trajforge.checks` entry point (pipeline/plugins.py); a plugin check's option defaults are its
`default_options` attribute."""

import re

from pipeline import plugins, schema
from pipeline.jsonutil import canonical_json
from pipeline.tools.base import DEFAULT_MAX_OBSERVATION_CHARS
from pipeline.verify import code_safety, content, context, credentials, grounding, junk, replay
from pipeline.verify.agreement import disagreement, step_id_problem
from pipeline.verify.answers import answers_match, mentioned

DEFAULT_OPTIONS = {
    "loops": {"max_consecutive": 1, "max_total": 2},
    "limits": {"max_steps": 20, "max_chars": 32000, "max_message_chars": 8000},
    "secrets": {"env": ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]},
    "replay": {"skip_unknown_tools": False, "live": False},  # live (verify --live): environment tools are called again
    "context": {"require_system": True},
}


def result(name: str, passed: bool, detail: str | None = None) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail}


def _from_problem(name: str, problem: str | None, ok: str) -> dict:
    return result(name, problem is None, problem or ok)


def check_schema(row: dict, options: dict) -> dict:
    """The row against schemas/trajectory.schema.json; a row verify had to repair to store it (its original is
    in meta.schema_repair) fails with the problems the original had."""
    problems = schema.errors("trajectory", row) or ((row.get("meta") or {}).get("schema_repair") or {}).get("problems") or []
    return result("schema", not problems, "; ".join(problems[:3]) if problems else "valid")


def check_messages_steps(row: dict, options: dict) -> dict:
    return _from_problem("messages_steps", disagreement(row), "messages and steps agree")


def check_tool_calls(row: dict, options: dict) -> dict:
    problem = replay.tool_call_problem(row, options.get("toolbox"))
    return _from_problem("tool_calls", problem, "every call names an available tool with valid arguments")


def check_step_ids(row: dict, options: dict) -> dict:
    return _from_problem("step_ids", step_id_problem(row), "tool-call ids agree between steps and messages")


def check_replay(row: dict, options: dict) -> dict:
    """`toolbox` (the verify stage's environments) and the sampling limits are set by the stage."""
    live = options.get("live", False)
    if options.get("skip_unknown_tools") and (unknown := replay.unknown_tools(row, options.get("toolbox"))):
        return result("replay", True, f"not replayed: {', '.join(unknown)} not known here (skip_unknown_tools)")
    problem = replay.replay_problem(row, options.get("max_observation_chars", DEFAULT_MAX_OBSERVATION_CHARS), options.get("sandbox"),
                                    options.get("toolbox"), live)
    return _from_problem("replay", problem, "every observation reproduced" + (" by the live environment" if live else ""))


def check_final_answer(row: dict, options: dict) -> dict:
    answer = row.get("final_answer")
    present = isinstance(answer, str) and answer.strip() != ""
    return result("final_answer", present, "present" if present else (row.get("error") or "no final answer"))


def check_answer(row: dict, options: dict) -> dict:
    if not row.get("ground_truth"):
        return result("answer", True, "no ground truth to compare with")
    if row["ground_truth"].get("no_tool") == "decline":
        return result("answer", True, "a task to decline: the no_tool check decides")
    if "conversation" in (row.get("meta") or {}):
        return _conversation_answer(row)
    ok, detail = answers_match(row.get("final_answer"), row["ground_truth"], row.get("instruction") or "", _vocabulary(row))
    return result("answer", ok, detail)


def _vocabulary(row: dict) -> set[str]:
    """The words of a trajectory other than its last message (where the final answer is): what lets a
    cut-off word be recognised as the start of one of them."""
    texts = [m.get("content") for m in row["messages"][:-1]] + [s["observation"] for s in row["steps"]] + [row.get("instruction")]
    return {w.casefold() for text in texts if isinstance(text, str) for w in re.findall(r"[A-Za-z]{2,}", text)}


def _conversation_answer(row: dict) -> dict:
    """With a simulated user the answer may be told in any message to the user, in words: it must be stated
    in one of them (docs/synthesis.md)."""
    told = [s["raw_action"] or "" for s in row["steps"] if s["action_type"] in ("ask_user", "final_answer")]
    expected = row["ground_truth"].get("answer")
    if any(mentioned(text, row["ground_truth"]) for text in told):
        return result("answer", True, f"{expected!r} was told to the user")
    return result("answer", False, f"no message to the user states {expected!r}")


def check_actions(row: dict, options: dict) -> dict:
    """The ground-truth actions that change the environment (a blueprint's `ground_truth.actions`) must all have
    been done, in order, with the same arguments; reads may differ (an agent may look things up its own way)."""
    wanted = [a for a in (row.get("ground_truth") or {}).get("actions") or [] if a["changes_state"]]
    if not wanted:
        return result("actions", True, "no state-changing ground-truth actions")
    if row["format"] == "codeact":
        return result("actions", True, "code actions are not compared call by call (final_state and replay check what they did)")
    done = [(s["tool_name"], s["tool_arguments"]) for s in row["steps"] if s["action_type"] == "tool_call" and s["tool_name"] and not s["error"]]
    position = 0
    for action in wanted:
        key = (action["tool"], canonical_json(action["arguments"]))
        while position < len(done) and done[position] != key:
            position += 1
        if position == len(done):
            return result("actions", False, f"ground-truth action {action['tool']} {key[1]} was not done (in order)")
        position += 1
    return result("actions", True, f"all {len(wanted)} state-changing ground-truth actions done in order")


DECLINE = re.compile(r"\b(?:can(?:no|')?t|unable|not able|no (?:tool|way)|do(?:n't| not) have (?:a |any )?(?:tool|way|access))\b", re.IGNORECASE)


def check_no_tool(row: dict, options: dict) -> dict:
    """A task no offered tool fits (`ground_truth.no_tool`, as BFCL's irrelevance category): passed only if the
    agent called no tool and, for a task to decline, said it cannot do it; any other task passes."""
    kind = (row.get("ground_truth") or {}).get("no_tool")
    if not kind:
        return result("no_tool", True, "not a no-tool task")
    called = next((s for s in row["steps"] if s["action_type"] in replay.ACTION_TYPES), None)
    if called is not None:
        return result("no_tool", False, f"step {called['index']} calls {called['tool_name']}; no offered tool fits this task")
    if kind == "decline" and not DECLINE.search(row.get("final_answer") or ""):
        return result("no_tool", False, "the final answer does not decline the request")
    return result("no_tool", True, "declined without calling a tool" if kind == "decline" else "answered without calling a tool")


def check_loops(row: dict, options: dict) -> dict:
    return _from_problem("loops", content.loop_problem(row, options["max_consecutive"], options["max_total"]), "no repeated actions")


def check_limits(row: dict, options: dict) -> dict:
    problem = content.limits_problem(row, options["max_steps"], options["max_chars"], options["max_message_chars"])
    return _from_problem("limits", problem, "within step and length limits")


def check_secrets(row: dict, options: dict) -> dict:
    return _from_problem("secrets", credentials.secret_problem(row, options["values"]), "no secrets")


def check_refusal(row: dict, options: dict) -> dict:
    return _from_problem("refusal", content.refusal_problem(row), "no refusal")


def check_format_junk(row: dict, options: dict) -> dict:
    return _from_problem("format_junk", junk.junk_problem(row), "clean")


def check_grounding(row: dict, options: dict) -> dict:
    return _from_problem("grounding", grounding.grounding_problem(row), "acted where needed; the answer's values were observed")


def check_consistency(row: dict, options: dict) -> dict:
    return _from_problem("consistency", grounding.consistency_problem(row), "quoted tool results agree with the observations")


def check_context(row: dict, options: dict) -> dict:
    return _from_problem("context", context.context_problem(row, options["require_system"]), "prompt, user turn and tools are the task's")


def check_mask(row: dict, options: dict) -> dict:
    return _from_problem("mask", context.mask_problem(row), "trains on the assistant's messages only")


def check_code_safety(row: dict, options: dict) -> dict:
    return _from_problem("code_safety", code_safety.unsafe_code_problem(row), "no process, network, system-path or environment access in code")


def check_final_state(row: dict, options: dict) -> dict:
    """A stateful task is solved only if the environment ends in the expected state (what was done, not only said)."""
    expected = (row.get("ground_truth") or {}).get("final_state")
    if expected is None:
        return result("final_state", True, "no expected final state")
    actual = row["meta"].get("final_state")
    if actual is None:
        return result("final_state", False, "the row records no final state")
    if actual != expected:
        return result("final_state", False, f"final state differs at {_first_difference(expected, actual)}")
    return result("final_state", True, "final state matches")


def _first_difference(expected, actual, path: str = "") -> str:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if expected.get(key) != actual.get(key):
                return _first_difference(expected.get(key), actual.get(key), f"{path}.{key}" if path else str(key))
    return f"{path}: expected {expected!r}, got {actual!r}"


CHECKS = {
    "schema": check_schema,
    "messages_steps": check_messages_steps,
    "tool_calls": check_tool_calls,
    "replay": check_replay,
    "final_answer": check_final_answer,
    "answer": check_answer,
    "loops": check_loops,
    "limits": check_limits,
    "secrets": check_secrets,
    "refusal": check_refusal,
    "format_junk": check_format_junk,
    "final_state": check_final_state,
    "actions": check_actions,
    "grounding": check_grounding,
    "consistency": check_consistency,
    "context": check_context,
    "mask": check_mask,
    "code_safety": check_code_safety,
    "step_ids": check_step_ids,
    "no_tool": check_no_tool,
}


def _check(name: str, value):
    if not callable(value):
        raise TypeError(f"{value!r} is not a function (row, options) -> result")
    DEFAULT_OPTIONS.setdefault(name, dict(getattr(value, "default_options", {})))
    return value


CHECKS = plugins.Registry("checks", CHECKS, _check)
