"""The context and mask checks: what a trajectory was given, and what it trains on.

context: the conversation opens with a system prompt; its first user turn is the task's instruction; the tools
it describes (a text format's system prompt lists them, function calling sends them as the `tools` column) are
exactly the task's tools; for a row trajforge sampled, the system prompt is the one its format writes for them.

mask: `train_mask` trains only on assistant messages, on at least one, and on every assistant message except
those a row declares untrained (a self-reflected row's mistake, `meta.reflection.message_index`; context steps
copied from another trajectory, `meta.untrained_messages`)."""

import re

from pipeline.formats import FORMATS
from pipeline.tools import TOOLS
from pipeline.tools.naming import wire_name
from pipeline.verify.replay import allowed_tools

DESCRIBED_TOOL = re.compile(r"^- (\w+)(?:\(|: )", re.MULTILINE)  # "- name: ..." (react, cota) or "- name(...) -> str: ..." (codeact)


def _tool_names(specs) -> list[str]:
    return [s["function"]["name"] for s in specs if isinstance(s, dict) and isinstance(s.get("function"), dict)]


def _sampled_here(row: dict) -> bool:
    """Sampled by trajforge's agent loop (its system prompt is the format's), not imported or simulated."""
    meta = row.get("meta") or {}
    return "teacher" in meta and "conversation" not in meta and all(name in TOOLS for name in allowed_tools(row))


def context_problem(row: dict, require_system: bool = True) -> str | None:
    messages = row["messages"]
    if require_system and (not messages or messages[0].get("role") != "system"):
        return f"the conversation has no system prompt (messages[0] is a {messages[0].get('role') if messages else 'missing'} message)"
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return "the conversation has no user turn"
    if "conversation" not in (row.get("meta") or {}) and (messages[users[0]].get("content") or "").strip() != (row.get("instruction") or "").strip():
        return f"the first user turn (messages[{users[0]}]) is not the task's instruction"
    return _tools_problem(row)


def _tools_problem(row: dict) -> str | None:
    expected = {wire_name(name) for name in allowed_tools(row)}  # models see an environment's tools by these names
    if row.get("tools") is None and row["format"] == "function_calling" and expected:
        return f"the tools column is empty, the task's tools are {sorted(expected)}"
    if row.get("tools") is not None and row["format"] != "function_calling" and _sampled_here(row):
        return f"a {row['format']} row carries a tools column (its system prompt describes the tools; a template would render them twice)"
    if row.get("tools") is not None:
        offered = _tool_names(row["tools"])
        if set(offered) != expected:
            return f"the tools column offers {sorted(offered)}, the task's tools are {sorted(expected)}"
        for spec in row["tools"]:
            name = spec["function"]["name"]
            if name in TOOLS and spec != TOOLS[name].spec():
                return f"the tools column describes {name} otherwise than the tool is"
    system = row["messages"][0] if row["messages"] and row["messages"][0].get("role") == "system" else None
    if system is None:
        return None
    text = system.get("content") or ""
    described = set(DESCRIBED_TOOL.findall(text))
    wanted = expected - {"python"} if row["format"] == "codeact" else expected
    if (described or row["format"] != "function_calling") and described != wanted and row["format"] in FORMATS:
        return f"the system prompt describes the tools {sorted(described)}, the task's tools are {sorted(wanted)}"
    if _sampled_here(row) and row["format"] in FORMATS:
        specs = [TOOLS[name].spec() for name in allowed_tools(row)]
        if text != FORMATS[row["format"]].system_prompt(specs):
            return f"the system prompt is not the {row['format']} prompt for the task's tools"
    return None


def declared_untrained(row: dict) -> set[int]:
    meta = row.get("meta") or {}
    declared = set(meta.get("untrained_messages") or [])
    reflection = meta.get("reflection")
    if isinstance(reflection, dict) and isinstance(reflection.get("message_index"), int):
        declared.add(reflection["message_index"])
    return declared


def mask_problem(row: dict) -> str | None:
    messages, mask = row["messages"], row["train_mask"]
    if len(mask) != len(messages):
        return f"train_mask has {len(mask)} entries for {len(messages)} messages"
    if not any(mask):
        return "train_mask trains on no message"
    declared = declared_untrained(row)
    for i, (message, trained) in enumerate(zip(messages, mask)):
        role = message.get("role")
        if trained and role != "assistant":
            return f"train_mask trains on messages[{i}], a {role} message"
        if trained and i in declared:
            return f"train_mask trains on messages[{i}], which the row declares untrained"
        if not trained and role == "assistant" and i not in declared:
            return f"messages[{i}] (assistant) is masked out of training without the row declaring why"
    return None
