"""Tasks no offered tool fits (BFCL's irrelevance category): the right behaviour is to answer, or to decline,
without calling a tool, and the no_tool check rewards exactly that."""

import copy

import yaml

from pipeline import cli, shards
from pipeline.verify.checks import check_no_tool
from tests.conftest import ROOT
from tests.fake_openai import FakeOpenAI, calculator_solver

TASKS = ROOT / "examples" / "no_tool_tasks.jsonl"


def run(tmp_path, teachers, endpoints=None) -> list[dict]:
    data = {"run": {"name": "no-tool"}, "endpoints": endpoints or {},
            "synthesize": {"seeds": [{"name": "no_tool", "path": str(TASKS)}]},
            "sample": {"teachers": teachers},
            "verify": {"checks": [{"name": n} for n in ("schema", "messages_steps", "final_answer", "answer", "no_tool", "refusal", "grounding", "context", "step_ids")]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(tmp_path / "config.yaml"), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify"]) == 0
    return [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]


def no_tool(row: dict) -> dict:
    return next(c for c in row["checks"] if c["name"] == "no_tool")


def test_answering_or_declining_without_a_tool_passes(tmp_path):
    rows = run(tmp_path, [{"name": "program", "policy": "program", "formats": ["function_calling", "react"]}])
    assert len(rows) == 14 and all(r["passed"] for r in rows), [c for r in rows for c in r["checks"] if not c["passed"]]
    details = {no_tool(r)["detail"] for r in rows}
    assert details == {"answered without calling a tool", "declined without calling a tool"}
    assert all(len(r["steps"]) == 1 and r["steps"][0]["action_type"] == "final_answer" for r in rows)


def test_calling_a_tool_anyway_fails(tmp_path):
    with FakeOpenAI(responder=calculator_solver) as server:
        endpoint = {"fake": {"base_url": server.base_url, "model": "fake-model", "mode": "chat", "max_retries": 0}}
        rows = run(tmp_path, [{"name": "agent", "policy": "llm", "endpoint": "fake", "formats": ["function_calling"], "max_steps": 3}], endpoint)
    assert rows and not any(r["passed"] for r in rows)
    assert {no_tool(r)["detail"] for r in rows} == {"step 0 calls calculator; no offered tool fits this task"}


def test_a_decline_task_answered_with_a_claim_of_success_fails():
    row = {"ground_truth": {"answer": "I can't book a table.", "no_tool": "decline"}, "final_answer": "Done, your table is booked!",
           "steps": [{"index": 0, "action_type": "final_answer", "tool_name": None}]}
    assert check_no_tool(row, {}) == {"name": "no_tool", "passed": False, "detail": "the final answer does not decline the request"}
    declined = copy.deepcopy(row)
    declined["final_answer"] = "Sorry, I cannot make reservations with the tools I have."
    assert check_no_tool(declined, {})["passed"]
    assert check_no_tool({"ground_truth": {"answer": 4}, "steps": []}, {})["detail"] == "not a no-tool task"
