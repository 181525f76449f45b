"""OpenAI chat JSONL: one conversation per record, `{"messages": [...], "tools": [...], "model": ...}` (the
shape of fine-tuning files and of logged chat requests with their replies), or a bare list of messages.
Assistant `tool_calls` carry `function.arguments` as a JSON string (parsed here) or an object; `tool` messages
answer them by `tool_call_id`. Message content may be a list of content parts (their text is kept)."""

from pipeline.ingest.build import Unmappable, message, text_of, tool_call


def messages_of(raw: list) -> list[dict]:
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise Unmappable(f"messages[{i}] is not a system, user, assistant or tool message")
        role = "system" if m["role"] == "developer" else m["role"]
        calls = [tool_call(c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
                 if isinstance(c, dict) else c for c in m.get("tool_calls") or []]
        out.append(message(role, content=text_of(m.get("content")), tool_call_id=m.get("tool_call_id"),
                           reasoning_content=m.get("reasoning_content") or m.get("reasoning"), tool_calls=calls or None))
    return out


def conversation(record) -> dict:
    """{messages, tools, model, untrained} of one record."""
    if isinstance(record, list):
        record = {"messages": record}
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise Unmappable("no 'messages' list")
    return {"messages": messages_of(record["messages"]), "tools": record.get("tools"), "model": record.get("model")}
