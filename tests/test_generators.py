import asyncio
import random

import pytest

from pipeline import schema
from pipeline.formats import FORMATS
from pipeline.sample.agent import run_episode
from pipeline.sample.policies import ProgramPolicy
from pipeline.synthesize.generators import GENERATORS
from pipeline.tools import TOOLS, Env
from pipeline.verify.answers import answers_match
from tests.helpers import make_task

SEEDS = range(40)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_gives_the_same_task(name):
    gen = GENERATORS[name]
    assert gen.make(random.Random(7), 1, 10) == gen.make(random.Random(7), 1, 10)
    assert gen.make(random.Random(7), 1, 10) != gen.make(random.Random(8), 1, 10)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_tasks_are_schema_valid_and_list_their_tools(name):
    for seed in SEEDS:
        task = make_task(name, seed)
        assert schema.errors("task", task) == []
        used = {s["tool"] for s in task["solution"]["steps"]}
        assert used <= set(task["tools"]) <= set(TOOLS)
        assert set(task["tools"]) <= set(GENERATORS[name].tools)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_solution_program_reaches_the_ground_truth_through_the_real_tools(name):
    for seed in SEEDS:
        task = make_task(name, seed)
        with Env(task["environment"]) as env:
            episode = asyncio.run(run_episode(task, ProgramPolicy(), FORMATS["cota"], env, 10))
        assert episode.error is None, (seed, episode.error)
        assert all(step["error"] is None for step in episode.steps), (seed, episode.steps)
        ok, detail = answers_match(episode.final_answer, task["ground_truth"])
        assert ok, (seed, task["instruction"], detail)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_difficulty_is_the_number_of_solution_steps_and_respects_the_range(name):
    gen = GENERATORS[name]
    for seed in SEEDS:
        task = gen.make(random.Random(seed), 2, 2)
        assert task["difficulty"] == 2 == len(task["solution"]["steps"])


def test_impossible_difficulty_range_is_reported():
    with pytest.raises(ValueError, match=r"no tasks with difficulty in \[9, 10\]"):
        GENERATORS["arithmetic"].make(random.Random(0), 9, 10)


def test_sql_ground_truth_is_computed_from_the_data_not_from_the_tool():
    """Truncating the table after generation must change most answers: the truth was computed from the rows."""
    changed = 0
    for seed in range(20):
        task = make_task("sql_table", seed)
        lines = task["environment"]["sqlite_setup"].splitlines()
        task["environment"]["sqlite_setup"] = "\n".join(lines[:4])  # CREATE TABLE + the first three rows
        with Env(task["environment"]) as env:
            episode = asyncio.run(run_episode(task, ProgramPolicy(), FORMATS["cota"], env, 10))
        changed += not answers_match(episode.final_answer, task["ground_truth"])[0]
    assert changed >= 15
