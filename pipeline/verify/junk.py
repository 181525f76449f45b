"""The format_junk check: what a template, a decoder or a runaway generation leaves in text. The special tokens
of common chat templates and tokenizers (pipeline/verify/data/chat_tokens.json, generated from what installed
packages ship by scripts/gen_chat_tokens.py) in any message; in the assistant's turns, reasoning tags outside
`reasoning_content`, unclosed code fences, a run-on turn of another speaker, a self-written observation,
runs of one character, broken decoding; in the final answer, leftover action syntax."""

import json
import re
from functools import lru_cache
from pathlib import Path

TOKENS_FILE = Path(__file__).resolve().parent / "data" / "chat_tokens.json"
TOKEN_SHAPE = re.compile(r"<[^<>\s]{1,48}>|\[/?[A-Z][A-Z_]{2,31}\]")
FENCE = re.compile(r"```")
FENCED = re.compile(r"```.*?```", re.DOTALL)
RUN_ON = re.compile(r"^[ \t]*(?:#{1,3}[ \t]*)?(?:User|USER|Human|HUMAN|Assistant|ASSISTANT|System|SYSTEM|Question|Q|A|Instruction|Response)[ \t]*:", re.MULTILINE)
# Tags that wrap reasoning in any model's style (<think>, </thinking>, <reasoning>, <|begin_of_thought|>...), besides
# those the templates use: junk in content, where they show the reasoning was not split out.
REASONING_TAG = re.compile(r"</?(?:think|thinking|thought|thoughts|reasoning|reflection|scratchpad)>|<\|(?:begin|end)_of_thought\|>", re.IGNORECASE)
SELF_OBSERVATION = re.compile(r"^\s*Observation\s*:", re.MULTILINE)
LEFTOVER_ACTION = re.compile(r"^[ \t]*(?:Thought|Action|Action Input|Observation|Final Answer)[ \t]*:|\b(?:[Ff]inish|[Ss]earch|[Ll]ookup)\[|"
                             r"^[ \t]*\{\s*\"(?:tool|name|final_answer|thought|arguments)\"\s*:", re.MULTILINE)
REPEATED_RUN = re.compile(r"(.)\1{49,}", re.DOTALL)


@lru_cache(maxsize=1)
def chat_tokens() -> tuple[frozenset, frozenset]:
    """(special tokens, reasoning tags) from the generated data file."""
    data = json.loads(TOKENS_FILE.read_text())
    return frozenset(data["special_tokens"]), frozenset(data["reasoning_tags"])


def template_token(text: str) -> str | None:
    special, reasoning = chat_tokens()
    return next((t for t in TOKEN_SHAPE.findall(text) if t in special), None)


def reasoning_tag(text: str) -> str | None:
    _, reasoning = chat_tokens()
    found = next((t for t in TOKEN_SHAPE.findall(text) if t in reasoning), None) or REASONING_TAG.search(text)
    return found.group(0) if isinstance(found, re.Match) else found


def _assistant_problem(text: str, fmt: str) -> str | None:
    if tag := reasoning_tag(text):
        return f"has the reasoning tag {tag!r} outside reasoning_content"
    if len(FENCE.findall(text)) % 2:
        return "has an unclosed code fence"
    prose = FENCED.sub("", text)
    if match := RUN_ON.search(prose):
        return f"runs on into another turn ({match.group(0).strip()!r})"
    if fmt != "function_calling" and SELF_OBSERVATION.search(prose):
        return "writes its own 'Observation:' (a fabricated tool result)"
    if REPEATED_RUN.search(text):
        return "repeats one character 50+ times"
    if "\ufffd" in text:
        return "contains U+FFFD (broken decoding)"
    return None


def _texts(row: dict):
    """(where, text, written by the assistant) for every message and every step's thought."""
    for i, message in enumerate(row["messages"]):
        own = message.get("role") == "assistant"
        for key in ("content", "reasoning_content"):
            if isinstance(message.get(key), str):
                yield f"messages[{i}].{key}", message[key], own and key == "content"
    for step in row["steps"]:
        if step.get("thought"):
            yield f"steps[{step['index']}].thought", step["thought"], True
    if row.get("final_answer"):
        yield "final_answer", row["final_answer"], True  # text formats hold it escaped (cota's JSON) or split


def junk_problem(row: dict) -> str | None:
    for i, message in enumerate(row["messages"]):
        if message.get("role") == "assistant" and not (message.get("content") or "").strip() and not message.get("tool_calls"):
            return f"messages[{i}] is empty"
    for where, text, own in _texts(row):
        if token := template_token(text):
            return f"{where} contains the template token {token!r}"
        if own and (problem := _assistant_problem(text, row["format"])):
            return f"{where} {problem}"
    if match := LEFTOVER_ACTION.search(row.get("final_answer") or ""):
        return f"the final answer holds leftover action syntax ({match.group(0).strip()!r})"
    return None
