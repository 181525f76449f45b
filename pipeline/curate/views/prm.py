"""The `prm` view: stepwise supervision for process reward models, in TRL's stepwise-supervision layout with
conversational fields: `prompt` (the messages before the first step: system and user), `completions` (one per
step: the messages that step added, its assistant turn and the observation it got), `labels` (one bool per
completion: the step is good) and `tools` (OpenAI tool schemas, or null for text formats).

    messages = prompt + [m for completion in completions for m in completion]    # the whole trajectory

renders through a chat template; label i belongs to the end of completion i's assistant turn. Labels come from
the step verdicts (Monte Carlo step values, or the step judge); a row is exported when every step has one.
Several tool calls of one turn are one completion, good when all of them are. Failed trajectories (curate keeps
passed ones) are read from verified/ for the tasks of each data file: they carry the bad steps.
"""

import pyarrow as pa

from pipeline.curate.views.dpo import BAD_LABELS, prompt_length

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("task_id", pa.string()),
    ("prompt", pa.list_(pa.json_())),
    ("completions", pa.list_(pa.json_())),
    ("labels", pa.list_(pa.bool_())),
    ("tools", pa.list_(pa.json_())),
])


def good(step: dict) -> bool | None:
    """A step verdict as a label; None when the step has none."""
    label = ((step["step_verdict"] or {}).get("label") or "").lower()
    return None if not label else label not in BAD_LABELS


def stepwise(row: dict) -> dict | None:
    """The row in the view's layout, or None when some step has no label."""
    labels = [good(step) for step in row["steps"]]
    if not labels or None in labels:
        return None
    turns: list[tuple[int, bool]] = []  # (message index, label) per assistant turn
    for step, label in zip(row["steps"], labels):
        if turns and turns[-1][0] == step["message_index"]:
            turns[-1] = (step["message_index"], turns[-1][1] and label)
        else:
            turns.append((step["message_index"], label))
    ends = [m for m, _ in turns[1:]] + [len(row["messages"])]
    return {"id": row["id"], "task_id": row["task_id"], "prompt": row["messages"][: prompt_length(row["messages"])],
            "completions": [row["messages"][m:end] for (m, _), end in zip(turns, ends)],
            "labels": [label for _, label in turns], "tools": row["tools"]}


def with_failed(rows: list[dict], context) -> list[dict]:
    """`rows` and the failed trajectories of their tasks, each task's once per view (context.seen)."""
    out = list(rows)
    for task_id in dict.fromkeys(r["task_id"] for r in rows):
        if task_id not in context.seen:
            context.seen.add(task_id)
            out += context.failed.get(task_id, [])
    return out


def build(rows: list[dict], context) -> list[dict]:
    return [made for made in map(stepwise, with_failed(rows, context)) if made is not None]
