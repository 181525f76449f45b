"""The `sharegpt` view (LLaMA-Factory's layout): `conversations` of {from, value} turns with human / gpt /
function_call / observation roles, the system prompt apart, and the tools as a JSON string."""

import json

import pyarrow as pa

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
    ("system", pa.string()),
    ("tools", pa.string()),
])

ROLES = {"user": "human", "assistant": "gpt", "tool": "observation"}


def _turns(message: dict) -> list[dict]:
    if message["role"] == "assistant" and "tool_calls" in message:
        calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in message["tool_calls"]]
        value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
        return [{"from": "function_call", "value": value}]
    return [{"from": ROLES[message["role"]], "value": message.get("content", "")}]


def convert(row: dict) -> dict:
    messages = row["messages"]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    rest = messages[1:] if system else messages
    turns = [turn for message in rest for turn in _turns(message)]
    tools = json.dumps(row["tools"], ensure_ascii=False) if row["tools"] else ""
    return {"id": row["id"], "conversations": turns, "system": system, "tools": tools}


def build(rows: list[dict], context) -> list[dict]:
    return [convert(r) for r in rows]
