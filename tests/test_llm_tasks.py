"""LLM task synthesis: blueprints proposed by a fake endpoint over real HTTP, executed in the real store tools,
reviewed, deduplicated, then sampled by the program teacher and verified like any task."""

import json

import pytest
import yaml

from pipeline import cli, shards
from pipeline.errors import UserError
from pipeline.synthesize import blueprints
from pipeline.synthesize.task_dedup import TaskIndex
from tests.fake_openai import FakeOpenAI
from tests.synthesis_fakes import MODELS, endpoints, responder

CHECKS = ["schema", "messages_steps", "tool_calls", "replay", "final_answer", "answer", "final_state", "actions", "loops"]


@pytest.fixture
def server():
    with FakeOpenAI(models=MODELS, responder=responder) as fake:
        yield fake


def config(server, *entries, **synthesize) -> dict:
    return {"run": {"rows_per_shard": 3}, "endpoints": endpoints(server),
            "synthesize": {"llm_tasks": list(entries), **synthesize},
            "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["function_calling"]}]},
            "verify": {"checks": [{"name": n} for n in CHECKS]}}


def entry(name="store", endpoint="proposer", count=3, **extra) -> dict:
    return {"name": name, "endpoint": endpoint, "count": count, "seeds": "store_refunds",
            "reviewers": [{"name": "r", "endpoint": "reviewer"}], **extra}


def run(tmp_path, data, stages="synthesize,sample,verify") -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", stages]) == 0


def rows(tmp_path, folder: str, kind: str) -> list[dict]:
    return [r for p in sorted((tmp_path / "run" / folder).glob("part-*.parquet")) for r in shards.read_shard(p, kind)]


def funnel(tmp_path, stage: str = "synthesize", name: str = "llm_tasks") -> dict:
    """The counts the stage summary recorded in the run report."""
    return json.loads((tmp_path / "run" / "report.json").read_text())["stages"][stage]["funnels"][name]


def test_validated_blueprints_become_tasks_the_program_teacher_solves(tmp_path, server, capsys):
    run(tmp_path, config(server, entry()))
    tasks = rows(tmp_path, "tasks", "task")
    assert len(tasks) == 3 and {t["source"] for t in tasks} == {"llm:proposer"}
    for task in tasks:
        order_id = task["solution"]["steps"][1]["arguments"]["order_id"]
        assert [s["tool"] for s in task["solution"]["steps"]] == ["get_order", "cancel_order"]
        assert task["ground_truth"]["final_state"]["store"]["orders"][order_id]["status"] == "cancelled"
        assert [a["changes_state"] for a in task["ground_truth"]["actions"]] == [False, True]
        assert task["meta"]["blueprint"]["rounds"] == 1 and task["meta"]["blueprint"]["reviews"][0]["passed"] is True
    verified = rows(tmp_path, "verified", "trajectory")
    assert len(verified) == 3 and all(r["passed"] for r in verified), [c for r in verified for c in r["checks"] if not c["passed"]]
    assert funnel(tmp_path) == {"proposed": 3, "unparseable": 0, "duplicate": 0, "actions_failed": 0, "executed_ok": 3,
                                     "review_failed": 0, "reviewed_ok": 3, "kept": 3, "duplicate_in_shard": 0, "gave_up": 0,
                                     "endpoint_failed": 0}
    assert "llm_tasks: proposed 3, unparseable 0, duplicate 0, actions failed 0, executed ok 3" in capsys.readouterr().out
    reviews = [b for _, b, _ in server.completions if b["model"] == "reviewer"]
    assert "GROUND-TRUTH ACTIONS, AS EXECUTED" in reviews[0]["messages"][1]["content"] and "observation: Order O" in reviews[0]["messages"][1]["content"]


def test_a_blueprint_whose_actions_fail_gets_the_error_back_and_a_second_round(tmp_path, server):
    run(tmp_path, config(server, entry(endpoint="proposer-fixes", count=2)), stages="synthesize")
    tasks = rows(tmp_path, "tasks", "task")
    assert len(tasks) == 2 and all(t["meta"]["blueprint"]["rounds"] == 2 for t in tasks)
    second = [b for _, b, _ in server.completions if b["model"] == "proposer-fixes" and len(b["messages"]) == 4]
    assert len(second) == 2
    assert "action 0 (get_order" in second[0]["messages"][3]["content"] and "no order with id 'O1'" in second[0]["messages"][3]["content"]
    counts = funnel(tmp_path)
    assert (counts["proposed"], counts["actions_failed"], counts["executed_ok"], counts["kept"]) == (4, 2, 2, 2)


def test_rejected_blueprints_are_counted_and_explained_and_the_run_goes_on(tmp_path, server, caplog):
    data = config(server, entry("junk", "proposer-garbage", count=2, max_rounds=2), entry("picky", count=1, reviewers=[{"name": "no", "endpoint": "reviewer-fail"}]),
                  entry("good", count=1), generators=[{"name": "arithmetic", "count": 1}])
    run(tmp_path, data)
    tasks = rows(tmp_path, "tasks", "task")
    assert sorted(t["source"] for t in tasks) == ["llm:proposer", "program:arithmetic"]
    counts = funnel(tmp_path)
    assert counts["unparseable"] == 4 and counts["review_failed"] == 2 and counts["gave_up"] == 3 and counts["kept"] == 1
    assert "blueprint 0 of llm_tasks junk dropped: the reply is not one JSON object" in caplog.text
    feedback = [b for _, b, _ in server.completions if b["model"] == "proposer" and len(b["messages"]) == 4]
    assert any("the reviewers rejected it" in b["messages"][3]["content"] and "never says which order" in b["messages"][3]["content"] for b in feedback)
    assert all(r["passed"] for r in rows(tmp_path, "verified", "trajectory"))


def test_a_copy_of_a_seed_task_is_dropped_as_a_duplicate(tmp_path, server):
    run(tmp_path, config(server, entry(endpoint="proposer-copy", count=1, max_rounds=1)), stages="synthesize")
    assert rows(tmp_path, "tasks", "task") == []
    assert funnel(tmp_path)["duplicate"] == 1 and funnel(tmp_path)["executed_ok"] == 0


def test_duplicates_within_a_shard_are_dropped_after_synthesis(tmp_path, server):
    """Two seeds sharing one store: both proposals cancel the same order with the same words."""
    seed = {"instruction": "Please change the address of order O{n}.", "domain": "store", "tools": ["get_order", "cancel_order"],
            "environment": {"store": {"customers": {"C1": {"name": "A B", "email": "a@b.c"}},
                                      "orders": {"O7": {"customer_id": "C1", "status": "pending", "address": "1 Elm", "refunded_cents": 0,
                                                        "items": [{"item_id": "I1", "product": "mug", "price_cents": 1100, "status": "ordered"}]}}}},
            "ground_truth": {"answer": 1}}
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps({**seed, "instruction": seed["instruction"].format(n=n)}) for n in (1, 2)) + "\n")
    data = config(server, {**entry(count=2), "seeds": "mine"}, seeds=[{"name": "mine", "path": str(path)}])
    data["run"]["rows_per_shard"] = 4  # the two seed tasks and the two blueprints in one shard
    run(tmp_path, data, stages="synthesize")
    llm = [t for t in rows(tmp_path, "tasks", "task") if t["source"].startswith("llm:")]
    assert len(llm) == 1 and funnel(tmp_path)["duplicate_in_shard"] == 1 and funnel(tmp_path)["kept"] == 1


def test_bad_llm_tasks_config_names_the_field(tmp_path, server):
    from pipeline.config_check import validate_data

    with pytest.raises(UserError, match=r"synthesize.llm_tasks\[0\].seeds: unknown seeds source or generator 'store_refund' \(did you mean 'store_refunds'"):
        validate_data(config(server, {**entry(), "seeds": "store_refund"}), "c.yaml")
    with pytest.raises(UserError, match=r"llm_tasks\[0\].committee.quorum: 2 is more than the 1 reviewer"):
        validate_data(config(server, entry(committee={"quorum": 2})), "c.yaml")


STORE = {"customers": {"C1": {"name": "A B", "email": "a@b.c"}},
         "orders": {"O7": {"customer_id": "C1", "status": "pending", "address": "1 Elm", "refunded_cents": 0,
                           "items": [{"item_id": "I1", "product": "mug", "price_cents": 1100, "status": "ordered"}]}}}
TOOLS = ["get_order", "cancel_order"]


def blueprint(**changes) -> dict:
    return {"instruction": "Cancel order O7, ordered by mistake. How much comes back?",
            "actions": [{"thought": "", "tool": "cancel_order", "arguments": {"order_id": "O7", "reason": "ordered by mistake"}}],
            "answer": "11.00", "state_changes": {"store.orders.O7.status": "cancelled"}, **changes}


def test_execution_grounds_the_answer_in_what_the_tools_returned():
    run_ = blueprints.execute(blueprint(), {"store": STORE}, TOOLS, 4000, {})
    assert run_.problem is None and run_.answer == 11 and run_.changed == [True]
    assert run_.state["store"]["orders"]["O7"]["refunded_cents"] == 1100
    assert blueprints.execute(blueprint(answer="12.00"), {"store": STORE}, TOOLS, 4000, {}).problem == "answer '12.00': no observation states this number"
    assert blueprints.execute(blueprint(answer="cancelled"), {"store": STORE}, TOOLS, 4000, {}).problem is None


def test_stated_state_changes_must_hold():
    wrong = blueprints.execute(blueprint(state_changes={"store.orders.O7.status": "returned"}), {"store": STORE}, TOOLS, 4000, {})
    assert wrong.problem == 'state_changes: store.orders.O7.status is "cancelled" after the actions, not "returned"'
    missing = blueprints.execute(blueprint(state_changes={"store.orders.O9.status": "cancelled"}), {"store": STORE}, TOOLS, 4000, {})
    assert missing.problem == "state_changes: store.orders.O9.status: the final state has no 'O9'"


def test_a_rounded_answer_matches_the_precise_observation_within_its_precision():
    assert blueprints.grounded_answer("3.33", ["The result is 3.3333333"]) == (3.3333333, 0.005 + 1e-9, None)
    assert blueprints.grounded_answer("$1,250", ["Total: $1,250.00 refunded"]) == (1250, None, None)
    assert blueprints.grounded_answer("3.4", ["3.3333"])[2] == "answer '3.4': no observation states this number"


def test_blueprints_that_break_the_schema_say_where():
    schema = blueprints.blueprint_schema(TOOLS, 2)
    assert blueprints.parse('{"instruction": "Do something useful", "actions": [], "answer": "x"}', schema)[1].startswith("actions: [] should be non-empty")
    bad_tool = json.dumps(blueprint(actions=[{"thought": "", "tool": "sql", "arguments": {}}]))
    assert blueprints.parse(bad_tool, schema)[1].startswith("actions/0/tool: 'sql' is not one of")


def test_a_raw_line_break_inside_a_string_is_tolerated_not_rewritten():
    """Small models under a JSON grammar write literal line breaks in strings (strict JSON forbids them)."""
    text = json.dumps(blueprint()).replace("Cancel order O7, ", "Cancel order O7,\n")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    parsed, problem = blueprints.parse(text, blueprints.blueprint_schema(TOOLS, 2))
    assert problem is None and parsed["instruction"].startswith("Cancel order O7,\nordered")


def test_near_duplicates_are_found_by_word_trigrams():
    index = TaskIndex(0.8, ["Please cancel my order O7, I ordered it by mistake. How much is refunded?"])
    assert index.duplicate_of("please CANCEL my order O7 -- I ordered it by mistake; how much is refunded") [0] == "exact"
    assert index.duplicate_of("Please cancel my order O7, I ordered it by mistake. How much is refunded to me?")[0] == "near"
    assert index.duplicate_of("Please change the address of order O7 to 3 Mill Lane.") is None
