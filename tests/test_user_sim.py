"""Multi-turn with a simulated user (APIGen-MT phase 2): blueprint tasks, a function-calling agent and a
simulated user, all fake endpoints over real HTTP; the store tools are real and verify replays the actions."""

import pytest

from pipeline.config_check import validate_data
from pipeline.errors import UserError
from pipeline.sample.user_sim import AGENT_SYSTEM
from tests.fake_openai import FakeOpenAI
from tests.synthesis_fakes import MODELS, endpoints, responder
from tests.test_llm_tasks import CHECKS, funnel, rows, run


@pytest.fixture
def server():
    with FakeOpenAI(models=MODELS, responder=responder) as fake:
        yield fake


def config(server, user="user", max_turns=4) -> dict:
    teacher = {"name": "agent", "policy": "llm", "endpoint": "agent", "formats": ["function_calling"], "max_steps": 8,
               "user_simulator": {"endpoint": user, "max_turns": max_turns}}
    return {"run": {"rows_per_shard": 2}, "endpoints": endpoints(server),
            "synthesize": {"llm_tasks": [{"name": "store", "endpoint": "proposer", "count": 2, "seeds": "store_refunds",
                                          "reviewers": [{"name": "r", "endpoint": "reviewer"}]}]},
            "sample": {"teachers": [teacher]},
            "verify": {"checks": [{"name": n} for n in CHECKS]}}


def test_blueprint_tasks_become_verified_conversations_with_a_simulated_user(tmp_path, server, capsys):
    run(tmp_path, config(server))
    verified = rows(tmp_path, "verified", "trajectory")
    assert len(verified) == 2
    for row in verified:
        assert row["passed"], [c for c in row["checks"] if not c["passed"]]
        order_id = row["ground_truth"]["actions"][1]["arguments"]["order_id"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "tool", "assistant"]
        assert row["messages"][0]["content"] == AGENT_SYSTEM and row["messages"][1]["content"] == "Hi, I need to cancel an order."
        assert row["messages"][3]["content"] == f"It is {order_id}." and row["messages"][5]["content"] == "The reason is: ordered by mistake."
        assert [s["action_type"] for s in row["steps"]] == ["ask_user", "ask_user", "tool_call", "final_answer"]
        assert row["steps"][0]["observation"] == f"It is {order_id}."
        assert row["meta"]["conversation"] == {"user_turns": 2, "ended_by": "satisfied", "user_model": "user"}
        assert row["meta"]["final_state"] == row["ground_truth"]["final_state"]
        assert row["usage"]["llm_calls"] == 4 + 4  # the agent's 4 turns; the user's opening, 2 replies and the STOP
    assert funnel(tmp_path, "sample", "user_sim") == {"conversations": 2, "user_turns": 4, "satisfied": 2, "max_turns": 0,
                                                       "user_failed": 0, "agent_failed": 0}
    assert "user_sim: conversations 2, user turns 4, satisfied 2" in capsys.readouterr().out
    intent = verified[0]["instruction"]
    for _, body, _ in server.completions:
        if body["model"] == "agent":  # the agent never sees the user's hidden goal
            assert all(intent not in (m.get("content") or "") for m in body["messages"])
        if body["model"] == "user":  # the user never sees tool calls or results
            assert {m["role"] for m in body["messages"]} <= {"system", "user", "assistant"}


def test_a_user_that_never_ends_is_cut_at_max_turns_and_the_run_goes_on(tmp_path, server):
    run(tmp_path, config(server, user="user-chatty", max_turns=2))
    verified = rows(tmp_path, "verified", "trajectory")
    assert len(verified) == 2
    for row in verified:
        assert row["error"] == "the simulated user did not end the conversation within max_turns=2"
        assert row["meta"]["conversation"]["ended_by"] == "max_turns" and row["final_answer"] is None
        assert [s["action_type"] for s in row["steps"]] == ["ask_user", "ask_user"] and row["messages"][-1]["role"] == "user"
        named = {c["name"]: c["passed"] for c in row["checks"]}
        assert named["messages_steps"] and named["schema"] and not named["final_answer"] and not row["passed"]
    assert len([b for _, b, _ in server.completions if b["model"] == "user-chatty"]) == 2 * 3  # opening + max_turns replies each
    assert funnel(tmp_path, "sample", "user_sim")["max_turns"] == 2


def test_a_user_that_sends_nothing_ends_the_conversation_with_the_reason(tmp_path, server):
    run(tmp_path, config(server, user="user-mute"), stages="synthesize,sample")
    for row in rows(tmp_path, "trajectories", "trajectory"):
        assert row["error"] == "the simulated user sent an empty message" and row["meta"]["conversation"]["ended_by"] == "user_failed"
        assert row["steps"][-1]["action_type"] == "ask_user" and row["steps"][-1]["observation"] is None


def test_a_user_simulator_needs_a_function_calling_llm_teacher(server):
    data = config(server)
    data["sample"]["teachers"][0]["formats"] = ["react"]
    with pytest.raises(UserError, match=r"sample.teachers\[0\].user_simulator: a simulated user talks to an llm teacher in the function_calling format"):
        validate_data(data, "c.yaml")
    data = config(server)
    data["sample"]["teachers"][0]["user_simulator"]["endpoint"] = "usr"
    with pytest.raises(UserError, match=r"user_simulator.endpoint: unknown endpoint 'usr' \(did you mean 'user'"):
        validate_data(data, "c.yaml")
