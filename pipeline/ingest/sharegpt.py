"""ShareGPT with function calls (the LLaMA-Factory layout): `{"conversations": [{"from", "value"}], "system",
"tools"}`, turns from `human`, `gpt`, `function_call` (the value: a JSON call `{"name", "arguments"}`, or a
list of them) and `observation` (a tool's result, one per call in order); `tools` a JSON string or list of
function definitions. `role`/`content` keys and the roles user/assistant/tool are read too. ShareGPT gives
calls no ids, so they are numbered `call_0`, `call_1`, ... in order."""

import json

from pipeline.ingest.build import Unmappable, message, tool_call

SPEAKERS = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
            "system": "system", "function_call": "call", "tool_call": "call", "observation": "tool", "tool": "tool",
            "function": "tool", "function_response": "tool"}


def _calls(value, first: int) -> list[dict]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise Unmappable(f"a function_call turn is not JSON ({exc.msg})") from None
    calls = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(c, dict) and c.get("name") for c in calls):
        raise Unmappable("a function_call turn has no function name")
    return [tool_call(f"call_{first + i}", c["name"], c.get("arguments", c.get("parameters", {}))) for i, c in enumerate(calls)]


def conversation(record) -> dict:
    if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
        raise Unmappable("no 'conversations' list")
    messages = [message("system", content=record["system"])] if isinstance(record.get("system"), str) and record["system"] else []
    pending, numbered = [], 0
    for i, turn in enumerate(record["conversations"]):
        if not isinstance(turn, dict):
            raise Unmappable(f"conversations[{i}] is not an object")
        speaker = SPEAKERS.get(str(turn.get("from", turn.get("role"))).lower())
        value = turn.get("value", turn.get("content"))
        if speaker is None:
            raise Unmappable(f"conversations[{i}] is from {turn.get('from', turn.get('role'))!r}, not a known speaker")
        if speaker == "call":
            calls = _calls(value, numbered)
            numbered += len(calls)
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" not in messages[-1]:
                messages[-1]["tool_calls"] = calls  # the assistant's words before its call are its thought
            else:
                messages.append(message("assistant", tool_calls=calls))
            pending = [c["id"] for c in calls]
        elif speaker == "tool":
            if not pending:
                raise Unmappable(f"conversations[{i}] is an observation that answers no function call")
            messages.append(message("tool", tool_call_id=pending.pop(0), content=value if isinstance(value, str) else json.dumps(value)))
        else:
            messages.append(message(speaker, content=value))
    tools = record.get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else None
        except json.JSONDecodeError as exc:
            raise Unmappable(f"'tools' is not JSON ({exc.msg})") from None
    return {"messages": messages, "tools": tools, "model": record.get("model")}
