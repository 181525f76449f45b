"""The `sharegpt` view (LLaMA-Factory's layout): `conversations` of {from, value} turns with human / gpt /
function_call / observation roles, the system prompt apart, and the tools as a JSON string. A gpt turn's
reasoning is a `<think>` block before its text (or dropped: `curate.view_reasoning`); a function_call turn is
the call's JSON alone, as LLaMA-Factory reads it, so its reasoning (like its thought) is not shown."""

import json

import pyarrow as pa

from pipeline.curate.views.reasoning import think_block

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
    ("system", pa.string()),
    ("tools", pa.string()),
])

ROLES = {"user": "human", "assistant": "gpt", "tool": "observation"}


def _turns(message: dict, reasoning: str) -> list[dict]:
    if message["role"] == "assistant" and "tool_calls" in message:
        calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in message["tool_calls"]]
        value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
        return [{"from": "function_call", "value": value}]
    return [{"from": ROLES[message["role"]], "value": think_block(message, reasoning) + message.get("content", "")}]


def convert(row: dict, reasoning: str) -> dict:
    messages = row["messages"]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    rest = messages[1:] if system else messages
    turns = [turn for message in rest for turn in _turns(message, reasoning)]
    tools = json.dumps(row["tools"], ensure_ascii=False) if row["tools"] else ""
    return {"id": row["id"], "conversations": turns, "system": system, "tools": tools}


def build(rows: list[dict], context) -> list[dict]:
    return [convert(r, context.reasoning) for r in rows]
