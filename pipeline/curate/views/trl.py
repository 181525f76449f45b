"""The `trl` view: what TRL's SFTTrainer and `tokenizer.apply_chat_template(messages, tools=tools)` take as is.

`messages` keep tool-call arguments as objects (chat templates serialize them) and `tools` is the OpenAI tool
list or null (text formats describe their tools in the system prompt). `train_mask` keeps the per-message loss
mask for trainers that honour it. An assistant message's `reasoning_content` stays in the message: templates that
know it render it (Qwen3's, as a `<think>` block on the turns after the last user query), others ignore it.
"""

import pyarrow as pa

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("messages", pa.list_(pa.json_())),
    ("tools", pa.list_(pa.json_())),
    ("train_mask", pa.list_(pa.bool_())),
])


def build(rows: list[dict], context) -> list[dict]:
    return [{"id": r["id"], "messages": r["messages"], "tools": r["tools"], "train_mask": r["train_mask"]} for r in rows]
