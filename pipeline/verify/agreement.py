"""The messages/steps agreement check: `messages` (what a model trains on) and `steps` (what filters and
analysis read) must describe the same trajectory."""

from pipeline.formats import FORMATS, FormatError
from pipeline.tools.naming import resolve


def disagreement(row: dict) -> str | None:
    """The first way `messages` and `steps` disagree, or None. Every assistant message is pointed at by its
    steps: one, or one per tool call of a parallel-call turn, in order."""
    messages, steps = row["messages"], row["steps"]
    fmt = FORMATS.get(row["format"])
    if fmt is None:
        return f"unknown format {row['format']!r}"
    if len(row["train_mask"]) != len(messages):
        return f"train_mask has {len(row['train_mask'])} entries for {len(messages)} messages"
    assistant = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    pointed = [s["message_index"] for s in steps]
    turns = [i for k, i in enumerate(pointed) if k == 0 or pointed[k - 1] != i]
    if turns != assistant or len(set(pointed)) != len(turns):
        return f"steps point at messages {pointed}, assistant messages are {assistant}"
    for position, step in enumerate(steps):
        if step["index"] != position:
            return f"step {position} has index {step['index']}"
    offered = (row.get("meta") or {}).get("tools") or []
    for message_index in turns:
        group = [s for s in steps if s["message_index"] == message_index]
        problem = _turn_disagreement(row, fmt, group, offered)
        if problem:
            return f"step {group[0]['index']}: {problem}"
    return None


def _turn_disagreement(row: dict, fmt, group: list[dict], offered: list[str]) -> str | None:
    messages, first = row["messages"], group[0]
    try:
        action = fmt.parse_message(messages[first["message_index"]])
    except FormatError as exc:
        if len(group) == 1 and first["error"] and first["tool_name"] is None:
            return None  # an unparseable reply, recorded as such
        return f"message does not parse ({exc})"
    if first["action_type"] == "final_answer":
        if len(group) > 1 or not action.is_final or action.final_answer != row["final_answer"] or first is not row["steps"][-1]:
            return "final answer disagrees with the message or is not the last step"
        return None
    if first["action_type"] == "ask_user":
        return _ask_user_disagreement(messages, first, action)
    calls = [] if action.is_final else action.calls()
    if len(calls) != len(group):
        return f"the message holds {len(calls)} tool call(s), {len(group)} step(s) point at it"
    for call, step in zip(calls, group):
        name = call.tool if fmt.action_type == "code" else resolve(call.tool, offered)
        if name != step["tool_name"] or call.arguments_json() != step["tool_arguments"]:
            return f"action in message ({name} {call.arguments_json()}) != step {step['index']} ({step['tool_name']} {step['tool_arguments']})"
        if len(group) > 1 and call.tool_call_id != step["tool_call_id"]:
            return f"step {step['index']} answers tool call {step['tool_call_id']!r}, the message's call is {call.tool_call_id!r}"
    if (action.thought or None) != (first["thought"] or None) or any(s["thought"] for s in group[1:]):
        return "thought differs from the message"
    return _observations_disagreement(messages, fmt, group, calls)


def _observations_disagreement(messages: list[dict], fmt, group: list[dict], calls: list) -> str | None:
    """Each call's observation message follows the turn, in the order of the calls; nothing else does."""
    at = group[0]["message_index"] + 1
    for step, call in zip(group, calls):
        following = messages[at] if at < len(messages) else None
        if step["observation"] is None:
            if len(group) == 1 and following is not None and following.get("role") != "assistant":
                return "message after the action is not accounted for by a step"
            if len(group) > 1:
                return f"parallel call {step['index']} has no observation"
            return None
        if following != fmt.observation_message(step["observation"], call):
            return "observation message differs from the step's observation"
        at += 1
    return None


def _ask_user_disagreement(messages: list[dict], step: dict, action) -> str | None:
    """A message to a (simulated) user: no tool call, and the user's reply, if any, follows as the observation."""
    if not action.is_final:
        return f"a message to the user holds a tool call ({action.tool})"
    following = messages[step["message_index"] + 1] if step["message_index"] + 1 < len(messages) else None
    if step["observation"] is None:
        return None if following is None else "message after the message to the user is not accounted for by a step"
    if following != {"role": "user", "content": step["observation"]}:
        return "the user's reply differs from the step's observation"
    return None


def step_id_problem(row: dict) -> str | None:
    """Tool-call ids agree: no two steps share one; each assistant message's tool calls carry ids, the steps
    pointing at that message carry the same ids in the same order, and the tool messages that follow answer
    each of its calls exactly once (a message may hold several calls: parallel tool calling)."""
    ids = [s["tool_call_id"] for s in row["steps"] if s["tool_call_id"] is not None]
    if duplicate := next((i for i in ids if ids.count(i) > 1), None):
        return f"tool_call_id {duplicate!r} is used by {ids.count(duplicate)} steps"
    messages, seen = row["messages"], set()
    for i, message in enumerate(messages):
        calls = message.get("tool_calls") or [] if message.get("role") == "assistant" else []
        if message.get("role") == "tool" and not (i > 0 and messages[i - 1].get("role") in ("assistant", "tool")):
            return f"messages[{i}] is a tool message that follows no tool call"
        if not calls:
            continue
        call_ids = [c.get("id") if isinstance(c, dict) else None for c in calls]
        if not all(call_ids):
            return f"messages[{i}] has a tool call without an id"
        if seen & set(call_ids) or len(set(call_ids)) != len(call_ids):
            return f"messages[{i}] reuses a tool-call id ({', '.join(sorted(seen & set(call_ids)) or call_ids)})"
        seen |= set(call_ids)
        stepped = [s["tool_call_id"] for s in row["steps"] if s["message_index"] == i and s["action_type"] != "final_answer"]
        if stepped != call_ids:
            return f"the steps of messages[{i}] carry tool_call_id {stepped}, its tool calls {call_ids}"
        answered = []
        for follower in messages[i + 1:]:
            if follower.get("role") != "tool":
                break
            answered.append(follower.get("tool_call_id"))
        if sorted(map(str, answered)) != sorted(call_ids) and answered:
            return f"the tool messages after messages[{i}] answer {answered}, its calls are {call_ids}"
    return None
