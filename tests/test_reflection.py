"""Self-reflected trajectories (STeP): injected mistakes in program-teacher trajectories, and failed LLM samples
spliced with the teacher's own reflection (a fake endpoint over real HTTP); every reflected row is verified."""

import asyncio
import copy
import json

import pytest
import yaml

from pipeline import cli
from pipeline.formats import FORMATS
from pipeline.sample.agent import run_episode
from pipeline.sample.reflect import REFLECT_PROMPT, ReflectionPolicy, perturb, recovered
from pipeline.tools import Env, final_state
from pipeline.verify.checks import check_tool_calls
from tests.conftest import small_config
from tests.fake_openai import FakeOpenAI
from tests.test_llm_tasks import funnel, rows

CHECKS = ["schema", "messages_steps", "tool_calls", "replay", "final_answer", "answer", "loops", "limits", "format_junk", "final_state"]
REFLECTION = "I put a letter where a number belongs; I take the numbers from the question instead."


def run(tmp_path, data) -> list[dict]:
    data.setdefault("verify", {})["checks"] = [{"name": n} for n in CHECKS]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify"]) == 0
    return rows(tmp_path, "verified", "trajectory")


def test_program_trajectories_get_reflected_copies_that_pass_verification(tmp_path):
    data = small_config(arithmetic=3, sql_table=2, units_dates=2, kb_multihop=2, python_compute=1, doc_search=2, store_refunds=4)
    data["sample"]["teachers"] = [{"name": "program", "policy": "program", "formats": ["function_calling", "cota"]}]
    data["sample"]["reflection"] = {"fraction": 1.0}
    verified = run(tmp_path, data)
    by_id = {r["id"]: r for r in verified}
    reflected = [r for r in verified if "reflection" in r["meta"]]
    assert len(reflected) == len(verified) // 2 == 32  # 16 tasks, 2 formats
    assert all(r["passed"] for r in verified), [(r["meta"].get("reflection"), c) for r in verified for c in r["checks"] if not c["passed"]]
    assert {r["meta"]["reflection"]["kind"] for r in reflected} == {"wrong_argument", "wrong_tool"}
    for row in reflected:
        meta = row["meta"]["reflection"]
        wrong, fixed = row["steps"][meta["step"]], row["steps"][meta["step"] + 1]
        assert wrong["message_index"] == meta["message_index"] and wrong["observation"] != fixed["observation"]
        assert (wrong["tool_name"], wrong["tool_arguments"]) != (fixed["tool_name"], fixed["tool_arguments"])
        assert fixed["thought"].startswith(meta["reflection"])
        assert [i for i, keep in enumerate(row["train_mask"]) if not keep and row["messages"][i]["role"] == "assistant"] == [meta["message_index"]]
        parent = by_id[meta["parent_id"]]
        assert row["final_answer"] == parent["final_answer"] and len(row["steps"]) == len(parent["steps"]) + 1
    assert funnel(tmp_path, "sample", "reflection") == {"selected": 32, "injected": 32, "no_recovery": 0, "failures_seen": 0,
                                                         "failures_spliced": 0, "failures_unspliceable": 0}


def test_a_wrong_tool_step_is_accepted_only_because_it_is_masked(tmp_path):
    data = small_config(arithmetic=0, sql_table=0, units_dates=0, kb_multihop=0, python_compute=0, doc_search=0, store_refunds=3)
    data["sample"]["teachers"] = [{"name": "program", "policy": "program", "formats": ["function_calling"]}]
    data["sample"]["reflection"] = {"fraction": 1.0, "errors": ["wrong_tool"]}
    row = next(r for r in run(tmp_path, data) if "reflection" in r["meta"])
    assert row["passed"] and row["steps"][row["meta"]["reflection"]["step"]]["error"]
    unmasked = copy.deepcopy(row)
    unmasked["train_mask"] = [m["role"] == "assistant" for m in row["messages"]]
    assert not check_tool_calls(unmasked, {})["passed"]  # trained on, the same wrong call would fail the row


def slipping_teacher(path, body):
    """A function-calling teacher that writes a letter into its first calculator call, then gives up; asked to
    reflect, it says what went wrong."""
    messages = body["messages"]
    if messages[-1]["role"] == "user" and messages[-1]["content"] == REFLECT_PROMPT:
        return REFLECTION
    if messages[-1]["role"] == "tool":
        return "I cannot compute this."
    return {"content": "I compute it.", "tool_calls": [{"id": "call_x", "name": "calculator", "arguments": json.dumps({"expression": "6 * x"})}]}


def test_a_failed_llm_sample_is_spliced_with_the_teachers_reflection_and_the_solution(tmp_path):
    with FakeOpenAI(models=("teacher",), responder=slipping_teacher) as server:
        data = {"run": {"rows_per_shard": 3}, "endpoints": {"teacher": {"base_url": server.base_url, "model": "teacher", "max_retries": 0}},
                "synthesize": {"generators": [{"name": "arithmetic", "count": 3}]},
                "sample": {"teachers": [{"name": "t", "policy": "llm", "endpoint": "teacher", "formats": ["function_calling"]}],
                           "reflection": {"from_failures": True}}}
        verified = run(tmp_path, data)
        asked = [b for _, b, _ in server.completions if b["messages"][-1]["content"] == REFLECT_PROMPT]
    failed = [r for r in verified if "reflection" not in r["meta"]]
    spliced = [r for r in verified if "reflection" in r["meta"]]
    assert len(failed) == len(spliced) == 3 and not any(r["passed"] for r in failed)
    assert len(asked) == 3 and asked[0]["messages"][-2]["role"] == "tool" and asked[0]["messages"][-2]["content"].startswith("Error")
    for row in spliced:
        meta = row["meta"]["reflection"]
        assert row["passed"], [c for c in row["checks"] if not c["passed"]]
        assert meta["kind"] == "tool_error" and meta["reflection_by"] == "model" and meta["reflection"] == REFLECTION
        assert row["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"expression": "6 * x"} and row["train_mask"][2] is False
        assert row["messages"][4]["content"].startswith(REFLECTION) and row["source"] == "llm:teacher"
    assert funnel(tmp_path, "sample", "reflection")["failures_spliced"] == 3


STORE = {"customers": {"C1": {"name": "A B", "email": "a@b.c"}},
         "orders": {oid: {"customer_id": "C1", "status": "pending", "address": "1 Elm", "refunded_cents": 0,
                          "items": [{"item_id": f"I{oid}", "product": "mug", "price_cents": 1100, "status": "ordered"}]} for oid in ("O1000", "O1001")}}


def test_a_mistake_that_changes_the_state_for_good_does_not_recover():
    final = copy.deepcopy(STORE)
    final["orders"]["O1000"].update(status="cancelled", refunded_cents=1100)
    task = {"id": "t", "instruction": "Cancel O1000.", "tools": ["cancel_order"], "environment": {"store": STORE},
            "ground_truth": {"answer": "cancelled", "final_state": {"store": final}},
            "solution": {"steps": [{"thought": "Cancel it.", "tool": "cancel_order", "arguments": {"order_id": "O1000", "reason": "no longer needed"}}],
                         "answer": "cancelled"}}
    mistake = {"kind": "wrong_argument", "step": 0, "argument": "order_id"}
    with Env(task["environment"]) as env:
        episode = asyncio.run(run_episode(task, ReflectionPolicy(0, mistake), FORMATS["function_calling"], env, 8))
        state = final_state(env)
    assert mistake["wrong"] == "O1001" and state["store"]["orders"]["O1001"]["status"] == "cancelled"
    assert episode.final_answer == "cancelled" and not recovered(episode, state, task, 0)


@pytest.mark.parametrize("value, slipped", [(7, 8), (2.5, 3.5), ("O1234", "O1235"), ("mara@x.com", "mra@x.com"), (["I3", "I4"], ["I4", "I4"]), ("ab", None)])
def test_perturbations_are_plausible_slips(value, slipped):
    assert perturb(value) == slipped
