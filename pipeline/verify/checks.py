"""Program checks. A check is a plain function of a trajectory row returning {name, passed, detail}.
A new check is one function plus one registry line."""

from pipeline import schema
from pipeline.formats import FORMATS, FormatError
from pipeline.verify.answers import answers_match


def result(name: str, passed: bool, detail: str | None = None) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail}


def check_schema(row: dict) -> dict:
    problems = schema.errors("trajectory", row)
    return result("schema", not problems, "; ".join(problems[:3]) if problems else "valid")


def _agreement_problem(row: dict) -> str | None:
    """The first way `messages` and `steps` disagree, or None."""
    messages, steps = row["messages"], row["steps"]
    fmt = FORMATS.get(row["format"])
    if fmt is None:
        return f"unknown format {row['format']!r}"
    if len(row["train_mask"]) != len(messages):
        return f"train_mask has {len(row['train_mask'])} entries for {len(messages)} messages"
    assistant = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    pointed = [s["message_index"] for s in steps]
    if pointed != assistant:
        return f"steps point at messages {pointed}, assistant messages are {assistant}"
    for position, step in enumerate(steps):
        if step["index"] != position:
            return f"step {position} has index {step['index']}"
        message = messages[step["message_index"]]
        try:
            action = fmt.parse_message(message)
        except FormatError as exc:
            if step["error"] and step["tool_name"] is None:
                continue  # an unparseable reply, recorded as such
            return f"step {position}: message does not parse ({exc})"
        if step["action_type"] == "final_answer":
            if not action.is_final or action.final_answer != row["final_answer"] or position != len(steps) - 1:
                return f"step {position}: final answer disagrees with the message or is not the last step"
            continue
        if action.is_final or action.tool != step["tool_name"] or action.arguments_json() != step["tool_arguments"]:
            return f"step {position}: action in message ({action.tool} {action.arguments_json()}) != step ({step['tool_name']} {step['tool_arguments']})"
        if (action.thought or None) != (step["thought"] or None):
            return f"step {position}: thought differs from the message"
        following = messages[step["message_index"] + 1] if step["message_index"] + 1 < len(messages) else None
        if step["observation"] is None:
            if following is not None and following.get("role") != "assistant":
                return f"step {position}: message after the action is not accounted for by a step"
        elif following != fmt.observation_message(step["observation"], action):
            return f"step {position}: observation message differs from the step's observation"
    return None


def check_messages_steps(row: dict) -> dict:
    problem = _agreement_problem(row)
    return result("messages_steps", problem is None, problem or "messages and steps agree")


def check_final_answer(row: dict) -> dict:
    answer = row.get("final_answer")
    present = isinstance(answer, str) and answer.strip() != ""
    return result("final_answer", present, "present" if present else (row.get("error") or "no final answer"))


def check_answer(row: dict) -> dict:
    if not row.get("ground_truth"):
        return result("answer", True, "no ground truth to compare with")
    ok, detail = answers_match(row.get("final_answer"), row["ground_truth"])
    return result("answer", ok, detail)


CHECKS = {
    "schema": check_schema,
    "messages_steps": check_messages_steps,
    "final_answer": check_final_answer,
    "answer": check_answer,
}
