"""The one agent loop: a policy proposes actions, real tools execute them, observations go back.

`run_episode` is shared by every teacher: the program teacher and the LLM teacher are two policies. Models
name tools by their wire names (pipeline/tools/naming.py); the loop maps them back to the task's qualified
names, which steps record. A function-calling turn may hold several tool calls: each is executed (at the same
time when every tool of the turn allows it, else in order), answered by its own tool message and recorded as
its own step, all pointing at the turn's message. An environment that fails the episode (its own server died
or hung) ends it with the error on the row, noted as a transient failure: the next run retries it.
"""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.formats import Action, Format
from pipeline.llm import transient
from pipeline.tools import TOOLS, Env, EnvironmentLost, Observation, available, run_action
from pipeline.tools.naming import resolve

ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "llm_calls": 0, "cost_usd": 0.0}


@dataclass
class Turn:
    """What a policy returns for one step: the assistant message, its parsed action (None when the reply
    could not be parsed, with `error` saying why) and what it cost."""

    message: dict | None  # None when no reply came (the request failed): the episode ends with `error`
    action: Action | None
    error: str | None = None
    usage: dict = field(default_factory=lambda: dict(ZERO_USAGE))
    raw: str | None = None  # what the model emitted, where the message does not show it (e.g. broken tool calls)
    tokens: dict | None = None  # the reply's token ids and logprobs, where the endpoint captures them (llm/capture.py)


class Policy(Protocol):
    async def next_turn(self, episode: "Episode") -> Turn: ...


@dataclass
class Episode:
    task: dict
    fmt: Format
    tools: list[dict]
    messages: list[dict]
    steps: list[dict] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    final_answer: str | None = None
    error: str | None = None
    usage: dict = field(default_factory=lambda: dict(ZERO_USAGE))
    seconds: float = 0.0
    tokens: list[dict] | None = None  # one entry per assistant message whose reply carried token data
    recording: dict | None = None  # where its recorded tool calls are: {attempt, calls} (environments/recordings.py)


def start_episode(task: dict, fmt: Format, tools: dict | None = None) -> Episode:
    """`tools`: name -> Tool the episode can reach (default: the built-ins)."""
    tools = [(TOOLS if tools is None else tools)[name].spec() for name in task["tools"]]
    messages = [{"role": "system", "content": fmt.system_prompt(tools)}, {"role": "user", "content": task["instruction"]}]
    return Episode(task, fmt, tools, messages)


def _step(index: int, message_index: int, action: Action | None, turn: Turn, seconds: float, fmt: Format, tool_name: str | None = None) -> dict:
    return {
        "index": index,
        "message_index": message_index,
        "tool_call_id": action.tool_call_id if action else None,
        "action_type": "final_answer" if action and action.is_final else fmt.action_type,
        "thought": action.thought if action else None,
        "tool_name": tool_name,
        "tool_arguments": action.arguments_json() if action and not action.is_final else None,
        "raw_action": turn.raw if turn.raw is not None else turn.message.get("content"),
        "observation": None,
        "error": turn.error,
        "step_verdict": None,
        "seconds": round(seconds, 6),
        "completion_tokens": turn.usage.get("completion_tokens", 0),
    }


def add_usage(total: dict, usage: dict) -> None:
    """Sum a reply's usage into the episode's; counts only some endpoints report (cached, reasoning tokens)
    appear once one reply had them."""
    for key, value in usage.items():
        total[key] = total.get(key, 0) + value


async def run_calls(calls: list[Action], fmt: Format, env: Env, allowed: list[str]) -> list[tuple[str | None, Observation, float]]:
    """(qualified tool name, observation, seconds) of each call of one turn. In a worker thread: a sandboxed cell
    or a slow server must not stall the other episodes' requests; all at once when every tool allows it."""
    names = [call.tool if fmt.action_type == "code" else resolve(call.tool, allowed) for call in calls]
    tools = available(env)

    def one(name, call):
        began = time.perf_counter()
        observation = run_action(fmt.action_type, name, call.arguments, env, allowed)
        return name, observation, time.perf_counter() - began

    if len(calls) > 1 and all(name in allowed and name in tools and tools[name].concurrent for name in names):
        return list(await asyncio.gather(*(asyncio.to_thread(one, name, call) for name, call in zip(names, calls))))
    return [await asyncio.to_thread(one, name, call) for name, call in zip(names, calls)]


async def run_episode(task: dict, policy: Policy, fmt: Format, env: Env, max_steps: int, user=None,
                      start: Episode | None = None) -> Episode:
    """Ask the policy for actions until a final answer, an unparseable reply or `max_steps` more turns. With a
    simulated `user` (pipeline/sample/user_sim.py) a final answer is a message to the user, and the episode
    goes on until the user is satisfied. `start` continues an episode from a prefix whose actions `env` has
    already executed (pipeline/sample/branch.py) instead of starting a new one."""
    episode = start if start is not None else start_episode(task, fmt, env.tools)
    began = time.perf_counter()
    if user is not None and not await user.open(episode):
        return episode
    for _ in range(max_steps):
        index = len(episode.steps)
        t0 = time.perf_counter()
        turn = await policy.next_turn(episode)
        add_usage(episode.usage, turn.usage)
        if turn.message is None:
            episode.error = f"step {index}: {turn.error}"
            break
        episode.messages.append(turn.message)
        if turn.tokens is not None:
            episode.tokens = (episode.tokens or []) + [{"message_index": len(episode.messages) - 1, **turn.tokens}]
        if turn.action is None or turn.action.is_final:
            step = _step(index, len(episode.messages) - 1, turn.action, turn, time.perf_counter() - t0, fmt)
            episode.steps.append(step)
            if turn.action is None:
                episode.error = f"step {index}: {turn.error}"
                break
            if user is not None and await user.continues(episode, step):
                continue
            if episode.error is None:
                episode.final_answer = turn.action.final_answer
            break
        calls = turn.action.calls()
        message_index = len(episode.messages) - 1
        asked = time.perf_counter() - t0
        try:
            results = await run_calls(calls, fmt, env, task["tools"])
        except EnvironmentLost as exc:
            episode.messages.pop()  # the turn's calls got no observations: the row ends before them
            episode.error = f"step {index}: {exc}"
            transient.note("environment")
            break
        for position, (call, (name, observation, seconds)) in enumerate(zip(calls, results)):
            step = _step(index + position, message_index, call, turn, asked + seconds, fmt, name)
            if position:  # the turn's thought and tokens belong to its first call
                step["thought"], step["completion_tokens"] = None, 0
            else:
                step["thought"] = turn.action.thought
            step["observation"] = observation.content
            step["error"] = observation.content if observation.error else None
            episode.steps.append(step)
            episode.observations.append(observation.content)
        episode.messages += [fmt.observation_message(step["observation"], call) for step, call in zip(episode.steps[index:], calls)]
    else:
        episode.error = f"no final answer within max_steps={max_steps}"
    episode.seconds = time.perf_counter() - began
    return episode
