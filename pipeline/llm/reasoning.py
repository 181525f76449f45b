"""Reasoning traces: where a server puts a reasoning model's thinking, and how it goes back on later turns.

Servers return the reasoning of a reply in one of three shapes:
- `message.reasoning_content` (DeepSeek, SGLang, llama.cpp, older vLLM),
- `message.reasoning` (newer vLLM, OpenRouter, Ollama),
- a `<think>...</think>` block at the start of `content` (Qwen3 or R1 distills served without a reasoning
  parser). Their chat templates often open `<think>` in the prompt, so the reply may start inside the block and
  only close it.

An endpoint's `reasoning` setting says where to read it: `auto` (the fields, else the tags), `field`, `tags` or
`off` (content left exactly as the server sent it). What is read becomes the message's `reasoning_content` and
leaves `content`. `reasoning_history` says how earlier turns' reasoning goes back to the model: `drop` (what
DeepSeek and OpenAI expect: sending it is an error there), `field` (as `reasoning_content`, for servers whose
template renders it) or `tags` (a `<think>` block before the content).
"""

from dataclasses import replace

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def from_tags(text: str | None) -> tuple[str | None, str | None]:
    """(reasoning, content) of a reply whose content may begin with a `<think>` block. A block that does not
    open the reply (text before `<think>`) is not reasoning: the content stays as it is, for the format checks
    to flag."""
    if not text:
        return None, text
    head, closed, tail = text.partition(THINK_CLOSE)
    if closed:
        before, opened, inside = head.partition(THINK_OPEN)
        if opened and before.strip():
            return None, text
        return (inside if opened else head).strip(), tail.lstrip()
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):  # cut off (max_tokens) while still thinking: all of it is reasoning
        return stripped[len(THINK_OPEN):].strip(), ""
    return None, text


def read(reply, mode: str):
    """The reply with its reasoning moved out of `text` into `reasoning`, as `mode` says (a new Reply)."""
    if mode in ("off", False):  # YAML reads a bare `off` as false
        return replace(reply, reasoning=None) if reply.reasoning is not None else reply
    if mode == "field" or (mode == "auto" and reply.reasoning):
        return reply
    thought, content = from_tags(reply.text)
    if thought is None and reply.reasoning is None:
        return reply
    return replace(reply, reasoning=thought or None, text=content)


def history_message(message: dict, mode: str) -> dict:
    """An earlier assistant message as it goes back to the model. The result depends on the message alone, so
    the request of step k+1 begins with exactly the bytes of step k's (what makes prompt caching hit)."""
    thought = message.get("reasoning_content")
    if thought is None:
        return message
    rest = {key: value for key, value in message.items() if key != "reasoning_content"}
    if mode == "field":
        return message
    if mode == "tags":
        return {**rest, "content": f"{THINK_OPEN}\n{thought}\n{THINK_CLOSE}\n\n{message.get('content') or ''}"}
    return rest
