"""Preference views for DPO in TRL's conversational layout: prompt / chosen / rejected message lists and tools.

`dpo`: chosen = the best-scoring curated (passed) trajectory of a task and format, rejected = each failed
trajectory of the same task and format with the same prompt; both continue the shared prompt (system + user).
`dpo_step`: at a failed trajectory's first bad step (its step verdict), chosen = the message a curated trajectory
of the same task sent after exactly the same history, rejected = the bad message.

Failed trajectories are not in the curated data (curate keeps passed rows), so these views read them from the
run's verified/ shards: `context.failed[task_id]`. A rejected side is a model attempt that failed on its
merits: a row that failed for a transient reason (a timeout, a dead endpoint: pipeline/llm/transient.py) is
never one, nor a row whose attempt has no assistant message with content or a tool call. Neither side of a
pair is ever empty.
"""

import pyarrow as pa

from pipeline.jsonutil import canonical_json, content_hash
from pipeline.llm import transient

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("task_id", pa.string()),
    ("chosen_id", pa.string()),
    ("rejected_id", pa.string()),
    ("prompt", pa.list_(pa.json_())),
    ("chosen", pa.list_(pa.json_())),
    ("rejected", pa.list_(pa.json_())),
    ("tools", pa.list_(pa.json_())),
])

BAD_LABELS = {"bad", "incorrect", "wrong", "harmful", "unhelpful"}


def says_something(messages: list[dict]) -> bool:
    """Whether an assistant message among `messages` has content or a tool call."""
    return any(m["role"] == "assistant" and ((m.get("content") or "").strip() or m.get("tool_calls")) for m in messages)


def real_attempt(row: dict) -> bool:
    return not transient.is_transient(row) and says_something(row["messages"])


def prompt_length(messages: list[dict]) -> int:
    """Messages before the first assistant turn."""
    return next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))


def best_per_task(rows: list[dict]) -> dict[tuple[str, str], dict]:
    best: dict[tuple[str, str], dict] = {}
    for row in sorted(rows, key=lambda r: (-(r["score"] or 0), r["id"])):
        best.setdefault((row["task_id"], row["format"]), row)
    return best


def pair(task_id: str, chosen: dict, rejected: dict, cut: int, chosen_tail: list, rejected_tail: list) -> dict:
    if not says_something(chosen_tail) or not says_something(rejected_tail):
        raise ValueError(f"refusing a preference pair with an empty side (chosen {chosen['id']}, rejected {rejected['id']})")
    return {"id": "pair-" + content_hash(chosen["id"], rejected["id"], cut), "task_id": task_id,
            "chosen_id": chosen["id"], "rejected_id": rejected["id"], "prompt": chosen["messages"][:cut],
            "chosen": chosen_tail, "rejected": rejected_tail, "tools": chosen["tools"]}


def trajectory_pairs(rows: list[dict], context) -> list[dict]:
    out = []
    for (task_id, fmt), chosen in best_per_task(rows).items():
        cut = prompt_length(chosen["messages"])
        prompt = canonical_json(chosen["messages"][:cut])
        for failed in context.failed.get(task_id, []):
            if failed["format"] == fmt and canonical_json(failed["messages"][:cut]) == prompt and says_something(failed["messages"][cut:]):
                out.append(pair(task_id, chosen, failed, cut, chosen["messages"][cut:], failed["messages"][cut:]))
    return out


def first_bad_step(row: dict) -> dict | None:
    for step in row["steps"]:
        verdict = step["step_verdict"] or {}
        label = (verdict.get("label") or "").lower()
        if label in BAD_LABELS or (not label and verdict.get("score") is not None and verdict["score"] < 0.5):
            return step
    return None


def step_pairs(rows: list[dict], context) -> list[dict]:
    by_task: dict[str, list[dict]] = {}
    for row in rows:
        by_task.setdefault(row["task_id"], []).append(row)
    out = []
    for task_id, passed in by_task.items():
        for failed in context.failed.get(task_id, []):
            step = first_bad_step(failed)
            if step is None or not says_something([failed["messages"][step["message_index"]]]):
                continue
            cut = step["message_index"]
            history = canonical_json(failed["messages"][:cut])
            for chosen in sorted(passed, key=lambda r: (-(r["score"] or 0), r["id"])):
                if len(chosen["messages"]) > cut and canonical_json(chosen["messages"][:cut]) == history \
                        and chosen["messages"][cut] != failed["messages"][cut] and says_something([chosen["messages"][cut]]):
                    out.append(pair(task_id, chosen, failed, cut, [chosen["messages"][cut]], [failed["messages"][cut]]))
                    break
    return out
