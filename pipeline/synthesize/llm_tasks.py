"""LLM task synthesis (Self-Instruct / SPORT style, with APIGen-MT's validation): an endpoint reads seed tasks
and the tool specs and proposes a new task as a blueprint (pipeline/synthesize/blueprints.py). A blueprint is
kept when it duplicates no existing task, its actions run without error in the real tools and reach the stated
answer and state, and a reviewer committee (the verify judges, with a blueprint rubric) passes it. A rejected
blueprint goes back to the proposer with the reasons, up to `max_rounds` proposals in all.

```yaml
synthesize:
  llm_tasks:
    - name: store-mt
      endpoint: gpt              # the proposer
      count: 50                  # blueprints asked for
      seeds: store_refunds       # a synthesize.seeds source or a generator: the example tasks
      reviewers: [{name: strict, endpoint: gpt}]
      committee: {rule: majority, quorum: 1}
      max_rounds: 3
```
Every proposal and its fate is counted (`stats()`: proposed, unparseable, duplicate, actions failed,
executed ok, review failed, reviewed ok, kept, ...) and a dropped blueprint is logged with its last reason.

Over an environment (`environment: inv`, docs/environments.md) the blueprint uses that environment's tools;
`seeds` become optional, and with `explore` the proposer first calls the read-only tools to see real data
(pipeline/synthesize/explore.py).
"""

import asyncio
import json
import logging
import random

from pipeline.formats.base import describe_tools
from pipeline.jsonutil import content_hash
from pipeline.llm import transient
from pipeline.llm.client import LLMError
from pipeline.synthesize import blueprints
from pipeline.synthesize import seeds as seedlib
from pipeline.synthesize.explore import explore
from pipeline.synthesize.generators import GENERATORS
from pipeline.synthesize.task_dedup import TaskIndex
from pipeline.tools import EnvironmentLost
from pipeline.verify import judges
from pipeline.verify.committee import aggregate

log = logging.getLogger("trajforge")
COUNTS = ("proposed", "unparseable", "duplicate", "actions_failed", "executed_ok", "review_failed", "reviewed_ok",
          "kept", "duplicate_in_shard", "gave_up", "endpoint_failed")
EXPLORE_COUNTS = ("explored", "explore_calls")  # counted when an entry explores an environment
ENVIRONMENT_CHARS = 6000

PROPOSER_SYSTEM = (
    "You write tasks for training AI agents that use tools. A task is a blueprint: what a user asks, the exact tool "
    "calls that fulfil the request, and the answer those calls lead to. Your blueprints are executed with the real "
    "tools and checked, so use only the tools listed and only facts present in the environment."
)
PROPOSAL = (
    "TOOLS:\n{tools}\n\nENVIRONMENT the tools act on (JSON):\n{environment}\n\nA TASK IN THIS ENVIRONMENT:\n{first}\n\n"
    "{others}Write ONE new task blueprint for this environment: a realistic user request that differs from the examples, "
    "stating every detail the tool calls need (ids, emails, names, values), the tool calls in order, and the answer "
    "they lead to (a value a tool returns). Arguments may use {{s0}}, {{s1}}, ... for the result of an earlier call. "
    "If calls change the environment, list the new values as state_changes (dotted paths, e.g. "
    "\"store.orders.O1234.status\"). Reply with one JSON object: "
    '{{"instruction": "...", "actions": [{{"thought": "...", "tool": "...", "arguments": {{...}}}}], "answer": "...", '
    '"state_changes": {{...}}}}'
)
ENVIRONMENT_PROPOSAL = (
    "TOOLS:\n{tools}\n\nWHAT THE TOOLS RETURNED WHEN EXPLORED (real data):\n{explored}\n\n{examples}"
    "Write ONE new task blueprint for these tools: a realistic user request that differs from any example, stating "
    "every detail the tool calls need (ids, names, values that exist, as seen above), the tool calls in order, and the "
    "answer they lead to (a value a tool returns). Arguments may use {{s0}}, {{s1}}, ... for the result of an earlier call. "
    "If calls change the environment's state, list the new values as state_changes (dotted paths into the state, e.g. "
    "\"{environment}.items.A1.stock\"). Reply with one JSON object: "
    '{{"instruction": "...", "actions": [{{"thought": "...", "tool": "...", "arguments": {{...}}}}], "answer": "...", '
    '"state_changes": {{...}}}}'
)
FEEDBACK = "This blueprint was rejected: {problem}\nWrite a corrected blueprint, or a new one, as one JSON object in the same format."
REVIEWER_SYSTEM = (
    "You review task blueprints for training tool-using AI agents: a user instruction, the ground-truth tool calls that "
    "fulfil it with what the tools really returned, and the expected answer. {rubric}\n"
    "Reply with one JSON object: {{\"passed\": true|false, \"score\": 1-5, \"rationale\": \"<one or two sentences>\"}}."
)
BLUEPRINT_RUBRIC = (
    "Pass a blueprint only if the instruction is clear, realistic and self-contained (it states every detail the calls "
    "need), the calls do exactly what the instruction asks (nothing it did not ask for), and the expected answer "
    "follows from the observations and answers the instruction."
)


def example_blueprint(task: dict) -> str:
    """A task shown to the proposer in the blueprint format it should reply in."""
    shown = {"instruction": task["instruction"]}
    if task.get("solution"):
        shown["actions"] = [{"thought": s["thought"], "tool": s["tool"], "arguments": s["arguments"]} for s in task["solution"]["steps"]]
    if task.get("ground_truth"):
        shown["answer"] = task["ground_truth"].get("answer")
    return json.dumps(shown, ensure_ascii=False)


def response_format(schema: dict, style: str) -> dict:
    if style == "json_object":  # llama.cpp turns the schema into a grammar
        return {"type": "json_object", "schema": schema}
    # not strict: OpenAI's strict mode cannot express free-form `arguments` objects
    return {"type": "json_schema", "json_schema": {"name": "blueprint", "strict": False, "schema": schema}}


def seed_pool(config, spec: dict) -> list[dict]:
    """The example tasks of `spec["seeds"]`: a seeds source's valid rows, or tasks a generator makes (those of its
    synthesize.generators entry when it has one, so they are the run's own tasks)."""
    synthesize = config["synthesize"]
    source = next((s for s in synthesize["seeds"] if s["name"] == spec["seeds"]), None)
    if source is not None:
        rows = seedlib.load_rows(source["path"], source["split"], source.get("limit"))
        return [content for content, _ in (seedlib.seed_content(source, i) for i in range(len(rows))) if content is not None]
    generator = GENERATORS[spec["seeds"]]
    entry = next((g for g in synthesize["generators"] if g["name"] == generator.name and g["count"]), None)
    count, lo, hi = (entry["count"], entry["min_difficulty"], entry["max_difficulty"]) if entry else (spec["pool"], 1, 10)
    seed = config["run"]["seed"]
    return [{"domain": generator.domain, "source": f"program:{generator.name}",
             **generator.make(random.Random(int(content_hash(seed, generator.name, j), 16)), lo, hi)} for j in range(count)]


def environment_example(toolbox, environment: str) -> dict:
    """The example task of an environment without seed tasks: every tool it offers, nothing else."""
    return {"domain": environment, "source": f"environment:{environment}", "instruction": None, "solution": None,
            "ground_truth": None, "tools": sorted(toolbox.environments[environment].tools), "environment": {}}


def described_tools(toolbox, names: list[str]) -> str:
    """The tools for a proposer, under the names blueprints use (qualified: `inv.get_item`)."""
    shown = [{"function": {**toolbox.tools[n].spec()["function"], "name": n}} for n in names]
    return describe_tools(shown)


class LLMTaskSynthesizer:
    def __init__(self, config, clients: dict, toolbox):
        self.config, self.clients, self.toolbox = config, clients, toolbox
        self.specs = config["synthesize"]["llm_tasks"]
        self.sample = config["sample"]
        self.pools: dict[str, list[dict]] = {}
        self.indexes: dict[str, TaskIndex] = {}
        exploring = any("environment" in spec and spec["explore"]["max_calls"] for spec in self.specs)
        self.counts = {key: 0 for key in (EXPLORE_COUNTS if exploring else ()) + COUNTS}

    def pool(self, spec: dict) -> list[dict]:
        if spec["name"] not in self.pools:
            pool = seed_pool(self.config, spec) if "seeds" in spec else [environment_example(self.toolbox, spec["environment"])]
            if "seeds" in spec and "environment" in spec:  # seed tasks as examples, the environment's tools for the new task
                pool = [{**task, "tools": sorted(self.toolbox.environments[spec["environment"]].tools)} for task in pool]
            self.pools[spec["name"]] = pool
            self.indexes[spec["name"]] = TaskIndex(spec["near_dup_threshold"], [t["instruction"] for t in pool if t["instruction"]])
        return self.pools[spec["name"]]

    def examples(self, spec: dict, index: int) -> list[dict]:
        pool = self.pool(spec)
        n = min(spec["examples"], len(pool))
        return [pool[(index * n + t) % len(pool)] for t in range(n)]

    def prompt(self, spec: dict, examples: list[dict], explored: str | None = None) -> list[dict]:
        tools = described_tools(self.toolbox, examples[0]["tools"])
        shown = "".join(f"{example_blueprint(t)}\n" for t in examples if t["instruction"])
        if "environment" in spec:
            text = ENVIRONMENT_PROPOSAL.format(tools=tools, explored=explored or "(not explored)", environment=spec["environment"],
                                               examples=f"EXAMPLE TASKS:\n{shown}\n" if shown else "")
            return [{"role": "system", "content": PROPOSER_SYSTEM}, {"role": "user", "content": text}]
        environment = json.dumps(examples[0]["environment"], ensure_ascii=False)
        if len(environment) > ENVIRONMENT_CHARS:
            environment = environment[:ENVIRONMENT_CHARS] + f" ... [{len(environment) - ENVIRONMENT_CHARS} more characters]"
        others = "".join(f"{example_blueprint(t)}\n" for t in examples[1:])
        text = PROPOSAL.format(tools=tools, environment=environment, first=example_blueprint(examples[0]),
                               others=f"MORE EXAMPLE TASKS (other environments):\n{others}\n" if others else "")
        return [{"role": "system", "content": PROPOSER_SYSTEM}, {"role": "user", "content": text}]

    async def explored(self, spec: dict, client, index: int) -> str | None:
        """What exploring the environment's read-only tools showed, for blueprint `index` (None: no explore step)."""
        if "environment" not in spec or not spec["explore"]["max_calls"]:
            return None
        text, calls = await explore(client, spec, self.toolbox, self.sample, ["llm_tasks", spec["name"], "explore", index])
        self.counts["explored"] += 1
        self.counts["explore_calls"] += calls
        return text

    async def make(self, item: dict) -> dict | None:
        """The task content of one blueprint, or None when every round was rejected (counted and logged)."""
        spec = self.specs[item["position"]]
        client = self.clients[spec["endpoint"]]
        examples = self.examples(spec, item["index"])
        schema = blueprints.blueprint_schema(examples[0]["tools"], spec["max_actions"])
        problem = "no proposal"
        messages = self.prompt(spec, examples, await self.explored(spec, client, item["index"]))
        for round_ in range(spec["max_rounds"]):
            self.counts["proposed"] += 1
            try:
                reply = await client.chat(messages, sample_key=["llm_tasks", spec["name"], item["index"], round_],
                                          response_format=response_format(schema, client.profile.get("structured_output") or "json_schema"),
                                          temperature=spec["temperature"], max_tokens=spec["max_tokens"])
            except LLMError as exc:
                self.counts["endpoint_failed"] += 1
                problem = f"the proposer failed: {exc}"
                break
            content, problem = await self.validate(spec, reply.text, schema, examples, round_, [item["index"], round_])
            if content is not None:
                return content
            messages = messages + [{"role": "assistant", "content": reply.text or ""}, {"role": "user", "content": FEEDBACK.format(problem=problem)}]
        else:
            self.counts["gave_up"] += 1
        log.warning("synthesize: blueprint %d of llm_tasks %s dropped: %s", item["index"], spec["name"], problem)
        return None

    async def validate(self, spec, text, schema, examples, round_, key) -> tuple[dict | None, str]:
        """(task content, '') for a blueprint that passes every test, else (None, the first problem)."""
        blueprint, problem = blueprints.parse(text, schema)
        if blueprint is None:
            self.counts["unparseable"] += 1
            return None, problem
        duplicate = self.indexes[spec["name"]].duplicate_of(blueprint["instruction"])
        if duplicate:
            self.counts["duplicate"] += 1
            return None, f"the instruction is a{'n' if duplicate[0] == 'exact' else ''} {duplicate[0]} duplicate of an existing task: {duplicate[1][:200]!r}"
        example = examples[0]
        label = f"blueprint/{spec['name']}/{'/'.join(map(str, key))}"
        try:
            async with self.toolbox.episode(example["tools"], example["environment"], self.sample["max_observation_chars"],
                                            self.sample["sandbox"], label) as env:
                run = await asyncio.to_thread(blueprints.run_actions, blueprint, env, example["tools"])
        except EnvironmentLost as exc:  # not the blueprint's fault: the shard is redone by the next run
            transient.note("environment")
            self.counts["environment_failed"] = self.counts.get("environment_failed", 0) + 1
            return None, f"the environment failed while executing it: {exc}"
        if run.problem:
            self.counts["actions_failed"] += 1
            return None, run.problem
        self.counts["executed_ok"] += 1
        votes, passed, detail = await self.review(spec, blueprint, run, key)
        if not passed:
            self.counts["review_failed"] += 1
            reasons = "; ".join(f"{v['judge']}: {v['rationale']}" for v in votes if v["passed"] is False)
            return None, f"the reviewers rejected it ({detail}){': ' + reasons if reasons else ''}"
        self.counts["reviewed_ok"] += 1
        meta = {"blueprint": {"name": spec["name"], "rounds": round_ + 1, "seed_tasks": [content_hash(t["instruction"]) for t in examples],
                              "reviews": votes, "committee": detail}}
        model = self.clients[spec["endpoint"]].model
        return blueprints.task_content(blueprint, run, example, spec.get("domain"), model, meta), ""

    async def review(self, spec: dict, blueprint: dict, run, key: list) -> tuple[list[dict], bool, str]:
        if not spec["reviewers"]:
            return [], True, "no reviewers"
        text = blueprints.render(blueprint, run)

        def ask(reviewer: dict):
            client = self.clients[reviewer["endpoint"]]
            system = REVIEWER_SYSTEM.format(rubric=reviewer.get("rubric_text") or BLUEPRINT_RUBRIC)
            return judges.judge_text(client, reviewer, system, text, client.profile.get("structured_output") or "json_schema",
                                     ["llm_tasks", spec["name"], "review", reviewer["name"], *key])

        votes = list(await asyncio.gather(*map(ask, spec["reviewers"])))
        c = spec["committee"]
        passed, detail = aggregate(votes, {r["name"]: r["weight"] for r in spec["reviewers"]}, c["rule"], c["threshold"], c["quorum"])
        return votes, bool(passed), detail

    def drop_duplicates(self, tasks: list[dict]) -> list[dict]:
        """Tasks in plan order without LLM tasks that duplicate an earlier task of the shard; counts the kept ones."""
        seen = {spec["name"]: TaskIndex(spec["near_dup_threshold"]) for spec in self.specs}
        kept = []
        for task in tasks:
            blueprint = task["meta"].get("blueprint") if task["source"].startswith("llm:") else None
            if blueprint:
                if seen[blueprint["name"]].duplicate_of(task["instruction"]):
                    self.counts["duplicate_in_shard"] += 1
                    log.warning("synthesize: blueprint task %s dropped: it duplicates an earlier task of its shard", task["id"])
                    continue
                self.counts["kept"] += 1
            for index in seen.values():
                index.add(task["instruction"])
            kept.append(task)
        return kept
