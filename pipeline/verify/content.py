"""Checks on what the assistant wrote: loops, step and length limits, leaked secrets, refusals, format junk."""

import json
import os
import re

# Well-known credential shapes: OpenAI, Anthropic, Hugging Face, GitHub, AWS, Slack, Google, private keys.
SECRET_PATTERNS = {
    "openai key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),
    "anthropic key": re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    "hugging face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "github token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    "aws access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "google api key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
}
MIN_SECRET_VALUE_CHARS = 8

REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry,? but I (?:can(?:no|')t|am unable)|I can(?:no|')t (?:help|assist) with|"
    r"as an AI(?: language)? model|I(?:'m| am) not able to (?:help|assist)|I must decline)",
    re.IGNORECASE,
)
SPECIAL_TOKENS = re.compile(r"<\|[a-z_]+\|>|<(?:start|end)_of_turn>|</?s>|\[/?INST\]|<eos>|<bos>|<pad>|<unk>")
REPEATED_RUN = re.compile(r"(.)\1{49,}", re.DOTALL)
THINK_TAG = re.compile(r"</?think>")


def _assistant_texts(row: dict):
    for i, message in enumerate(row["messages"]):
        if message.get("role") == "assistant":
            yield i, (message.get("content") or "") + (message.get("reasoning_content") or "")


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


def secret_values(env_names: list[str]) -> dict[str, str]:
    """Env var name -> value, for the configured secret variables that are set (values stay in memory only)."""
    return {name: os.environ[name] for name in env_names if len(os.environ.get(name, "")) >= MIN_SECRET_VALUE_CHARS}


def secret_problem(row: dict, values: dict[str, str]) -> str | None:
    """Where a secret appears; the detail names the kind and the place, never the secret."""
    fields = {"messages": row["messages"], "steps": row["steps"], "final_answer": row.get("final_answer"), "meta": row.get("meta")}
    for field, value in fields.items():
        text = json.dumps(value, ensure_ascii=False)
        for name, secret in values.items():
            if secret in text or json.dumps(secret)[1:-1] in text:
                return f"the value of ${name} appears in {field}"
        for kind, pattern in SECRET_PATTERNS.items():
            if pattern.search(text):
                return f"a string shaped like a {kind} appears in {field}"
    return None


def refusal_problem(row: dict) -> str | None:
    for i, text in _assistant_texts(row):
        match = REFUSAL.search(text)
        if match:
            return f"messages[{i}] refuses: {match.group(0)!r}"
    return None


def junk_problem(row: dict) -> str | None:
    """Junk in what the assistant answered. A reasoning model's reasoning_content is its own field, free-form
    thinking, and not checked here; a think tag left in content means the reasoning was not split off."""
    for i, message in enumerate(row["messages"]):
        if message.get("role") != "assistant":
            continue
        text = message.get("content") or ""
        if not text.strip() and not message.get("tool_calls"):
            return f"messages[{i}] is empty"
        if match := THINK_TAG.search(text):
            return f"messages[{i}] has {match.group(0)!r} in its content (reasoning left in the answer)"
        if match := SPECIAL_TOKENS.search(text):
            return f"messages[{i}] contains the template token {match.group(0)!r}"
        if row["format"] != "function_calling" and re.search(r"^\s*Observation\s*:", text, re.MULTILINE):
            return f"messages[{i}] writes its own 'Observation:' (a fabricated tool result)"
        if REPEATED_RUN.search(text):
            return f"messages[{i}] repeats one character 50+ times"
        if "\ufffd" in text:
            return f"messages[{i}] contains U+FFFD (broken decoding)"
    return None
