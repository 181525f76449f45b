"""The `react` view: one plain-text ReAct transcript per trajectory (tool list, Question, Thought / Action /
Action Input / Observation lines, Final Answer), rendered from the steps so every format reads the same: text
for base-model or completion-style training. A step's reasoning is a `<think>` block before its Thought (or
dropped: `curate.view_reasoning`)."""

import json

import pyarrow as pa

from pipeline.curate.views.reasoning import think_block
from pipeline.formats import react
from pipeline.formats.base import Action
from pipeline.tools import TOOLS
from pipeline.tools.naming import wire_name

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])


def tools_of(row: dict) -> list[dict]:
    if row["tools"]:
        return row["tools"]
    return [TOOLS[name].spec() for name in (row.get("meta") or {}).get("tools", []) if name in TOOLS]


def system_prompt(row: dict) -> str:
    """A react row's own system prompt (it lists every tool, an environment's too); else one over the row's tools."""
    if row["format"] == "react" and row["messages"] and row["messages"][0].get("role") == "system":
        return row["messages"][0]["content"]
    return react.system_prompt(tools_of(row))


def _step_text(step: dict) -> str:
    if step["tool_name"] is None:  # an unparseable reply, kept as the model wrote it
        return step["raw_action"] or ""
    action = Action(step["thought"], tool=wire_name(step["tool_name"]), arguments=json.loads(step["tool_arguments"] or "{}"))
    text = react.render(action)
    return text + (f"\nObservation: {step['observation']}" if step["observation"] is not None else "")


def render(row: dict, reasoning: str) -> str:
    lines = [system_prompt(row), "", f"Question: {row['instruction']}"]
    for position, step in enumerate(row["steps"]):
        message = row["messages"][step["message_index"]] if 0 <= step["message_index"] < len(row["messages"]) else {}
        first_of_turn = position == 0 or row["steps"][position - 1]["message_index"] != step["message_index"]
        if first_of_turn and (block := think_block(message, reasoning)):  # a parallel-call turn thinks once
            lines.append(block.rstrip("\n"))
        if step["action_type"] == "final_answer":
            lines.append(react.render(Action(step["thought"], final_answer=row["final_answer"] or "")))
        else:
            lines.append(_step_text(step))
    return "\n".join(lines)


def build(rows: list[dict], context) -> list[dict]:
    return [{"id": r["id"], "text": render(r, context.reasoning)} for r in rows]
