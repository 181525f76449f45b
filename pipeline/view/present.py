"""A row as the viewer's pages show it: arguments pretty-printed, code highlighted (Pygments), messages with
their training mask, steps with their verdicts, and the lineage of reflections and feedback retries.

Everything from a row is untrusted text (model output, tool output): it reaches the page only through
Pygments (which escapes) or Jinja's autoescaping, never as markup.
"""

import json

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import JsonLexer, PythonLexer, SqlLexer

FORMATTER = HtmlFormatter(cssclass="hl", wrapcode=True)
CODE_ARGUMENTS = {"python": ("code", PythonLexer), "sql": ("query", SqlLexer)}  # tool -> the argument that is a program


def stylesheet() -> str:
    return FORMATTER.get_style_defs(".hl")


def json_html(value) -> Markup:
    """A JSON value, indented and highlighted."""
    return Markup(highlight(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True), JsonLexer(), FORMATTER))


def _parsed(text: str | None):
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def action(step: dict) -> dict:
    """The action of a step: the tool and its arguments, with any program among them highlighted on its own."""
    arguments = _parsed(step.get("tool_arguments"))
    code = None
    name, lexer = CODE_ARGUMENTS.get(step.get("tool_name"), (None, None))
    if isinstance(arguments, dict) and isinstance(arguments.get(name), str):
        code = Markup(highlight(arguments[name], lexer(), FORMATTER))
    return {
        "tool": step.get("tool_name"),
        "arguments": json_html(arguments) if arguments is not None else None,
        "raw_arguments": step.get("tool_arguments") if arguments is None else None,
        "code": code,
    }


def steps(row: dict) -> list[dict]:
    """Steps with their action laid out and whether the message that holds them is trained on."""
    mask = row.get("train_mask") or []
    out = []
    for step in row.get("steps") or []:
        index = step.get("message_index")
        trained = mask[index] if isinstance(index, int) and 0 <= index < len(mask) else None
        out.append({**step, "action": action(step), "verdict": step.get("step_verdict"), "trained": trained})
    return out


def messages(row: dict) -> list[dict]:
    """Messages with their training mask: True (in the loss), False (context only) or None (no mask)."""
    mask = row.get("train_mask") or []
    out = []
    for i, message in enumerate(row.get("messages") or []):
        calls = [{"id": c.get("id"), "name": (c.get("function") or {}).get("name"),
                  "arguments": json_html((c.get("function") or {}).get("arguments"))} for c in message.get("tool_calls") or []]
        out.append({"index": i, "role": message.get("role"), "content": message.get("content"),
                    "reasoning": message.get("reasoning_content"), "tool_calls": calls,
                    "tool_call_id": message.get("tool_call_id"), "trained": mask[i] if i < len(mask) else None})
    return out


def lineage(row: dict) -> dict | None:
    """How this row was made from another one: a self-reflection (STeP) or a feedback retry, with its parent."""
    meta = row.get("meta") or {}
    if "reflection" in meta:
        reflection = meta["reflection"]
        return {"kind": "reflection", "parent_id": reflection.get("parent_id"), "message_index": reflection.get("message_index"),
                "summary": reflection.get("reflection"), "details": json_html(reflection)}
    if "feedback_round" in meta:
        return {"kind": "feedback", "parent_id": meta.get("parent_id"), "message_index": None,
                "summary": f"feedback round {meta['feedback_round']}: {meta.get('feedback')}", "details": None}
    return None


def meta_without_lineage(row: dict) -> dict:
    return {k: v for k, v in (row.get("meta") or {}).items() if k not in ("reflection", "feedback", "feedback_round", "parent_id")}
