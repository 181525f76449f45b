"""The judge committee, step judge and feedback loop against a fake OpenAI server over real HTTP (aggregation,
abstentions, timeouts, quorum), plus the rules and agreement statistics on their own."""

import json

import pytest
import yaml

from pipeline import cli, shards
from pipeline.verify.committee import aggregate, fleiss_kappa, pairwise_agreement
from pipeline.verify.judges import parse_verdict
from pipeline.verify.rubrics import VERDICT_SCHEMA
from tests.fake_openai import FakeOpenAI, Fault, calculator_solver

VOTE = {"pass": {"passed": True, "score": 5, "rationale": "correct"}, "fail": {"passed": False, "score": 1, "rationale": "wrong"}}


def judge_responder(path, body):
    """Judges are told apart by model: judge-pass, judge-fail, judge-garbage, judge-steps; others teach."""
    model = body["model"]
    if model == "judge-garbage":
        return "I think it is fine!"
    if model == "judge-steps":
        steps = body["messages"][1]["content"].count("thought:")
        return json.dumps({"steps": [{"index": i, "label": "bad" if i == 1 else "good", "score": 2 if i == 1 else 5} for i in range(steps)]})
    if model.startswith("judge-"):
        return json.dumps(VOTE[model.removeprefix("judge-")])
    return calculator_solver(path, body)


@pytest.fixture
def server():
    with FakeOpenAI(models=("judge-pass", "judge-fail", "judge-garbage", "judge-steps", "teacher"), responder=judge_responder) as fake:
        yield fake


def config(server, judges, committee=None, **verify) -> dict:
    endpoints = {name: {"base_url": server.base_url, "model": name, "max_retries": 1, "timeout_s": 5}
                 for name in ("judge-pass", "judge-fail", "judge-garbage", "judge-steps", "teacher")}
    return {"run": {"rows_per_shard": 3}, "endpoints": endpoints,
            "synthesize": {"generators": [{"name": "arithmetic", "count": 3}]},
            "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["react"]}]},
            "verify": {"judges": [{"name": j, "endpoint": j} for j in judges], "committee": committee or {}, **verify}}


def run(tmp_path, data) -> list[dict]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify"]) == 0
    return [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]


def committee(row) -> dict:
    return next(c for c in row["checks"] if c["name"] == "committee")


def test_majority_with_an_abstaining_judge(tmp_path, server):
    rows = run(tmp_path, config(server, ["judge-pass", "judge-fail", "judge-garbage"], {"rule": "majority", "quorum": 2}))
    for row in rows:
        votes = {j["judge"]: j["passed"] for j in row["judgments"]}
        assert votes == {"judge-pass": True, "judge-fail": False, "judge-garbage": None}
        garbage = next(j for j in row["judgments"] if j["judge"] == "judge-garbage")
        assert "no valid verdict in 2 tries" in garbage["rationale"]
        assert committee(row) == {"name": "committee", "passed": False, "detail": "majority: 1/2 passed, 1 abstained"}
        assert row["passed"] is False
    garbage_requests = [b for _, b, _ in server.completions if b["model"] == "judge-garbage"]
    assert len(garbage_requests) == 2 * len(rows)  # an invalid verdict is asked once more, then abstains
    sent = [b for _, b, _ in server.completions if b["model"] == "judge-pass"][0]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["passed", "score", "rationale"]
    assert "REFERENCE ANSWER" in sent["messages"][1]["content"]  # the correctness rubric sees the ground truth


def test_quorum_not_met_fails_the_row_and_says_why(tmp_path, server):
    rows = run(tmp_path, config(server, ["judge-pass", "judge-garbage"], {"quorum": 2}))
    assert all(committee(r)["detail"].startswith("no quorum: 1 of 2 judges voted") and not r["passed"] for r in rows)


def test_judge_endpoint_failing_mid_run_abstains_without_crashing(tmp_path, server):
    server.faults += [Fault(500)] * 100  # every judge request fails (after the client's retry)
    rows = run(tmp_path, config(server, ["judge-pass"], {"quorum": 1}))
    assert len(rows) == 3
    assert all(r["judgments"][0]["passed"] is None and "endpoint failed" in r["judgments"][0]["rationale"] for r in rows)
    assert all(not committee(r)["passed"] for r in rows)


def test_judge_timeout_is_an_abstention(tmp_path, server):
    data = config(server, ["judge-pass", "judge-fail"], {"rule": "unanimous", "quorum": 1})
    data["endpoints"]["judge-fail"].update(timeout_s=0.2, max_retries=0)
    server.faults += [Fault(200, delay=1.0) for _ in range(3)]  # the first three requests (judge-fail's or judge-pass's) hang
    rows = run(tmp_path, data)
    abstained = [j for r in rows for j in r["judgments"] if j["passed"] is None]
    assert abstained and all("timeout" in j["rationale"] for j in abstained)


def test_unanimous_and_soft_committee(tmp_path, server):
    rows = run(tmp_path, config(server, ["judge-pass", "judge-fail"], {"rule": "unanimous", "hard": False}))
    for row in rows:
        assert committee(row)["passed"] is False
        assert row["passed"] is True and row["score"] < 1.0  # a soft committee lowers the score only


def test_step_judge_stores_a_verdict_per_step_and_the_first_bad_one(tmp_path, server):
    rows = run(tmp_path, config(server, [], step_judge={"endpoint": "judge-steps"}))
    for row in rows:
        labels = [s["step_verdict"]["label"] for s in row["steps"]]
        assert labels[1] == "bad" and labels.count("bad") == 1
        assert row["meta"]["first_bad_step"] == 1


def test_feedback_round_resamples_a_failed_llm_row_and_links_it(tmp_path, server):
    def wrong_then_right(path, body):
        if body["model"] != "teacher":
            return judge_responder(path, body)
        text = json.dumps(body["messages"])
        if "Feedback on an earlier attempt" not in text:
            return "Thought: I guess.\nFinal Answer: 7"
        return judge_responder(path, body)

    server.responder = wrong_then_right
    data = config(server, [])
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"instruction": "What is 6 times 7?", "ground_truth": {"answer": 42}}) + "\n")
    data["synthesize"] = {"seeds": [{"name": "q", "path": str(seeds), "defaults": {"domain": "arithmetic", "tools": ["calculator"]}}]}
    data["sample"]["teachers"] = [{"name": "t", "policy": "llm", "endpoint": "teacher", "formats": ["react"], "max_steps": 4}]
    data["verify"]["feedback"] = {"rounds": 2}
    rows = run(tmp_path, data)
    parent, child = rows
    assert parent["passed"] is False and parent["final_answer"] == "7"
    assert child["meta"]["parent_id"] == parent["id"] and child["meta"]["feedback_round"] == 1
    assert "answer check failed" in child["meta"]["feedback"]
    assert child["task_id"] == parent["task_id"] and child["instruction"] == parent["instruction"]
    assert "Feedback" not in json.dumps(child["messages"])  # the stored conversation is the plain task
    assert child["passed"] is True and child["id"] != parent["id"]


def test_aggregation_rules():
    v = lambda judge, passed, score: {"judge": judge, "passed": passed, "score": score}
    votes = [v("a", True, 4.0), v("b", False, 2.0), v("c", True, 5.0), v("d", None, None)]
    assert aggregate(votes, {}, "majority", 0.5, 1) == (True, "majority: 2/3 passed, 1 abstained")
    assert aggregate(votes, {}, "unanimous", 0.5, 1)[0] is False
    assert aggregate(votes, {}, "mean_score", 3.6, 1)[0] is True and aggregate(votes, {}, "mean_score", 3.8, 1)[0] is False
    assert aggregate(votes, {"b": 3.0}, "weighted", 0.5, 1)[0] is False  # b's weight outvotes a and c
    assert aggregate(votes, {}, "weighted", 0.5, 1)[0] is True
    assert aggregate(votes, {}, "majority", 0.5, 4)[0] is None


def test_agreement_statistics():
    rows = [{"a": True, "b": True}, {"a": False, "b": False}, {"a": True, "b": False}, {"a": False, "b": False}]
    assert pairwise_agreement(rows) == {"a~b": 0.75}
    assert fleiss_kappa(rows) == 0.4667
    assert fleiss_kappa([{"a": True, "b": True}, {"a": True, "b": True}]) is None


def test_a_verdict_with_a_raw_line_break_in_its_rationale_is_read():
    text = '{"passed": true, "score": 4, "rationale": "Correct.\nUses the tools well."}'
    assert parse_verdict(text, VERDICT_SCHEMA) == {"passed": True, "score": 4, "rationale": "Correct.\nUses the tools well."}
    assert parse_verdict('{"passed": "yes", "score": 4, "rationale": ""}', VERDICT_SCHEMA) is None
