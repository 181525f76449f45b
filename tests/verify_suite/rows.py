"""Rows of the labeled suite: program-teacher rows of every generator in every format, and the two ways a
corruption keeps a row coherent so that only its defect remains: `render` (messages rebuilt from the steps)
and `execute` (the steps' actions re-run in a fresh environment, so their observations are the real ones)."""

import asyncio
import copy
import json
from functools import lru_cache

from pipeline.formats import FORMATS, Action
from pipeline.sample.agent import run_episode
from pipeline.sample.policies import ProgramPolicy
from pipeline.sample.stage import SampleStage
from pipeline.synthesize.generators import GENERATORS
from pipeline.tools import STATEFUL, Env, final_state, run_action
from pipeline.verify.replay import allowed_tools
from tests.helpers import TEACHER, make_task

GENERATOR_NAMES = tuple(sorted(GENERATORS))
FORMAT_NAMES = ("react", "cota", "function_calling", "codeact")
SEEDS = (1, 2, 3)


@lru_cache(maxsize=None)
def _base(generator: str, seed: int, fmt: str) -> dict:
    """The row as the sample stage writes it (with the final state of a stateful environment)."""
    task = make_task(generator, seed)
    with Env(task["environment"]) as env:
        episode = asyncio.run(run_episode(task, ProgramPolicy(), FORMATS[fmt], env, 8))
        state = final_state(env)
    stage = SampleStage({"sample": {"teachers": [TEACHER]}, "run": {"seed": 0}, "endpoints": {}}, "suite")
    return stage.finish_row(task, TEACHER, fmt, 0, episode, state)


def base(generator: str, seed: int, fmt: str) -> dict:
    """A fresh copy of a program-teacher row (cached: corruptions never touch the cached one)."""
    return copy.deepcopy(_base(generator, seed, fmt))


def action_of(row: dict, step: dict) -> Action:
    if step["action_type"] == "final_answer":
        return Action(step["thought"], final_answer=row["final_answer"])
    return Action(step["thought"], tool=step["tool_name"], arguments=json.loads(step["tool_arguments"]),
                  tool_call_id=step["tool_call_id"])


def render(row: dict) -> dict:
    """Rebuild messages (after the system and user turns), raw actions, indices and train_mask from the steps."""
    fmt = FORMATS[row["format"]]
    messages = row["messages"][:2]
    for i, step in enumerate(row["steps"]):
        action = action_of(row, step)
        message = fmt.action_message(action)
        messages.append(message)
        step.update(index=i, message_index=len(messages) - 1, raw_action=message.get("content"))
        if step["observation"] is not None:
            messages.append(fmt.observation_message(step["observation"], action))
    row["messages"] = messages
    row["train_mask"] = [m["role"] == "assistant" for m in messages]
    return row


def execute(row: dict) -> dict:
    """Re-run every action in a fresh environment: observations, errors and the final state become the real
    ones for the (possibly edited) actions; then render."""
    with Env(row["environment"]) as env:
        for step in row["steps"]:
            if step["action_type"] == "final_answer":
                continue
            observation = run_action(step["action_type"], step["tool_name"], json.loads(step["tool_arguments"]), env, allowed_tools(row))
            step["observation"] = observation.content
            step["error"] = observation.content if observation.error else None
        if any(key in env.spec for key in STATEFUL):
            row["meta"]["final_state"] = final_state(env)
    return render(row)


def set_final_answer(row: dict, answer: str) -> dict:
    row["final_answer"] = answer
    return render(row)


def tool_steps(row: dict) -> list[dict]:
    return [s for s in row["steps"] if s["action_type"] != "final_answer"]


def code_of(call: str) -> dict:
    return {"code": call}


def answer_kind(row: dict) -> str:
    """'number', 'text' or 'list', after the ground truth's answer."""
    answer = row["ground_truth"]["answer"]
    if isinstance(answer, list):
        return "list"
    return "number" if isinstance(answer, (int, float)) and not isinstance(answer, bool) else "text"
