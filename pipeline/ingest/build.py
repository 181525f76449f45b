"""A trajectory row from an imported conversation in OpenAI chat shape (what every importer produces): the
messages as TRL expects them, steps derived from them (one per tool call: a message may hold several), the
final answer, and the task's fields where the record gives them. Nothing is invented: a value the source does
not have is left empty, and a conversation that breaks the schema stays as it is (verify's `schema` check
says why; the import stores it repaired, pipeline/schema_repair.py)."""

import json

from pipeline import __version__
from pipeline.jsonutil import canonical_json, content_hash

MESSAGE_KEYS = {"system": ("role", "content"), "user": ("role", "content"), "tool": ("role", "tool_call_id", "content"),
                "assistant": ("role", "content", "reasoning_content", "tool_calls")}
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "llm_calls": 0, "cost_usd": 0.0, "seconds": 0.0}


class Unmappable(ValueError):
    """A record that cannot become a trajectory row (no conversation, not an object, ...)."""


def text_of(content) -> str | None:
    """Message content as text: a string, or the text parts of a content-part list."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") if isinstance(p, dict) else p for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return content


def arguments_of(raw):
    """Tool-call arguments as an object (a JSON string is parsed); anything else is kept as it is."""
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return raw
        return parsed
    return raw


def tool_call(call_id, name, arguments) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments_of(arguments)}}


def message(role: str, **fields) -> dict:
    """A message with only the keys the schema allows for its role, absent keys left out (never null)."""
    out = {"role": role}
    for key in MESSAGE_KEYS.get(role, fields):
        if key != "role" and fields.get(key) is not None:
            out[key] = fields[key]
    if role in ("system", "user", "tool") and "content" not in out:
        out["content"] = ""
    return out


def tool_spec(spec) -> dict:
    """An OpenAI function tool schema, from its own shape or from a bare {name, description, parameters}."""
    if isinstance(spec, dict) and "function" in spec:
        return {"type": "function", **{k: v for k, v in spec.items() if k != "type"}}
    if isinstance(spec, dict) and "name" in spec:
        function = {"name": spec["name"], "description": spec.get("description", ""), "parameters": spec.get("parameters") or {"type": "object", "properties": {}}}
        return {"type": "function", "function": function}
    return spec


def _step(index: int, message_index: int, **fields) -> dict:
    step = {"index": index, "message_index": message_index, "tool_call_id": None, "action_type": "final_answer", "thought": None,
            "tool_name": None, "tool_arguments": None, "raw_action": None, "observation": None, "error": None,
            "step_verdict": None, "seconds": None, "completion_tokens": None}
    step.update(fields)
    return step


def steps_of(messages: list[dict]) -> tuple[list[dict], str | None]:
    """(steps, final answer): a step per tool call, answered by the tool message with its id; the last
    assistant message without a tool call is the final answer, an earlier one a message to the user."""
    steps, final = [], None
    assistant = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    for i in assistant:
        m = messages[i]
        content = m.get("content") if isinstance(m.get("content"), str) else None
        thought = (content or "").strip() or None
        calls = m.get("tool_calls") if isinstance(m.get("tool_calls"), list) else []
        answers = {}
        for later in messages[i + 1:]:
            if later.get("role") != "tool":
                break
            answers.setdefault(later.get("tool_call_id"), later.get("content"))
        for call in calls:
            function = call.get("function") or {} if isinstance(call, dict) else {}
            arguments = function.get("arguments")
            steps.append(_step(len(steps), i, tool_call_id=call.get("id") if isinstance(call, dict) else None, action_type="tool_call",
                               thought=thought, tool_name=function.get("name"), raw_action=content,
                               tool_arguments=canonical_json(arguments) if isinstance(arguments, dict) else None,
                               observation=answers.get(call.get("id")) if isinstance(call, dict) else None))
        if calls:
            continue
        if i == assistant[-1]:
            final = thought
            steps.append(_step(len(steps), i, raw_action=content))
        else:
            reply = messages[i + 1] if i + 1 < len(messages) and messages[i + 1].get("role") == "user" else None
            steps.append(_step(len(steps), i, action_type="ask_user", raw_action=content,
                               observation=reply.get("content") if reply else None))
    return steps, final


def trajectory_row(messages: list[dict], tools: list | None, record_fields: dict, spec: dict, where: str, stage_hash: str,
                   model: str | None = None, untrained: list[int] | None = None) -> dict:
    """The row for one imported conversation. `record_fields` holds what the record gave besides the
    conversation: ground_truth, environment, task_id, domain, meta, usage, temperature."""
    if not messages:
        raise Unmappable("no messages")
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise Unmappable("no user message (nothing states the task)")
    tools = [tool_spec(t) for t in tools] if tools else None
    steps, final = steps_of(messages)
    names = [t["function"]["name"] for t in tools or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    instruction = text_of(users[0].get("content")) or ""
    ground_truth = record_fields.get("ground_truth")
    if ground_truth is not None and not isinstance(ground_truth, dict):
        ground_truth = {"answer": ground_truth}
    system = next((m.get("content") for m in messages if m.get("role") == "system"), "")
    meta = {**(record_fields.get("meta") if isinstance(record_fields.get("meta"), dict) else {}), "tools": names,
            "import": {"name": spec["name"], "format": spec["format"], "where": where}}
    if untrained:
        meta["untrained_messages"] = untrained
    usage = record_fields.get("usage") if isinstance(record_fields.get("usage"), dict) else {}
    return {
        "id": "traj-" + content_hash(stage_hash, spec["name"], messages, tools, ground_truth),
        "task_id": str(record_fields.get("task_id") or "task-" + content_hash(instruction, names, ground_truth)),
        "domain": str(record_fields.get("domain") or spec["domain"]),
        "source": f"llm:{model}" if model else f"import:{spec['name']}",
        "format": "function_calling",
        "instruction": instruction,
        "messages": messages,
        "tools": tools,
        "train_mask": [m.get("role") == "assistant" and i not in (untrained or []) for i, m in enumerate(messages)],
        "steps": steps,
        "final_answer": final,
        "ground_truth": ground_truth,
        "environment": record_fields.get("environment") or {},
        "difficulty": None,
        "meta": meta,
        "teacher": {"model": model or "unknown", "endpoint": f"import:{spec['name']}", "mode": "chat",
                    "temperature": record_fields.get("temperature") if isinstance(record_fields.get("temperature"), (int, float)) else None,
                    "seed": None, "prompt_id": content_hash("import", system, length=12)},
        "usage": {key: usage.get(key, zero) if isinstance(usage.get(key), type(zero)) else zero for key, zero in ZERO_USAGE.items()},
        "error": None if final is not None else "the conversation ends without a final answer",
        "checks": None,
        "judgments": None,
        "passed": None,
        "score": None,
        "split": None,
        "config_hash": stage_hash,
        "pipeline_version": __version__,
    }
