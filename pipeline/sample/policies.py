"""Policies that drive the agent loop. The program teacher replays a task's solution program through the
real tools (TACO's program-generated CoTA): real actions, real observations, templated thoughts."""

import dataclasses
import re

from pipeline.formats import Action
from pipeline.sample.agent import Episode, Turn
from pipeline.tools.naming import wire_name

_REF = re.compile(r"\{s(\d+)\}")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def fill(template: str, observations: list[str]) -> str:
    """Replace {sN} with the N-th observation (stripped). A reference to a step not yet run is left as is."""
    return _REF.sub(lambda m: observations[int(m.group(1))].strip() if int(m.group(1)) < len(observations) else m.group(0), template)


def fill_arguments(value, observations: list[str]):
    """Fill references inside arguments; a string that is exactly one reference to a number becomes that number."""
    if isinstance(value, dict):
        return {k: fill_arguments(v, observations) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_arguments(v, observations) for v in value]
    if isinstance(value, str):
        filled = fill(value, observations)
        if _REF.fullmatch(value) and _NUMBER.fullmatch(filled):
            number = float(filled)
            return int(number) if number.is_integer() and "." not in filled else number
        return filled
    return value


def planned_action(solution: dict, index: int, seen: list[str], call_id: str) -> Action:
    """Step `index` of a solution program (past its last step: the final answer), its references filled from
    the observations `seen` so far."""
    if index < len(solution["steps"]):
        planned = solution["steps"][index]
        return Action(fill(planned["thought"], seen), tool=planned["tool"], arguments=fill_arguments(planned["arguments"], seen), tool_call_id=call_id)
    thought = fill(solution.get("final_thought") or "I have everything I need.", seen)
    return Action(thought, final_answer=fill(solution["answer"], seen))


def as_turn(fmt, action: Action) -> Turn:
    """The turn of a planned action in format `fmt`, naming its tool as models do (its wire name; CodeAct
    writes the call as code)."""
    action = action if action.is_final else fmt.plan_action(dataclasses.replace(action, tool=wire_name(action.tool)))
    return Turn(fmt.action_message(action), action)


class ProgramPolicy:
    """Turns the task's solution program into actions, one per step, then the final answer."""

    async def next_turn(self, episode: Episode) -> Turn:
        index = len(episode.steps)
        return as_turn(episode.fmt, planned_action(episode.task["solution"], index, episode.observations, f"call_{index}"))
