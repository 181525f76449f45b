"""The LLM teacher: asks an endpoint for each next action through the one LLM client.

Chat mode sends the episode's messages (and, for function_calling, the tools); completion mode sends the
format's few-shot text prompt and stores `prefix + generated text` as the assistant message. A reply that
does not fit the format is data about the teacher: the turn carries the parse error and the episode ends.
A request that failed for good (LLMError) ends the episode with the error on the row.

A chat reply's reasoning becomes the message's `reasoning_content` (out of `content`, so the format parses
the answer alone); token ids and logprobs, where the endpoint captures them, travel with the turn.
"""

import json

from pipeline.formats import Format, FormatError
from pipeline.formats.function_calling import parse_arguments
from pipeline.llm import capture
from pipeline.llm.client import LLMClient, LLMError, Reply
from pipeline.sample.agent import Episode, Turn


def message_from_reply(fmt: Format, reply: Reply) -> tuple[dict, str | None]:
    """The row's assistant message for a chat reply, and the raw reply text when the message cannot hold it.

    Tool-call arguments become objects; a tool call whose arguments are not a JSON object cannot be stored as
    a tool call, so the message is left empty and the raw reply goes to the step's raw_action."""
    text = (reply.text or "").strip()
    thought = {"reasoning_content": reply.reasoning.strip()} if reply.reasoning and reply.reasoning.strip() else {}
    if not fmt.native_tools or not reply.tool_calls:
        return {"role": "assistant", "content": text, **thought}, None
    raw = json.dumps({"content": reply.text, "tool_calls": reply.tool_calls}, ensure_ascii=False)
    ids = [call["id"] for call in reply.tool_calls]
    if len(set(ids)) < len(ids) or not all(ids):  # each tool message answers one call: ids must tell them apart
        ids = [f"call_{i}" for i in range(len(ids))]
    try:
        calls = [{"id": id_, "type": "function", "function": {"name": call["name"], "arguments": parse_arguments(call["arguments"])}}
                 for id_, call in zip(ids, reply.tool_calls)]
    except FormatError:
        return {"role": "assistant", "content": "", **thought}, raw
    message = {"role": "assistant", "tool_calls": calls}
    if text:
        message["content"] = text
    return {**message, **thought}, raw


class LLMPolicy:
    def __init__(self, client: LLMClient, teacher: dict, sample_key: list, seed: int):
        self.client, self.teacher, self.sample_key, self.seed = client, teacher, sample_key, seed

    def params(self) -> dict:
        return {"temperature": self.teacher["temperature"], "max_tokens": self.teacher["max_tokens"], "seed": self.seed}

    async def next_turn(self, episode: Episode) -> Turn:
        fmt = episode.fmt
        raw = None
        try:
            if self.client.mode == "completion":
                prompt = fmt.completion.prompt(episode.messages, episode.tools)
                reply = await self.client.complete(prompt, stop=fmt.completion.stop, sample_key=self.sample_key, **self.params())
                message = {"role": "assistant", "content": f"{fmt.completion.prefix} {(reply.text or '').strip()}".strip()}
            else:
                extra = {"stop": fmt.completion.stop} if fmt.completion else {}
                tools = episode.tools if fmt.native_tools else None
                reply = await self.client.chat(episode.messages, tools=tools, sample_key=self.sample_key, **extra, **self.params())
                message, raw = message_from_reply(fmt, reply)
        except LLMError as exc:
            return Turn(None, None, error=f"LLM request failed: {exc}")
        settings = self.client.profile["capture"]
        tokens = capture.entry(reply.tokens, settings) if settings["logprobs"] or settings["token_ids"] else None
        try:
            action = fmt.parse_message(message)
        except FormatError as exc:
            cut = " (the reply was cut off at max_tokens)" if reply.finish_reason == "length" else ""
            return Turn(message, None, error=f"unparseable reply: {exc}{cut}", usage=reply.usage(), raw=raw, tokens=tokens)
        return Turn(message, action, usage=reply.usage(), raw=raw, tokens=tokens)
