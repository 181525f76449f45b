"""Keeping a row that breaks the trajectory schema (used by verify and by the import): verify reads its input without validating it (the `schema`
check reports on it), and a verified shard must still hold only rows that keep the schema. So such a row is
stored in a repaired form: every top-level field the schema rejects is replaced by a placeholder that keeps it
(an empty conversation, no steps, zero usage...), the original values of those fields and the problems go to
`meta.schema_repair` (`{problems, original}`), and the row is failed. Nothing is dropped: the row is counted,
shows in `trajforge show`, and its reason is in its `schema` check."""

import json

from pipeline import schema
from pipeline.jsonutil import content_hash

PLACEHOLDERS = {
    "task_id": "unknown",
    "domain": "unknown",
    "source": "import:unknown",
    "format": "function_calling",
    "instruction": "(invalid row)",
    "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "(invalid row)"}],
    "tools": None,
    "train_mask": [False, False],
    "steps": [],
    "final_answer": None,
    "ground_truth": None,
    "environment": None,
    "difficulty": None,
    "meta": {},
    "teacher": {"model": "unknown", "endpoint": "unknown", "mode": "chat", "temperature": None, "seed": None, "prompt_id": "unknown"},
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "llm_calls": 0, "cost_usd": 0.0, "seconds": 0.0},
    "error": None,
    "checks": None,
    "judgments": None,
    "passed": False,
    "score": 0.0,
    "split": None,
    "config_hash": "",
    "pipeline_version": "",
}
MAX_PROBLEMS = 20


def _json_safe(value):
    return json.loads(json.dumps(value, default=repr))


def _bad_fields(instance) -> set[str]:
    """Top-level fields the schema rejects: those an error points into, those missing, those unknown."""
    bad = set()
    for error in schema.validator("trajectory").iter_errors(instance):
        path = list(error.absolute_path)
        if path:
            bad.add(str(path[0]))
        elif error.validator == "required":
            bad |= {name for name in error.validator_value if name not in instance}
        elif error.validator == "additionalProperties":
            bad |= {key for key in instance if key not in PLACEHOLDERS and key != "id"}
    return bad


def repaired(row) -> dict:
    """`row` itself when it keeps the schema; otherwise its repaired form (see the module doc)."""
    problems = schema.errors("trajectory", row)
    if not problems:
        return row
    original = row if isinstance(row, dict) else {"(row)": row}
    fixed = {key: value for key, value in original.items() if key in PLACEHOLDERS or key == "id"}
    replaced: dict = {key: value for key, value in original.items() if key not in fixed}
    for _ in range(3):  # a placeholder can only fix a field, so a few passes settle it
        bad = _bad_fields(fixed)
        if not bad:
            break
        for field in bad:
            if field in fixed:
                replaced[field] = fixed[field]
            fixed[field] = PLACEHOLDERS.get(field) if field != "id" else None
        if "id" in bad or not isinstance(fixed.get("id"), str) or not fixed["id"]:
            fixed["id"] = "invalid-" + content_hash(_json_safe(original))
    meta = dict(fixed.get("meta") or {})
    meta["schema_repair"] = {"problems": problems[:MAX_PROBLEMS], "original": _json_safe(replaced)}
    return {**PLACEHOLDERS, **fixed, "meta": meta, "passed": False}
