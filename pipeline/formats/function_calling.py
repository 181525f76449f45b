"""Function calling: native tool calls in chat mode. Tools go to the API as `tools`; an action is an assistant
message with `tool_calls` (arguments an object in rows, a JSON string only on the wire) and any text before it
as `content` (the thought); each call's observation comes back as its own `tool` message, in the order of the
calls; a reply with text and no tool call is the final answer. A reply may hold several tool calls (parallel
calls): one Action with `parallel` set."""

import json

from pipeline.formats.base import Action, Format, FormatError


def system_prompt(tools: list[dict]) -> str:
    return (
        "You are an agent that solves the user's task step by step with the tools you are given. "
        "Call a tool and its result comes back to you; calls that do not depend on each other may go in one reply. "
        "When you know the answer, reply with the final answer only, without calling a tool."
    )


def action_message(action: Action) -> dict:
    if action.is_final:
        return {"role": "assistant", "content": action.final_answer}
    calls = [{"id": call.tool_call_id, "type": "function", "function": {"name": call.tool, "arguments": call.arguments}}
             for call in action.calls()]
    message = {"role": "assistant", "tool_calls": calls}
    if action.thought:
        message["content"] = action.thought
    return message


def observation_message(observation: str, action: Action) -> dict:
    return {"role": "tool", "tool_call_id": action.tool_call_id, "content": observation}


def parse_arguments(raw) -> dict:
    """Tool-call arguments as an object: a JSON object string (as the API sends it) or already an object."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise FormatError(f"tool-call arguments are not valid JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(raw, dict):
        raise FormatError("tool-call arguments must be a JSON object")
    return raw


def _call(call: dict, thought: str | None) -> Action:
    function = call.get("function") or {}
    if not function.get("name"):
        raise FormatError("tool call has no function name")
    return Action(thought, tool=function["name"], arguments=parse_arguments(function.get("arguments")), tool_call_id=call.get("id"))


def parse_message(message: dict) -> Action:
    calls = message.get("tool_calls") or []
    thought = (message.get("content") or "").strip() or None
    if len(calls) > 1:
        ids = [call.get("id") for call in calls]
        if len(set(ids)) < len(ids):
            raise FormatError("parallel tool calls share an id: each tool message must answer exactly one call")
        return Action(thought, parallel=[_call(call, None) for call in calls])
    if calls:
        return _call(calls[0], thought)
    if thought is None:
        raise FormatError("empty reply: no tool call and no text")
    return Action(None, final_answer=thought)


FORMAT = Format(
    name="function_calling",
    system_prompt=system_prompt,
    action_message=action_message,
    observation_message=observation_message,
    parse_message=parse_message,
    native_tools=True,
)
