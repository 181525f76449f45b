"""Branching an episode from a prefix: the one mechanism behind every step-level feature (Monte Carlo step
values in verify/step_values.py, step-wise candidate sampling in sample/sport.py).

    with env_factory() as env:
        episode = branch(row, upto=2, env=env)           # steps 0 and 1 kept, their actions replayed into env
        continued = await run_episode(task_of(row), policy, episode.fmt, env, max_steps, start=episode)

The prefix is never sampled again: its messages and steps are copied from the trajectory, and its actions are
executed once more, in order, in a fresh environment, so the environment is in the state the trajectory left it
in after step `upto - 1` (a database row deleted, a sandbox variable set). Each replayed observation must equal
the recorded one; one that differs means the environment cannot be rebuilt, and the branch is refused.

`fork` does the same for an episode still running (sample/sport.py executes each candidate action in a fork).

The prefix replays live, environment tools included: a continuation calls tools the trajectory never called, in
the state the prefix left, so a recording of the trajectory's calls (pipeline/environments/recordings.py) cannot
stand in for the environment. The stage gives a live environment from its toolbox (an MCP server's or a module's
tools re-executed in a fresh server), and an observation that differs from the recorded one is drift: the
branch is refused.
"""

import copy
import json

from pipeline.formats import FORMATS
from pipeline.sample.agent import Episode
from pipeline.tools import available, run_action

# What the stages add to a row's meta beyond its task's: not part of the task a continuation starts from.
ROW_META = ("tools", "teacher", "sample_index", "task_source", "final_state", "sandbox", "conversation", "reflection",
            "parent_id", "feedback_round", "feedback", "first_bad_step", "step_judge", "pass_rate", "step_values",
            "step_candidates", "adaptive", "transient", "schema_repair")


class BranchError(Exception):
    """The environment cannot be rebuilt at the branch point (a replayed observation differs, bad arguments)."""


class Watched:
    """A policy that notes whether one of its requests failed for good: a continuation cut short by the
    endpoint (timeout, 5xx after retries) is no evidence about the step it continues."""

    def __init__(self, policy):
        self.policy, self.request_failed = policy, False

    async def next_turn(self, episode: Episode):
        turn = await self.policy.next_turn(episode)
        self.request_failed |= turn.message is None
        return turn


def executed(step: dict) -> bool:
    """Whether a step's action was carried out: a parsed tool call or code (run, maybe to an error observation)
    or a final answer; an unparseable reply was not."""
    return step["action_type"] == "final_answer" or step["tool_name"] is not None


def tool_names(row: dict) -> list[str]:
    return list((row.get("meta") or {}).get("tools") or [t["function"]["name"] for t in row.get("tools") or []])


def task_of(row: dict) -> dict:
    """The task a trajectory row was sampled from, as the agent loop and the sample stage take it (rows do not
    keep the solution program: a continuation is an LLM teacher's)."""
    meta = row.get("meta") or {}
    return {"id": row["task_id"], "domain": row["domain"], "source": meta.get("task_source", "seed:unknown"),
            "instruction": row["instruction"], "tools": tool_names(row), "environment": row.get("environment") or {},
            "ground_truth": row.get("ground_truth"), "solution": None, "difficulty": row.get("difficulty") or 1,
            "meta": {k: v for k, v in meta.items() if k not in ROW_META}}


def branch_points(row: dict) -> list[int]:
    """The prefix lengths a trajectory can be branched at: 0 .. len(steps), except inside one assistant message
    (several tool calls of one turn share its message). A conversation with a simulated user is not branched:
    its user turns would have to be simulated again."""
    if "conversation" in (row.get("meta") or {}):
        return []
    steps = row["steps"]
    return [k for k in range(len(steps) + 1) if k in (0, len(steps)) or steps[k]["message_index"] != steps[k - 1]["message_index"]]


def prefix_messages(row: dict, upto: int) -> list[dict]:
    """The messages before step `upto`'s assistant message (all of them for upto = len(steps))."""
    steps = row["steps"]
    end = steps[upto]["message_index"] if upto < len(steps) else len(row["messages"])
    return copy.deepcopy(row["messages"][:end])


def replay_steps(steps: list[dict], env, allowed: list[str]) -> list[str]:
    """Execute the actions of `steps` again, in order, in `env`; their observations (which must be the
    recorded ones, else BranchError)."""
    observations = []
    for step in steps:
        if step["tool_name"] is None or step["action_type"] == "final_answer":
            continue  # an unparseable reply executed nothing
        try:
            arguments = json.loads(step["tool_arguments"] or "null")
        except json.JSONDecodeError:
            raise BranchError(f"step {step['index']}: tool_arguments is not JSON") from None
        replayed = run_action(step["action_type"], step["tool_name"], arguments, env, allowed).content
        if replayed != step["observation"]:
            raise BranchError(f"step {step['index']}: replayed observation differs from the recorded one")
        observations.append(replayed)
    return observations


def branch(row: dict, upto: int, env) -> Episode:
    """The episode of `row` holding its first `upto` steps, their actions replayed into the fresh `env`;
    raises BranchError when the environment does not come back as recorded."""
    if upto not in branch_points(row):
        raise BranchError(f"cannot branch at step {upto} (not a message boundary, or a conversation)")
    allowed = tool_names(row)
    steps = copy.deepcopy(row["steps"][:upto])
    observations = replay_steps(steps, env, allowed)
    reachable = available(env)
    tools = [reachable[name].spec() for name in allowed if name in reachable]
    return Episode(task_of(row), FORMATS[row["format"]], tools, prefix_messages(row, upto), steps, observations)


def fork(episode: Episode, env) -> Episode:
    """A copy of an episode in progress whose actions are replayed into the fresh `env`: the same state, its
    own environment (step-wise candidate sampling executes each candidate in such a copy)."""
    steps = copy.deepcopy(episode.steps)
    observations = replay_steps(steps, env, episode.task["tools"])
    return Episode(episode.task, episode.fmt, episode.tools, copy.deepcopy(episode.messages), steps, observations)
