"""The feedback loop (APIGen-MT style): an LLM trajectory that failed for a fixable reason is sampled again by
the same teacher with the failure explained in the prompt, up to `verify.feedback.rounds` times. Each retry is
a new row linked to its parent through `meta` (parent_id, feedback_round, feedback) and is verified like any
other. The feedback is removed from the stored conversation: the row teaches solving the task, not reacting to
a critic."""

import copy

FEEDBACK_NOTE = "\n\n[Feedback on an earlier attempt at this task: {feedback} Avoid these mistakes.]"
STRIPPED_META = ("final_state", "sandbox")


def fixable_failures(row: dict, checks: list[str]) -> list[dict]:
    """The failed checks, among `checks`, of an LLM row (program rows are gold and never retried, nor are
    conversations with a simulated user or self-reflected rows)."""
    meta = row.get("meta") or {}
    if not str(row.get("source")).startswith("llm:") or "conversation" in meta or "reflection" in meta:
        return []  # conversations and spliced rows are not re-sampled: the note would reach the simulated user
    return [c for c in row["checks"] or [] if not c["passed"] and c["name"] in checks]


def feedback_text(failures: list[dict]) -> str:
    return " ".join(f"{c['name']} check failed: {c['detail']}." for c in failures)


def retry_task(row: dict, feedback: str, round_: int) -> dict:
    """The task to sample again: the parent's task with the feedback appended to the instruction, and an id
    of its own so its requests get their own cache keys."""
    meta = {k: v for k, v in (row.get("meta") or {}).items() if k not in ("tools", "teacher", "sample_index", "task_source", *STRIPPED_META)}
    return {
        "id": f"{row['task_id']}~feedback{round_}",
        "domain": row["domain"],
        "source": (row.get("meta") or {}).get("task_source", "seed:unknown"),
        "instruction": row["instruction"] + FEEDBACK_NOTE.format(feedback=feedback),
        "tools": (row.get("meta") or {}).get("tools") or [t["function"]["name"] for t in row.get("tools") or []],
        "environment": row.get("environment") or {},
        "ground_truth": row.get("ground_truth"),
        "solution": None,
        "difficulty": row.get("difficulty") or 1,
        "meta": meta,
    }


def as_child(child: dict, parent: dict, feedback: str, round_: int) -> dict:
    """Restore the original task in the child row and link it to its parent."""
    child = copy.deepcopy(child)
    child["task_id"] = parent["task_id"]
    child["instruction"] = parent["instruction"]
    first_user = next(i for i, m in enumerate(child["messages"]) if m["role"] == "user")
    child["messages"][first_user] = {"role": "user", "content": parent["instruction"]}
    child["meta"].update(parent_id=parent["id"], feedback_round=round_, feedback=feedback)
    return child
