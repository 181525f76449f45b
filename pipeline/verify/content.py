"""Checks on what the assistant did and wrote: loops, step and length limits, refusals in several styles."""

import json
import re

REFUSAL = re.compile(
    r"\bas an? (?:large |helpful )?(?:AI|language model|LLM)\b(?: (?:language )?model| assistant)?|\bI(?:'m| am) (?:just |only )?an AI\b|"
    r"\b(?:I(?:'m| am) (?:sorry|afraid)|[Ss]orry|I apologi[sz]e|[Uu]nfortunately|[Aa]pologies),? (?:but )?I(?: can(?:no|')t| am unable|'m unable|"
    r" won't| will not| am not able|'m not able| do(?:n't| not) have)|"
    r"\bI(?: can(?:no|')t| am unable to|'m unable to| won't be able to| will not be able to| am not able to|'m not able to) "
    r"(?:help|assist|fulfil|fulfill|comply with|do that|support that)|"
    r"\bI (?:must|have to|need to) (?:decline|refuse)|\bI do(?:n't| not) have (?:the ability|access|real-time)|"
    r"\b(?:against|violates?) (?:my|the) (?:guidelines|policies|policy|programming|usage policies)|"
    r"\bas an artificial intelligence\b|\bI(?:'m| am) not (?:allowed|permitted|comfortable)\b|\bI do(?:n't| not) feel comfortable\b|"
    r"\bnot something I (?:can|am able to) (?:help|assist)|\bI can(?:no|')t (?:and|or) (?:won't|will not)\b|"
    r"\bI(?: can(?:no|')t|'m unable to| am unable to) comply\b|\bit would (?:not )?be (?:inappropriate|unethical)\b",
    re.IGNORECASE,
)


def _assistant_texts(row: dict):
    """(where, text) for what the assistant wrote: its messages (content and reasoning), every step's
    thought and the final answer."""
    for i, message in enumerate(row["messages"]):
        if message.get("role") == "assistant":
            yield f"messages[{i}]", (message.get("content") or "") + "\n" + (message.get("reasoning_content") or "")
    for step in row["steps"]:
        yield f"steps[{step['index']}].thought", step.get("thought") or ""
    yield "final_answer", row.get("final_answer") or ""


def loop_problem(row: dict, max_consecutive: int, max_total: int) -> str | None:
    actions = [(s["tool_name"], s["tool_arguments"]) for s in row["steps"] if s["tool_name"]]
    run = 1
    for i in range(1, len(actions)):
        run = run + 1 if actions[i] == actions[i - 1] else 1
        if run > max_consecutive:
            return f"step {i}: the same action {actions[i][0]} {actions[i][1]} {run} times in a row"
    for action in set(actions):
        if actions.count(action) > max_total:
            return f"action {action[0]} {action[1]} repeated {actions.count(action)} times (limit {max_total})"
    return None


def limits_problem(row: dict, max_steps: int, max_chars: int, max_message_chars: int) -> str | None:
    if len(row["steps"]) > max_steps:
        return f"{len(row['steps'])} steps (limit {max_steps})"
    total = 0
    for i, message in enumerate(row["messages"]):
        size = len(json.dumps(message, ensure_ascii=False))
        if size > max_message_chars:
            return f"messages[{i}] has {size} characters (limit {max_message_chars})"
        total += size
    if total > max_chars:
        return f"messages have {total} characters in all (limit {max_chars})"
    return None


def refusal_problem(row: dict) -> str | None:
    for where, text in _assistant_texts(row):
        match = REFUSAL.search(text)
        if match:
            return f"{where} refuses: {match.group(0)!r}"
    return None
