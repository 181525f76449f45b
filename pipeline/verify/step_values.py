"""Monte Carlo step values (`verify.step_values`): how likely a trajectory is to still succeed after each step.

For step k of a selected trajectory, the episode is branched after that step (pipeline/sample/branch.py: its
prefix replayed into a fresh environment) and the rollout teacher continues it `rollouts_per_step` times; each
continuation is verified with the program checks. The step's value is the share that passed (IPR's and the
Q-value work's step reward), written as its step verdict

    steps[k].step_verdict = {label: good|bad, score: value, judge: "rollouts:<model>", rollouts: N}

with label bad when the value is <= `threshold`. A final answer's value is the trajectory's own outcome
(`rollouts` 0), an unparseable reply's is 0 (nothing was executed). `meta.step_values` keeps the provenance
(teacher, N, seed), the first error step (the first valued step whose value is <= threshold), what the
rollouts cost, and the branches: the first action of each continuation with its outcome, an alternative to the
trajectory's own next action from the same prefix, which the dpo_step view pairs with it.

A continuation whose request failed (timeout, 5xx after retries) is no evidence and is not counted, and the row
waits for a retry like any row with a transient failure (`meta.transient`): the next run of verify values it
again, its answered requests from the cache. Requests
go through the one LLM client with sample keys (row id, step, rollout index), so a re-run is answered from
the cache and makes zero requests; the prefix itself is never requested again.
"""

import asyncio
import fnmatch
import json
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from pipeline.formats import FORMATS
from pipeline.jsonutil import canonical_json
from pipeline.llm import transient
from pipeline.sample.agent import ZERO_USAGE, run_episode
from pipeline.sample.branch import BranchError, Watched, branch, branch_points, executed, task_of
from pipeline.sample.llm_policy import LLMPolicy
from pipeline.tools import final_state


@dataclass
class Rollout:
    passed: bool | None  # None: no evidence (a request failed, or the environment could not be rebuilt)
    first_message: dict | None = None  # the continuation's first assistant message (its next action)
    first_key: str | None = None  # that action, canonically
    executed: bool = False  # the first action was parsed and executed (or is a final answer)
    usage: dict = field(default_factory=lambda: dict(ZERO_USAGE))
    problem: str | None = None  # why the environment could not be rebuilt


def action_key(step: dict) -> str:
    """What an action does, without its wording: type, tool and arguments (or the raw final answer)."""
    if step["action_type"] == "final_answer":
        return canonical_json(["final_answer", step["raw_action"]])
    return canonical_json([step["action_type"], step["tool_name"], step["tool_arguments"]])


def continues(step: dict) -> bool:
    """Whether an episode goes on after this step: an executed action that is not the final answer."""
    return step["action_type"] != "final_answer" and step["tool_name"] is not None


class StepValues:
    """`spec` is `verify.step_values`; `sampler` a SampleStage (continuations become rows as sample makes
    them), `program` the ProgramChecks, `client` the rollout teacher's endpoint."""

    def __init__(self, config, spec: dict, sampler, program, client, mark_transient):
        self.config, self.spec, self.sampler, self.program, self.client = config, spec, sampler, program, client
        self.mark_transient = mark_transient  # (row, failures) -> the row's verdict as waiting for a retry
        self.teacher = {"name": "step-values", "policy": "llm", **spec["teacher"]}

    def selected(self, rows: list[dict]) -> list[int]:
        """Indices of the rows to value, the first `max_trajectories` of those `selectable`."""
        return [i for i, row in enumerate(rows) if self.selectable(row)][: self.spec["max_trajectories"]]

    def selectable(self, row: dict) -> bool:
        """Of the configured sources, valid (a row repaired after breaking the schema is not branched),
        branchable, in a format the endpoint can continue (a base model in completion mode continues react
        only), and with `only_uncertain`, of a task whose pass rate is strictly between 0 and 1."""
        if "schema_repair" in (row.get("meta") or {}):
            return False
        if not any(fnmatch.fnmatchcase(row["source"], pattern) for pattern in self.spec["sources"]) or not branch_points(row):
            return False
        if self.client.mode == "completion" and FORMATS[row["format"]].completion is None:
            return False
        rate = ((row.get("meta") or {}).get("pass_rate") or {}).get("rate")
        return not self.spec["only_uncertain"] or (rate is not None and 0 < rate < 1)

    def steps_to_value(self, row: dict) -> list[int]:
        wanted = range(len(row["steps"])) if self.spec["steps"] == "all" else self.spec["steps"]
        points = set(branch_points(row))
        return [k for k in wanted if 0 <= k < len(row["steps"]) and k + 1 in points]

    async def process(self, rows: list[dict], inputs: list[dict], progress) -> list[dict]:
        """`rows` with the selected ones valued; `progress` counts the shard's `inputs` as they are finished."""
        out = list(rows)
        chosen = self.selected(rows)
        ids = {row["id"] for row in inputs}
        progress(len(ids) - sum(rows[i]["id"] in ids for i in chosen))

        async def value(i: int) -> dict:
            with transient.watching() as failures:
                valued = await self.value_row(rows[i])
            if failures:
                valued = self.mark_transient(valued, failures)
            if rows[i]["id"] in ids:
                progress(1)
            return valued

        for i, valued in zip(chosen, await asyncio.gather(*(value(i) for i in chosen))):
            out[i] = valued
        return out

    async def value_row(self, row: dict) -> dict:
        row = {**row, "meta": dict(row["meta"]), "steps": [dict(s) for s in row["steps"]]}
        wanted = self.steps_to_value(row)
        n = self.spec["rollouts_per_step"]
        rolled = [k for k in wanted if continues(row["steps"][k])]
        runs = await asyncio.gather(*(self.rollout(row, k + 1, r) for k in rolled for r in range(n)))
        by_step = {k: runs[j * n:(j + 1) * n] for j, k in enumerate(rolled)}
        valued = []
        for k in wanted:
            value = self.value(row, k, by_step.get(k, []))
            if value is None:
                continue  # no evidence this time (failed requests): the next run of verify asks again
            score, count = value
            row["steps"][k]["step_verdict"] = {"label": "good" if score > self.spec["threshold"] else "bad", "score": score,
                                               "judge": f"rollouts:{self.client.model}", "rollouts": count}
            valued.append(k)
        usage = {key: sum(r.usage[key] for r in runs) for key in ZERO_USAGE} | {"rollouts": len(runs)}
        problem = next((r.problem for r in runs if r.problem), None)
        row["meta"]["step_values"] = self.provenance(row, valued, by_step, usage, problem)
        return row

    def value(self, row: dict, k: int, runs: list[Rollout]) -> tuple[float, int] | None:
        """(value, continuations counted) of step k, or None without evidence."""
        step = row["steps"][k]
        if step["action_type"] == "final_answer":  # nothing follows: the trajectory's own program verdict
            own = [c for c in row["checks"] or [] if c["name"] != "committee"]
            return float(self.program.verdict(own, self.program.hard)[1]), 0
        if step["tool_name"] is None:
            return 0.0, 0  # an unparseable reply: nothing was executed, the episode ended there
        counted = [r.passed for r in runs if r.passed is not None]
        return (sum(counted) / len(counted), len(counted)) if counted else None

    def provenance(self, row: dict, valued: list[int], by_step: dict, usage: dict, problem: str | None) -> dict:
        spec = self.spec
        first_error = next((k for k in valued if row["steps"][k]["step_verdict"]["score"] <= spec["threshold"]), None)
        return {"teacher": {"endpoint": spec["teacher"]["endpoint"], "model": self.client.model,
                            "temperature": spec["teacher"]["temperature"]},
                "rollouts_per_step": spec["rollouts_per_step"], "seed": spec["seed"], "threshold": spec["threshold"],
                "pair_margin": spec["pair_margin"], "steps_valued": valued, "first_error_step": first_error,
                "usage": usage, "branches": self.branches(row, by_step), "problem": problem}

    @staticmethod
    def branches(row: dict, by_step: dict) -> list[dict]:
        """Alternatives to the trajectory's step k+1: the first actions of the rollouts after step k, grouped
        by what they do, with the share of their continuations that passed; the trajectory's own action is
        left out."""
        out = []
        for k, runs in by_step.items():
            at = k + 1
            if at >= len(row["steps"]):
                continue
            own = action_key(row["steps"][at])
            groups: dict[str, dict] = {}
            for r in runs:
                if r.passed is None or r.first_key is None or r.first_key == own:
                    continue
                group = groups.setdefault(r.first_key, {"at": at, "message": r.first_message, "executed": r.executed, "passed": 0, "rollouts": 0})
                group["passed"] += r.passed
                group["rollouts"] += 1
            out += [{**g, "value": g["passed"] / g["rollouts"]} for g in groups.values()]
        return out

    async def rollout(self, row: dict, upto: int, r: int) -> Rollout:
        """Continuation `r` of `row` after its first `upto` steps, verified with the program checks."""
        sample = self.config["sample"]
        policy = Watched(LLMPolicy(self.client, self.teacher, [row["id"], "step_value", upto - 1, r], self.spec["seed"] + r))
        task = task_of(row)
        label = f"{row['id']}/step_value/{upto - 1}/{r}"
        async with self.sampler.toolbox.episode(task["tools"], task["environment"], sample["max_observation_chars"], sample["sandbox"], label) as env:
            try:
                start = await asyncio.to_thread(branch, row, upto, env)
            except BranchError as exc:
                return Rollout(None, problem=str(exc))
            episode = await run_episode(task, policy, start.fmt, env, self.teacher["max_steps"], start=start)
            if policy.request_failed:
                return Rollout(None, usage=episode.usage)
            if env.recording is not None:  # environment tools: the replay check reads the continuation's calls
                episode.recording = env.recording.meta()
            passed = await asyncio.to_thread(self.verified, task, row, episode, env, r)
        first = episode.steps[upto] if len(episode.steps) > upto else None
        if first is None:
            return Rollout(passed, usage=episode.usage)
        return Rollout(passed, episode.messages[first["message_index"]], action_key(first), executed(first), episode.usage)

    def verified(self, task: dict, row: dict, episode, env, r: int) -> bool:
        continued = self.sampler.finish_row(task, self.teacher, row["format"], r, episode, final_state(env))
        return self.program.passes(continued)


def summary(paths) -> dict:
    """Figures of finished verified shards for the verify summary and the run report: `pass_rates` (how many
    tasks no, some or every model sample passed) and `step_values` (rows and steps valued, rollouts, what they
    cost in total and per labelled step, replies counted whether they came from the endpoint or the cache)."""
    rows = steps = rollouts = calls = 0
    cost = 0.0
    first_errors = 0
    rates: dict[str, float | None] = {}
    for path in paths:
        table = pq.read_table(path, columns=["task_id", "meta"])
        for task_id, text in zip(table["task_id"].to_pylist(), table["meta"].to_pylist()):
            meta = json.loads(text) if text else {}
            rates[task_id] = (meta.get("pass_rate") or {}).get("rate")
            values = meta.get("step_values")
            if not values:
                continue
            rows += 1
            steps += len(values["steps_valued"])
            rollouts += values["usage"]["rollouts"]
            calls += values["usage"]["llm_calls"]
            cost += values["usage"]["cost_usd"]
            first_errors += values["first_error_step"] is not None
    out = {}
    known = [rate for rate in rates.values() if rate is not None]
    if known:
        out["pass_rates"] = {"tasks_none_passed": sum(r == 0 for r in known), "tasks_some_passed": sum(0 < r < 1 for r in known),
                             "tasks_all_passed": sum(r == 1 for r in known)}
    if rows:
        out["step_values"] = {"rows": rows, "steps_labeled": steps, "first_error_found": first_errors, "rollouts": rollouts,
                              "llm_calls": calls, "cost_usd": round(cost, 6),
                              "llm_calls_per_step": round(calls / steps, 2) if steps else 0,
                              "usd_per_step": round(cost / steps, 6) if steps else 0}
    return out
