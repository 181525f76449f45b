"""Token ids and logprobs of replies, opt-in per endpoint: `capture: {logprobs: true, token_ids: true}`.

What is asked for:
- logprobs: chat `logprobs: true`; completion `logprobs: 0` (the sampled token's logprob, no alternatives).
  OpenAI and vLLM answer with `choices[0].logprobs` (`content: [{token, logprob}]` in chat, `tokens` and
  `token_logprobs` in completions).
- token_ids: `return_token_ids: true` (vLLM 0.10.2 and later), answered with `choices[0].token_ids` and
  `prompt_token_ids`. vLLM's `return_tokens_as_token_ids` (logprob tokens written `token_id:123`) is read too.

A server that does not support a request answers without it; that is recorded (`missing`), not an error. The
reply's fields are untrusted: anything not shaped as a list of integers (ids) or numbers (logprobs) counts as
not returned.
"""

FIELDS = ("prompt_token_ids", "token_ids", "logprobs", "token_texts")


def request_params(mode: str, capture: dict) -> dict:
    params = {}
    if capture.get("logprobs"):
        params["logprobs"] = True if mode == "chat" else 0
    if capture.get("token_ids"):
        params["return_token_ids"] = True
    return params


def _ints(value) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None


def _numbers(value) -> list[float] | None:
    if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return None


def _strings(value) -> list[str] | None:
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def _logprobs(mode: str, choice: dict) -> tuple[list[str] | None, list[float] | None]:
    block = choice.get("logprobs")
    if not isinstance(block, dict):
        return None, None
    if mode == "chat":
        content = block.get("content")
        if not isinstance(content, list) or not all(isinstance(t, dict) for t in content):
            return None, None
        return _strings([t.get("token") for t in content]), _numbers([t.get("logprob") for t in content])
    return _strings(block.get("tokens")), _numbers(block.get("token_logprobs"))


def _ids_from_texts(texts: list[str] | None) -> list[int] | None:
    """vLLM's `return_tokens_as_token_ids`: every token written as `token_id:N`."""
    if not texts or not all(t.startswith("token_id:") and t[9:].isdigit() for t in texts):
        return None
    return [int(t[9:]) for t in texts]


def from_reply(mode: str, data: dict, choice: dict) -> dict:
    """What a response body carries of FIELDS (absent ones left out)."""
    texts, logprobs = _logprobs(mode, choice)
    found = {
        "prompt_token_ids": _ints(choice.get("prompt_token_ids")) or _ints(data.get("prompt_token_ids")),
        "token_ids": _ints(choice.get("token_ids")) or _ids_from_texts(texts),
        "logprobs": logprobs,
        "token_texts": texts,
    }
    return {key: value for key, value in found.items() if value is not None}


def entry(tokens: dict, capture: dict) -> dict:
    """An assistant message's record in a row's `tokens` column (the agent loop adds its message_index);
    `missing` names what was asked for and not returned."""
    wanted = [name for name in ("logprobs", "token_ids") if capture.get(name)]
    return {**{key: tokens.get(key) for key in FIELDS}, "missing": [name for name in wanted if tokens.get(name) is None]}
