"""Self-reflected trajectories (STeP): an erroneous step kept with its real observation, then a reflection
and the corrected continuation to the right answer. The erroneous assistant message is masked out of
training (`train_mask` false): the model learns to notice and repair a mistake, not to make it.

Two sources of mistakes:
- perturbed: a program-teacher trajectory with one step changed (`wrong_argument`: one argument value off by
  a digit or a character; `wrong_tool`: another of the task's tools), executed for a real observation; the
  reflection is templated from what went wrong.
- llm_failure: an LLM sample whose step failed with a tool error, when its steps before it are the solution
  program's: those steps and the failed one are kept verbatim, the reflection is written by the teacher
  (chat endpoints; templated otherwise), and the solution program continues from the failed step.
A spliced episode is kept only if it recovers: no error, the right answer, the expected final state, and an
erroneous observation that differs from the corrected one. `meta.reflection` records what was injected where.
"""

import json
import random

from pipeline.jsonutil import canonical_json, content_hash
from pipeline.llm.client import LLMError
from pipeline.sample.agent import Episode, Turn
from pipeline.sample.policies import as_turn, fill_arguments, planned_action
from pipeline.verify.answers import answers_match

COUNTS = ("selected", "injected", "no_recovery", "failures_seen", "failures_spliced", "failures_unspliceable")
REFLECT_PROMPT = ("Your last action did not work. In one or two sentences, reflect: say what went wrong and what you "
                  "will do instead. Do not call a tool.")
MAX_REFLECTION_CHARS = 500
SHORT_VALUE_CHARS = 40
OFF = {"fraction": 0.0, "errors": [], "from_failures": False, "max_tries": 0}  # sample.reflection's defaults


def perturb(value):
    """A plausible slip: a number off by one, the last digit of a string changed, else a dropped character;
    None when the value has nothing to change."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        digits = [i for i, c in enumerate(value) if c.isdigit()]
        if digits:
            i = digits[-1]
            return value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1:]
        return value[0] + value[2:] if len(value) > 2 else None
    if isinstance(value, list) and value and perturb(value[0]) is not None:
        return [perturb(value[0]), *value[1:]]
    return None


def first_line(text: str, limit: int = 160) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


def difference(wrong, right) -> tuple[str, str]:
    """How two values differ, shown briefly: whole when short, else the first words that differ."""
    shown = lambda value: json.dumps(value, ensure_ascii=False)
    if not (isinstance(wrong, str) and isinstance(right, str)) or max(len(wrong), len(right)) <= SHORT_VALUE_CHARS:
        return shown(wrong), shown(right)
    pairs = list(zip(wrong.split(), right.split()))
    at = next((i for i, (a, b) in enumerate(pairs) if a != b), 0)
    return shown(pairs[at][0]), shown(pairs[at][1])


def templated_reflection(mistake: dict, observation: str) -> str:
    said = f" The tool said: {first_line(observation).rstrip('.')}." if observation.startswith("Error") else ""
    if mistake["kind"] == "wrong_tool":
        return f"That was the wrong tool: I called {mistake['wrong_tool']}, but this step needs {mistake['tool']}.{said}"
    if mistake["kind"] == "wrong_argument":
        wrong, right = difference(mistake["wrong"], mistake["right"])
        return (f"That was a mistake: in {mistake['argument']} I wrote {wrong} where it should be {right}.{said} "
                f"I call {mistake['tool']} again with the right value.")
    return f"That call failed ({first_line(observation).rstrip('.')}). I go back to the plan and do this step properly."


class ReflectionPolicy:
    """Plays `recorded` turns (an LLM sample up to its failed step) or the solution program up to step `at`,
    then the erroneous turn, then the solution from step `at` on, its first thought prefixed with the reflection."""

    def __init__(self, at: int, mistake: dict, recorded: list[Turn] = (), reflection: str | None = None):
        self.at, self.mistake, self.recorded, self.reflection = at, mistake, list(recorded), reflection

    async def next_turn(self, episode: Episode) -> Turn:
        i, at, solution = len(episode.steps), self.at, episode.task["solution"]
        if i < at or (i == at and self.recorded):
            return self.recorded[i] if self.recorded else as_turn(episode.fmt, planned_action(solution, i, episode.observations, f"call_{i}"))
        if i == at:
            return as_turn(episode.fmt, self.wrong_action(planned_action(solution, i, episode.observations, f"call_{i}")))
        seen = episode.observations[:at] + episode.observations[at + 1:]
        action = planned_action(solution, i - 1, seen, f"call_{i}")
        if i == at + 1:
            reflection = self.reflection or templated_reflection(self.mistake, episode.steps[at]["observation"] or "")
            self.mistake["reflection"] = reflection
            action.thought = f"{reflection} {action.thought or ''}".strip()
        return as_turn(episode.fmt, action)

    def wrong_action(self, action):
        m = self.mistake
        m["tool"], m["right_arguments"] = action.tool, action.arguments
        if m["kind"] == "wrong_tool":
            action.tool = m["wrong_tool"]
        else:
            m["right"] = action.arguments[m["argument"]]
            m["wrong"] = perturb(m["right"])
            action.arguments = {**action.arguments, m["argument"]: m["wrong"]}
        return action


def recovered(episode: Episode, state: dict, task: dict, at: int) -> bool:
    if episode.error or not answers_match(episode.final_answer, task["ground_truth"])[0]:
        return False
    expected = task["ground_truth"].get("final_state")
    if expected is not None and canonical_json(state) != canonical_json(expected):
        return False
    wrong, right = episode.steps[at], episode.steps[at + 1]
    return wrong["observation"] != right["observation"]


class Reflector:
    """Decides which trajectories get a reflected copy, builds it, and counts what happened."""

    def __init__(self, settings: dict, seed: int):
        self.settings, self.seed = settings, seed
        self.counts = {key: 0 for key in COUNTS}

    def eligible(self, task: dict) -> bool:
        return bool(task["solution"] and task["solution"]["steps"] and task["ground_truth"])

    def selected(self, task: dict, key: list) -> bool:
        draw = int(content_hash(self.seed, task["id"], *key, "reflection"), 16) / 16**16
        return self.eligible(task) and draw < self.settings["fraction"]

    def candidates(self, task: dict, key: list) -> list[dict]:
        found = []
        for at, step in enumerate(task["solution"]["steps"]):
            if "wrong_argument" in self.settings["errors"]:
                found += [{"kind": "wrong_argument", "step": at, "argument": name} for name, value in sorted(step["arguments"].items())
                          if perturb(fill_arguments(value, ["0"] * at)) is not None]
            if "wrong_tool" in self.settings["errors"]:
                found += [{"kind": "wrong_tool", "step": at, "wrong_tool": t} for t in task["tools"] if t != step["tool"]]
        random.Random(int(content_hash(self.seed, task["id"], *key, "mistakes"), 16)).shuffle(found)
        return found[: self.settings["max_tries"]]

    async def perturbed(self, run, task: dict, key: list) -> tuple[Episode, dict, dict] | None:
        """(episode, final state, meta.reflection) of the first injected mistake the episode recovers from.
        `run(policy)` runs an episode of the job in a fresh environment and returns (episode, final state)."""
        self.counts["selected"] += 1
        for mistake in self.candidates(task, key):
            episode, state = await run(ReflectionPolicy(mistake["step"], mistake))
            if recovered(episode, state, task, mistake["step"]):
                self.counts["injected"] += 1
                return episode, state, self.meta(episode, mistake)
        self.counts["no_recovery"] += 1
        return None

    async def from_failure(self, run, task: dict, failed: Episode, client, sample_key: list) -> tuple[Episode, dict, dict] | None:
        """The failed LLM sample spliced with a reflection and the solution program, if it recovers."""
        at = next((s["index"] for s in failed.steps if s["tool_name"] and s["error"]), None)
        if at is None or not self.eligible(task):
            return None
        self.counts["failures_seen"] += 1
        if not self.follows_solution(failed, task, at):
            self.counts["failures_unspliceable"] += 1
            return None
        recorded = [Turn(failed.messages[s["message_index"]], failed.fmt.parse_message(failed.messages[s["message_index"]]))
                    for s in failed.steps[: at + 1]]
        step = failed.steps[at]
        mistake = {"kind": "tool_error", "step": at, "tool": step["tool_name"], "wrong_arguments": json.loads(step["tool_arguments"])}
        reflection = await self.written_reflection(client, failed, step, sample_key)
        episode, state = await run(ReflectionPolicy(at, mistake, recorded, reflection))
        if not recovered(episode, state, task, at):
            self.counts["failures_unspliceable"] += 1
            return None
        self.counts["failures_spliced"] += 1
        return episode, state, self.meta(episode, mistake, by_model=reflection is not None)

    @staticmethod
    def follows_solution(failed: Episode, task: dict, at: int) -> bool:
        """Whether the sample's steps before `at` are the solution program's (same tools, same arguments) and
        the program has a step `at` to continue with."""
        steps = task["solution"]["steps"]
        if at >= len(steps):
            return False
        for i, step in enumerate(failed.steps[:at]):
            arguments = fill_arguments(steps[i]["arguments"], failed.observations[:i])
            if step["tool_name"] != steps[i]["tool"] or step["tool_arguments"] != canonical_json(arguments):
                return False
        return True

    async def written_reflection(self, client, failed: Episode, step: dict, sample_key: list) -> str | None:
        """The teacher's own reflection on its failed step (chat endpoints), or None to use the template."""
        if client is None or client.mode != "chat":
            return None
        messages = failed.messages[: step["message_index"] + 2] + [{"role": "user", "content": REFLECT_PROMPT}]
        try:
            reply = await client.chat(messages, sample_key=sample_key + ["reflection"], temperature=0.0, max_tokens=160)
        except LLMError:
            return None
        text = " ".join((reply.text or "").split())
        return text[:MAX_REFLECTION_CHARS] if text and not reply.tool_calls else None

    @staticmethod
    def meta(episode: Episode, mistake: dict, by_model: bool = False) -> dict:
        at = mistake["step"]
        return {**mistake, "message_index": episode.steps[at]["message_index"],
                "observation": first_line(episode.steps[at]["observation"], 300), "reflection_by": "model" if by_model else "template"}
