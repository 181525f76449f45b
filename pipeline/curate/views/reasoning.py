"""How text views show an assistant message's reasoning_content (`curate.view_reasoning`): `render` writes it
as a `<think>` block before the reply, the convention of the Qwen3 and DeepSeek-R1 chat templates (and of
LLaMA-Factory's reasoning datasets); `drop` leaves it out."""


def think_block(message: dict, mode: str) -> str:
    """The `<think>` block (with the blank line after it) for `message`, or "" when there is none to show."""
    thought = message.get("reasoning_content")
    if mode != "render" or not thought:
        return ""
    return f"<think>\n{thought}\n</think>\n\n"
