"""A labeled suite: good trajectories pass every check; each corrupted trajectory is caught by the check for
its defect class (and, where the corruption is consistent, only by that check)."""

import copy
import json

import pytest

from pipeline.verify.checks import CHECKS, DEFAULT_OPTIONS
from pipeline.verify.stage import VerifyStage
from tests.helpers import make_trajectory, rebuild_messages

GOOD = [(gen, seed, fmt) for gen in ("arithmetic", "sql_table", "units_dates", "kb_multihop") for seed in (1, 2) for fmt in ("cota", "react")]


def verify_config(verify: dict, endpoints: dict | None = None):
    """A full config (defaults applied) with this verify section."""
    from pipeline import config as configlib

    data = {"run": {}, "synthesize": {"generators": [{"name": "arithmetic", "count": 1}]}, "verify": verify, "endpoints": endpoints or {}}
    return configlib.Config(configlib.validate_data(data, "test"), None)


CONFIG = verify_config({"checks": [{"name": n, "hard": True} for n in CHECKS]})


def verify(row: dict) -> dict:
    return {c["name"]: c for c in VerifyStage(CONFIG, "h").verify_row(row)["checks"]}


def failing(row: dict) -> set[str]:
    return {name for name, c in verify(row).items() if not c["passed"]}


@pytest.mark.parametrize("gen,seed,fmt", GOOD)
def test_good_trajectories_pass_every_check(gen, seed, fmt):
    row = make_trajectory(gen, seed, fmt)
    assert failing(row) == set(), verify(row)
    assert VerifyStage(CONFIG, "h").verify_row(row)["passed"] is True


def good(fmt: str = "react") -> dict:
    return make_trajectory("arithmetic", 3, fmt)


def tool_step(row: dict) -> dict:
    return next(s for s in row["steps"] if s["action_type"] == "tool_call")


def test_wrong_answer_is_caught_by_answer_and_grounding():
    row = good()
    row["final_answer"] = "12345"  # observed nowhere: wrong, and ungrounded
    assert failing(rebuild_messages(row)) == {"answer", "grounding"}


def test_fabricated_observation_is_caught_by_replay_only():
    row = good("cota")
    tool_step(row)["observation"] = "999"
    assert failing(rebuild_messages(row)) == {"replay"}


def test_invalid_tool_arguments_are_caught():
    row = good()
    tool_step(row)["tool_arguments"] = json.dumps({"expr": "1 + 1"}, sort_keys=True)
    problems = failing(rebuild_messages(row))
    assert "tool_calls" in problems
    assert "invalid arguments for calculator" in verify(row)["tool_calls"]["detail"]


def test_unknown_tool_is_caught():
    row = good()
    tool_step(row)["tool_name"] = "browser"
    rebuild_messages(row)
    assert "tool_calls" in failing(row)
    assert "unknown tool 'browser'" in verify(row)["tool_calls"]["detail"]


def test_schema_break_is_caught():
    row = good()
    row["usage"]["llm_calls"] = -1
    assert failing(row) == {"schema"}


def test_loop_is_caught_by_loops_only():
    row = good()
    first = {**copy.deepcopy(tool_step(row)), "tool_call_id": "call_again"}
    row["steps"].insert(1, first)  # the same action again, with its real (same) observation
    assert failing(rebuild_messages(row)) == {"loops"}


def test_secret_shaped_string_is_caught_without_echoing_it():
    row = good()
    secret = "sk-" + "A1b2C3d4" * 4
    tool_step(row)["thought"] = f"My key is {secret}."
    result = verify(rebuild_messages(row))["secrets"]
    assert not result["passed"] and "OpenAI key" in result["detail"] and secret not in result["detail"]


def test_value_of_a_configured_secret_env_var_is_caught(monkeypatch):
    monkeypatch.setenv("MY_PROVIDER_KEY", "plain-looking-value-42")
    config = verify_config({"checks": [{"name": n} for n in CHECKS]}, {"teacher": {"model": "m", "api_key_env": "MY_PROVIDER_KEY"}})
    row = good()
    row["final_answer"] = "plain-looking-value-42"
    checks = {c["name"]: c for c in VerifyStage(config, "h").verify_row(rebuild_messages(row))["checks"]}
    assert not checks["secrets"]["passed"] and "$MY_PROVIDER_KEY" in checks["secrets"]["detail"]
    assert "plain-looking-value-42" not in checks["secrets"]["detail"]


def test_missing_final_answer_is_caught():
    row = good()
    row["steps"] = row["steps"][:-1]
    row["final_answer"] = None
    rebuild_messages(row)
    assert {"final_answer", "answer"} <= failing(row)


def test_messages_steps_mismatch_is_caught():
    row = good()
    row["messages"][2] = {"role": "assistant", "content": row["messages"][2]["content"].replace("Thought:", "Thought: (edited)")}
    assert failing(row) == {"messages_steps"}


def test_observation_edited_only_in_messages_is_caught():
    row = good("cota")
    row["messages"][3] = {"role": "user", "content": "Observation: 1"}
    assert "messages_steps" in failing(row)


def test_refusal_is_caught():
    row = good()
    row["steps"][-1]["thought"] = "I'm sorry, but I can't help with that."
    assert "refusal" in failing(rebuild_messages(row))


def test_template_tokens_are_format_junk():
    row = good()
    row["steps"][0]["thought"] = "Let me compute.<|im_end|>"
    assert "format_junk" in failing(rebuild_messages(row))


def test_self_written_observation_is_format_junk():
    row = good()
    row["messages"][2]["content"] += "\nObservation: 72"
    row["steps"][0]["raw_action"] = row["messages"][2]["content"]
    assert "format_junk" in failing(row)


def test_step_limit():
    row = good()
    options = {**DEFAULT_OPTIONS["limits"], "max_steps": 2}
    assert not CHECKS["limits"](row, options)["passed"]
    assert CHECKS["limits"](row, DEFAULT_OPTIONS["limits"])["passed"]


def test_soft_check_lowers_score_but_keeps_the_row():
    config = verify_config({"checks": [{"name": "answer", "hard": False}, {"name": "schema", "hard": True}]})
    row = good()
    row["final_answer"] = "0"
    verified = VerifyStage(config, "h").verify_row(rebuild_messages(row))
    assert verified["passed"] is True and verified["score"] == 0.5


def test_answer_must_be_in_the_unit_the_task_asks_for():
    from pipeline.verify.answers import answers_match

    truth = {"answer": 75.0, "unit": "km", "tolerance": 0.01}
    assert answers_match("75 km", truth)[0] and answers_match("75 kilometers", truth)[0] and answers_match("75", truth)[0]
    assert not answers_match("46.6028 miles", truth)[0]  # the same distance, but not what was asked
    assert not answers_match("75 kg", truth)[0]
    assert not answers_match("75 miles", truth)[0]
    celsius = {"answer": 40.5, "unit": "degC", "tolerance": 0.001}
    assert answers_match("40.5 °C", celsius)[0] and not answers_match("104.9 °F", celsius)[0]


def test_lists_are_compared_as_multisets():
    from pipeline.verify.answers import answers_match

    truth = {"answer": [10957, "Tuesday"]}
    assert answers_match("Tuesday, 10957", truth)[0]
    assert not answers_match("10957", truth)[0]
    assert not answers_match("10957, Tuesday, Monday", truth)[0]
