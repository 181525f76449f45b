"""Step-wise candidate sampling (SPORT) as a sampling policy: a teacher with `step_candidates: {count: M}`
asks for M candidate actions at every step, executes each in its own copy of the environment (a fork of the
episode, pipeline/sample/branch.py), scores them and continues from the best. The rejected candidates are kept
with their scores in `meta.step_candidates`, which the dpo_step view turns into step-level preference pairs.

Scorers:
- `check`: the program check of the step: a tool call scores 1 when it executed without an error observation
  (an unknown tool or invalid arguments are error observations), a final answer when the episode it ends passes
  the program checks (`verify.checks`), an unparseable reply 0.
- `rollout`: the candidate's value: the share of `rollouts` continuations after it (the same teacher, its own
  sample keys) whose episodes pass the program checks.
Ties go to the first candidate, so a re-run picks the same one; every request has its own sample key (task,
teacher, format, sample, step, candidate, rollout), so a re-run makes none.
"""

import asyncio

from pipeline.sample.agent import ZERO_USAGE, Episode, Turn, add_usage, run_episode
from pipeline.sample.branch import BranchError, Watched, fork

MAX_DETAIL_CHARS = 200


class Scripted:
    """Plays `first`, then asks `rest` (None: nothing after the first turn)."""

    def __init__(self, first: Turn, rest=None):
        self.first, self.rest = first, rest

    async def next_turn(self, episode: Episode) -> Turn:
        if self.first is not None:
            turn, self.first = self.first, None
            return turn
        return await self.rest.next_turn(episode)


class RequestFailed(Exception):
    """A request made to score a candidate failed for good: the step cannot be decided this run."""


class CandidatePolicy:
    """`make_policy(suffix, seed_offset)` -> the teacher's LLM policy with `suffix` added to its sample key;
    `new_env()` -> a fresh environment of the task (an async context); `outcome(episode, env)` -> whether the finished episode
    passes the program checks (synchronous: it runs in a thread); `max_steps` the teacher's."""

    def __init__(self, spec: dict, make_policy, new_env, outcome, max_steps: int):
        self.spec, self.make_policy, self.new_env, self.outcome, self.max_steps = spec, make_policy, new_env, outcome, max_steps
        self.record: list[dict] = []

    async def next_turn(self, episode: Episode) -> Turn:
        at = len(episode.steps)
        turns = await asyncio.gather(*(self.make_policy(["candidate", at, c], c).next_turn(episode) for c in range(self.spec["count"])))
        failed = next((t for t in turns if t.message is None), None)
        if failed is not None:  # a request failed for good: the episode ends as with any failed request
            return failed
        try:
            scored = await asyncio.gather(*(self.score(episode, turn, c) for c, turn in enumerate(turns)))
        except RequestFailed as exc:
            return Turn(None, None, error=f"LLM request failed while scoring candidates: {exc}")
        best = max(range(len(turns)), key=lambda c: (scored[c][0], -c))
        for c, turn in enumerate(turns):
            if c != best:
                add_usage(episode.usage, turn.usage)  # the loop adds the chosen turn's
            add_usage(episode.usage, scored[c][2])
        self.record.append({"step": at, "chosen": best, "scorer": self.spec["scorer"],
                            "candidates": [{"message": t.message, "executed": t.action is not None, "score": s, "detail": d[:MAX_DETAIL_CHARS]}
                                           for t, (s, d, _) in zip(turns, scored)]})
        return turns[best]

    async def score(self, episode: Episode, turn: Turn, c: int) -> tuple[float, str, dict]:
        """(score, why, usage of the scoring) of candidate `turn`."""
        usage = dict(ZERO_USAGE)
        if turn.action is None:
            return 0.0, turn.error or "unparseable", usage
        if self.spec["scorer"] == "check" or turn.action.is_final:
            passed, detail, _ = await self.play(episode, turn, None)
            return float(passed), detail, usage
        outcomes = []
        for r in range(self.spec["rollouts"]):
            continuation = Watched(self.make_policy(["candidate", len(episode.steps), c, "rollout", r], c))
            passed, detail, spent = await self.play(episode, turn, continuation)
            if continuation.request_failed:
                raise RequestFailed(detail)
            add_usage(usage, spent)
            outcomes.append(passed)
        return sum(outcomes) / len(outcomes), f"{sum(outcomes)} of {len(outcomes)} continuations passed", usage

    async def play(self, episode: Episode, turn: Turn, rest) -> tuple[bool, str, dict]:
        """Run `turn` in a fork of `episode` (then `rest` to the end, when given): (passed, detail, usage of `rest`)."""
        async with self.new_env() as env:
            try:
                start = await asyncio.to_thread(fork, episode, env)
            except BranchError as exc:
                return False, f"the environment could not be rebuilt: {exc}", dict(ZERO_USAGE)
            steps = 1 if rest is None else max(1, self.max_steps - len(episode.steps))
            played = await run_episode(episode.task, Scripted(turn, rest), episode.fmt, env, steps, start=start)
            step = played.steps[len(episode.steps)]
            spent = {key: played.usage[key] - turn.usage.get(key, 0) for key in ZERO_USAGE}
            if rest is None and not turn.action.is_final:
                return step["error"] is None, step["error"] or "executed without an error", spent
            if played.error and rest is not None and rest.request_failed:
                return False, played.error, spent
            if env.recording is not None:  # environment tools: the replay check reads the fork's calls
                played.recording = env.recording.meta()
            passed = await asyncio.to_thread(self.outcome, played, env)
            return passed, "the episode passes the program checks" if passed else "the episode fails the program checks", spent
