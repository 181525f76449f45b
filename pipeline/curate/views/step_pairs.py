"""The `dpo_step` view: step-level preference pairs, the same history and two next actions, each a real model
attempt that was parsed and executed. Three sources:

- first bad steps (dpo.step_pairs): a failed trajectory's first bad step against the message a curated
  trajectory of the same task sent after exactly the same history;
- rollout branches (`meta.step_values.branches`, verify/step_values.py): at step k, the trajectory's own action
  against the first action of a continuation from the same prefix, when their values differ by at least the
  run's `pair_margin` (chosen = the higher-valued);
- step candidates (`meta.step_candidates`, sample/sport.py): the chosen candidate against each executed
  candidate that scored lower.

A side that comes from a branch or a candidate has the id `<row id>/branch/<step>/<n>` or
`<row id>/candidate/<step>/<n>` (it is no row of its own).
"""

from pipeline.curate.views import dpo
from pipeline.curate.views.prm import with_failed
from pipeline.jsonutil import canonical_json, content_hash
from pipeline.sample.branch import executed


def side_pair(row: dict, at: int, chosen: tuple[str, dict], rejected: tuple[str, dict]) -> dict:
    """A pair at step `at` of `row`: (id, message) of each side."""
    cut = row["steps"][at]["message_index"]
    return {"id": "pair-" + content_hash(row["id"], at, chosen, rejected), "task_id": row["task_id"], "chosen_id": chosen[0],
            "rejected_id": rejected[0], "prompt": row["messages"][:cut], "chosen": [chosen[1]], "rejected": [rejected[1]],
            "tools": row["tools"]}


def branch_pairs(row: dict) -> list[dict]:
    values = (row.get("meta") or {}).get("step_values") or {}
    out = []
    for n, branch in enumerate(values.get("branches") or []):
        at = branch["at"]
        step = row["steps"][at]
        verdict = step["step_verdict"] or {}
        if not branch["executed"] or not executed(step) or verdict.get("rollouts") is None or not branch["message"]:
            continue
        own = (row["id"], row["messages"][step["message_index"]])
        other = (f"{row['id']}/branch/{at}/{n}", branch["message"])
        gap = verdict["score"] - branch["value"]
        if abs(gap) >= values["pair_margin"]:
            out.append(side_pair(row, at, own, other) if gap > 0 else side_pair(row, at, other, own))
    return out


def candidate_pairs(row: dict) -> list[dict]:
    out = []
    for record in (row.get("meta") or {}).get("step_candidates") or []:
        at, candidates = record["step"], record["candidates"]
        best = candidates[record["chosen"]]
        chosen = (row["id"], row["messages"][row["steps"][at]["message_index"]])
        for n, candidate in enumerate(candidates):
            if candidate["executed"] and candidate["score"] < best["score"] and candidate["message"] != best["message"]:
                out.append(side_pair(row, at, chosen, (f"{row['id']}/candidate/{at}/{n}", candidate["message"])))
    return out


def build(rows: list[dict], context) -> list[dict]:
    """Every pair once: two sources that found the same prompt, chosen and rejected give one pair (the first)."""
    out = dpo.step_pairs(rows, context)
    for row in with_failed(rows, context):
        out += branch_pairs(row) + candidate_pairs(row)
    unique = {}
    for pair in out:
        unique.setdefault(canonical_json([pair["prompt"], pair["chosen"], pair["rejected"]]), pair)
    return list(unique.values())
