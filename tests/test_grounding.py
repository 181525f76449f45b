"""What a trajectory states must come from what it saw (grounding, consistency), and what it was given and
trains on must be the task's (context, mask)."""

import pytest

from pipeline.verify.context import context_problem, mask_problem
from pipeline.verify.grounding import consistency_problem, grounding_problem
from pipeline.verify.answers import answers_match
from tests.verify_suite.rows import base, render, set_final_answer


def _calculator_row() -> dict:
    return base("arithmetic", 1, "react")  # 4 calculator steps; the last observation is the answer, 29.23


def test_a_thought_that_misquotes_the_calculator_is_inconsistent():
    row = _calculator_row()
    row["steps"][-1]["thought"] = "The calculator returned 4, so the answer is 29.23."
    assert "returned 4" in consistency_problem(render(row))
    row["steps"][-1]["thought"] = "The calculator returned 29.23, so that is the change."
    assert consistency_problem(render(row)) is None


@pytest.mark.parametrize("phrase", ["the tool gave 17", "I got 17 from the calculator", "the result is 17", "the output was 17"])
def test_misquotes_in_several_phrasings_are_caught(phrase):
    row = _calculator_row()
    row["steps"][2]["thought"] = f"Since {phrase}, I add them."
    assert consistency_problem(render(row))


def test_a_quote_of_a_later_observation_is_not_support():
    row = _calculator_row()
    row["steps"][0]["thought"] = "The calculator returned 29.23 earlier."  # before any call ran
    assert consistency_problem(render(row))


def test_counting_results_is_not_quoting_a_value():
    row = base("doc_search", 1, "react")
    row["steps"][1]["thought"] = "The search returned 5 results; the first is the one."
    assert consistency_problem(render(row)) is None


def test_answering_without_acting_is_caught_even_when_right():
    row = _calculator_row()
    row["steps"] = row["steps"][-1:]
    problem = grounding_problem(render(row))
    assert problem.startswith("answered without acting")
    assert answers_match(row["final_answer"], row["ground_truth"])[0]  # the answer itself is right: only grounding can tell


def test_an_answer_copied_from_the_instruction_needs_no_action():
    row = next(r for r in (base("store_refunds", s, "react") for s in range(1, 30)) if r["meta"]["template"] == "change_address")
    row["steps"] = row["steps"][-1:]
    assert grounding_problem(render(row)) is None  # the state check, not grounding, rejects this one


def test_answer_values_must_be_observed_rounding_allowed():
    row = base("units_dates", 1, "react")  # observed "8.81849 pound"
    assert grounding_problem(set_final_answer(row, "about 8.82 pounds")) is None
    assert "9.5" in grounding_problem(set_final_answer(base("units_dates", 1, "react"), "9.5 pounds"))
    assert "Zanzibar" in grounding_problem(set_final_answer(base("kb_multihop", 1, "react"), "It is Zanzibar."))


@pytest.mark.parametrize("fmt", ["react", "cota", "function_calling", "codeact"])
def test_context_is_the_tasks(fmt):
    row = base("kb_multihop", 1, fmt)
    assert context_problem(row) is None
    other = base("sql_table", 1, "cota" if fmt == "function_calling" else fmt)
    row["messages"][0] = other["messages"][0]
    assert "system prompt" in context_problem(row)


def test_a_tools_column_from_another_task_is_caught():
    row = base("arithmetic", 1, "function_calling")
    row["tools"] = base("sql_table", 1, "function_calling")["tools"]
    assert "tools column" in context_problem(row)


def test_a_declared_reflection_may_be_masked_but_nothing_else():
    row = base("arithmetic", 1, "react")
    row["train_mask"][2] = False
    assert "without the row declaring why" in mask_problem(row)
    row["meta"]["reflection"] = {"message_index": 2}
    assert mask_problem(row) is None
    row["train_mask"][2], row["train_mask"][3] = True, True
    assert mask_problem(row)
