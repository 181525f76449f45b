"""Program checks. A check is a plain function `(row, options) -> {name, passed, detail}`; `options` are the
check's settings from the config (`verify.checks[i].options`). A new check is one function plus one registry
line, and its options' defaults in DEFAULT_OPTIONS."""

from pipeline import schema
from pipeline.jsonutil import canonical_json
from pipeline.tools.base import DEFAULT_MAX_OBSERVATION_CHARS
from pipeline.verify import content, replay
from pipeline.verify.agreement import disagreement
from pipeline.verify.answers import answers_match, mentioned

DEFAULT_OPTIONS = {
    "loops": {"max_consecutive": 1, "max_total": 2},
    "limits": {"max_steps": 20, "max_chars": 32000, "max_message_chars": 8000},
    "secrets": {"env": ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]},
}


def result(name: str, passed: bool, detail: str | None = None) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail}


def _from_problem(name: str, problem: str | None, ok: str) -> dict:
    return result(name, problem is None, problem or ok)


def check_schema(row: dict, options: dict) -> dict:
    problems = schema.errors("trajectory", row)
    return result("schema", not problems, "; ".join(problems[:3]) if problems else "valid")


def check_messages_steps(row: dict, options: dict) -> dict:
    return _from_problem("messages_steps", disagreement(row), "messages and steps agree")


def check_tool_calls(row: dict, options: dict) -> dict:
    return _from_problem("tool_calls", replay.tool_call_problem(row), "every call names an available tool with valid arguments")


def check_replay(row: dict, options: dict) -> dict:
    problem = replay.replay_problem(row, options.get("max_observation_chars", DEFAULT_MAX_OBSERVATION_CHARS), options.get("sandbox"))
    return _from_problem("replay", problem, "every observation reproduced")


def check_final_answer(row: dict, options: dict) -> dict:
    answer = row.get("final_answer")
    present = isinstance(answer, str) and answer.strip() != ""
    return result("final_answer", present, "present" if present else (row.get("error") or "no final answer"))


def check_answer(row: dict, options: dict) -> dict:
    if not row.get("ground_truth"):
        return result("answer", True, "no ground truth to compare with")
    if "conversation" in (row.get("meta") or {}):
        return _conversation_answer(row)
    ok, detail = answers_match(row.get("final_answer"), row["ground_truth"])
    return result("answer", ok, detail)


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


def check_loops(row: dict, options: dict) -> dict:
    return _from_problem("loops", content.loop_problem(row, options["max_consecutive"], options["max_total"]), "no repeated actions")


def check_limits(row: dict, options: dict) -> dict:
    problem = content.limits_problem(row, options["max_steps"], options["max_chars"], options["max_message_chars"])
    return _from_problem("limits", problem, "within step and length limits")


def check_secrets(row: dict, options: dict) -> dict:
    return _from_problem("secrets", content.secret_problem(row, options["values"]), "no secrets")


def check_refusal(row: dict, options: dict) -> dict:
    return _from_problem("refusal", content.refusal_problem(row), "no refusal")


def check_format_junk(row: dict, options: dict) -> dict:
    return _from_problem("format_junk", content.junk_problem(row), "clean")


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
}
