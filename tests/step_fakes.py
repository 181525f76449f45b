"""Step-level test material: a fake teacher that follows each task's solution program from whatever it has
observed (so a continuation succeeds or fails deterministically by its prefix) and can be made to slip, and
program trajectories with a wrong step injected by the reflection machinery (no recovery after it)."""

import json
from pathlib import Path

from pipeline.sample.agent import Episode, run_episode
from pipeline.sample.policies import as_turn, planned_action
from pipeline.sample.reflect import ReflectionPolicy, perturb
from tests.solution_teacher import SolutionTeacher


def follower(run_dir: Path, slips=lambda body: False, broken: bool = False):
    """The solution teacher (tests/solution_teacher.py: the solution program's next step, filled from the
    observations in the request), except that when `slips(body)` it writes a plausible wrong value instead (the
    call still executes, the answer comes out wrong) or, `broken`, a value the tool rejects; its final answer is
    then 0."""
    teacher = SolutionTeacher(run_dir)

    def respond(path, body):
        reply = teacher(path, body)
        if not slips(body):
            return reply
        if not reply.get("tool_calls"):
            return {"content": "0"}
        call = reply["tool_calls"][0]
        arguments = json.loads(call["arguments"])
        name = sorted(arguments)[0]
        arguments[name] = "x" if broken else perturb(arguments[name])
        return {**reply, "tool_calls": [{**call, "arguments": json.dumps(arguments)}]}

    return respond


def even_seed(body) -> bool:
    """For `follower(..., slips=even_seed)`: candidate 0 of a step (seed + 0) slips, candidate 1 does not."""
    return body.get("seed", 0) % 2 == 0


class Slipping:
    """The program teacher with one wrong argument at step `at` (reflection's `wrong_argument` mistake), then
    the program again, filled from the wrong observation: the slip carries through to the answer."""

    def __init__(self, at: int, argument: str):
        self.at, self.mistake = at, {"kind": "wrong_argument", "step": at, "argument": argument}

    async def next_turn(self, episode: Episode):
        i = len(episode.steps)
        action = planned_action(episode.task["solution"], i, episode.observations, f"call_{i}")
        if i == self.at:
            action = ReflectionPolicy(self.at, self.mistake).wrong_action(action)
        return as_turn(episode.fmt, action)


async def slipped_episode(task: dict, fmt, env, at: int) -> Episode:
    argument = sorted(task["solution"]["steps"][at]["arguments"])[0]
    return await run_episode(task, Slipping(at, argument), fmt, env, 8)
