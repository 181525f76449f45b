"""The `rl` view: trajectories with the tokens the teacher sampled, for RL and distillation trainers that must
not retokenize (endpoint `capture: {logprobs: true, token_ids: true}`).

One row per trajectory that has token data:
- `messages`, `tools`, `train_mask`: as in the trl view;
- `tokens`: one entry per assistant message the endpoint generated, `{message_index, prompt_token_ids,
  token_ids, logprobs, token_texts, missing}`: `prompt_token_ids` is the whole prompt of that request as the
  server tokenized it (vLLM), `token_ids` / `logprobs` / `token_texts` the sampled tokens (reasoning included),
  aligned index by index; a field the server did not return is null and named in `missing`;
- `score`, `passed`: the verify verdict, a reward signal.
Rows whose teacher captured nothing (program teachers, endpoints without `capture`) are left out.
"""

import pyarrow as pa

from pipeline.rows import TOKENS

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("task_id", pa.string()),
    ("messages", pa.list_(pa.json_())),
    ("tools", pa.list_(pa.json_())),
    ("train_mask", pa.list_(pa.bool_())),
    ("tokens", pa.list_(TOKENS)),
    ("score", pa.float64()),
    ("passed", pa.bool_()),
])


def build(rows: list[dict], context) -> list[dict]:
    return [{"id": r["id"], "task_id": r["task_id"], "messages": r["messages"], "tools": r["tools"], "train_mask": r["train_mask"],
             "tokens": r["tokens"], "score": r["score"], "passed": r["passed"]} for r in rows if r.get("tokens")]
