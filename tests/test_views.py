"""Export views on single rows, and `trajforge export` on a curated run."""

import json

import pyarrow.parquet as pq

from pipeline.curate import views
from pipeline.curate.views import dpo, react, sharegpt, trl
from tests.conftest import run_cli
from tests.curate_run import curate, failed_copy, run_dir, template_run  # noqa: F401 (fixtures)
from tests.fc_rows import function_calling_row
from tests.helpers import make_trajectory


def with_verdicts(row: dict) -> dict:
    row = dict(row, checks=[{"name": "answer", "passed": True, "detail": None}], passed=True, score=1.0)
    row["steps"] = [dict(s, step_verdict=None) for s in row["steps"]]
    return row


def test_trl_view_keeps_messages_tools_and_mask():
    row = function_calling_row()
    [out] = trl.build([row], views.Context())
    assert out == {"id": row["id"], "messages": row["messages"], "tools": row["tools"], "train_mask": row["train_mask"]}
    assert isinstance(out["messages"][2]["tool_calls"][0]["function"]["arguments"], dict)


def test_sharegpt_view_maps_roles_and_keeps_tools_as_json():
    row = function_calling_row()
    [out] = sharegpt.build([row], views.Context())
    roles = [t["from"] for t in out["conversations"]]
    assert roles[0] == "human" and roles[-1] == "gpt" and "function_call" in roles and "observation" in roles
    call = json.loads(out["conversations"][1]["value"])
    assert call == {"name": "calculator", "arguments": row["messages"][2]["tool_calls"][0]["function"]["arguments"]}
    assert out["system"] == row["messages"][0]["content"] and json.loads(out["tools"]) == row["tools"]


def test_react_view_is_the_same_text_for_every_format_of_a_trajectory():
    cota, text_react = make_trajectory("sql_table", 3, "cota"), make_trajectory("sql_table", 3, "react")
    [a], [b] = react.build([cota], views.Context()), react.build([text_react], views.Context())
    assert a["text"] == b["text"]
    assert f"Question: {cota['instruction']}" in a["text"] and "Action: sql" in a["text"]
    assert "\nObservation: " in a["text"] and a["text"].endswith(f"Final Answer: {cota['final_answer']}")


def test_dpo_pairs_a_passed_and_a_failed_trajectory_with_the_same_prompt():
    chosen = with_verdicts(make_trajectory("arithmetic", 5, "react"))
    failed = failed_copy(dict(chosen, checks=[{"name": "answer", "passed": True, "detail": None}]), 1)
    other_format = failed_copy(with_verdicts(make_trajectory("arithmetic", 5, "cota")), 2)
    context = views.Context({chosen["task_id"]: [failed, other_format]})
    [pair] = dpo.trajectory_pairs([chosen], context)
    assert pair["prompt"] == chosen["messages"][:2] and pair["chosen"] == chosen["messages"][2:]
    assert pair["rejected"] == failed["messages"][2:] and (pair["chosen_id"], pair["rejected_id"]) == (chosen["id"], failed["id"])


def test_step_level_pair_is_cut_at_the_first_bad_step():
    chosen = with_verdicts(make_trajectory("arithmetic", 5, "react"))
    failed = failed_copy(chosen, 1)
    [pair] = dpo.step_pairs([chosen], views.Context({chosen["task_id"]: [failed]}))
    cut = failed["steps"][0]["message_index"]
    assert pair["prompt"] == chosen["messages"][:cut]
    assert pair["chosen"] == [chosen["messages"][cut]] and pair["rejected"] == [failed["messages"][cut]]


def test_export_cli_writes_every_split_of_a_view(run_dir, tmp_path):
    curate(run_dir)
    proc = run_cli("export", run_dir, "--view", "trl", "--out", tmp_path / "trl", check=True)
    files = sorted(p.name for p in (tmp_path / "trl").glob("*.parquet"))
    assert files == sorted(p.name for p in (run_dir / "dataset" / "data").glob("*.parquet")) and "export trl:" in proc.stdout


def test_export_dpo_pairs_curated_rows_with_failed_rows_from_verified(run_dir, tmp_path):
    curate(run_dir)
    run_cli("export", run_dir, "--view", "dpo", "--out", tmp_path / "dpo", check=True)
    pairs = [r for f in sorted((tmp_path / "dpo").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert pairs and all(r["rejected_id"].endswith(("-failed1", "-failed2")) for r in pairs)
    assert all(r["chosen_id"] == r["rejected_id"].rsplit("-", 1)[0] for r in pairs)


def test_export_without_a_curated_dataset_is_a_clear_error(run_dir, tmp_path):
    proc = run_cli("export", run_dir, "--view", "trl", "--out", tmp_path / "x")
    assert proc.returncode == 2 and "run `trajforge curate` first" in proc.stderr
