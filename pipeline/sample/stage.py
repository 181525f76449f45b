"""The sample stage: for each task, each teacher, each of its formats and samples, run one episode and
write it as a trajectory row (and, with `sample.reflection`, a self-reflected copy: pipeline/sample/reflect.py).
A teacher with a `user_simulator` talks with a simulated user (pipeline/sample/user_sim.py), one with
`step_candidates` picks each action among several (pipeline/sample/sport.py), one with `stop_after_passing`
samples a task until enough samples pass the program checks (pipeline/sample/adaptive.py).

LLM teachers reach their endpoints through `open(run_dir)`, which the runner enters once around the stage's
shards (checking every endpoint before any work). Under the Batch
API, `process` returns None for a shard whose episodes wait on a reply, and `batch_round` gets the replies.
"""

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager

from pipeline import __version__
from pipeline import environments
from pipeline.formats import FORMATS
from pipeline.jsonutil import content_hash
from pipeline.llm import transient
from pipeline.llm.client import Deferred
from pipeline.llm.endpoints import Endpoints, summed_stats
from pipeline.rowstats import summed, trajectory_stats
from pipeline.sample.adaptive import until_passing
from pipeline.sample.agent import Episode, run_episode
from pipeline.sample.llm_policy import LLMPolicy
from pipeline.sample.policies import ProgramPolicy
from pipeline.sample.reflect import OFF, Reflector
from pipeline.sample.sport import CandidatePolicy
from pipeline.sample.user_sim import ENDINGS, UserSimulator
from pipeline.tools import Env, EnvironmentLost, final_state
from pipeline.tools.python import code_is_ours, sandbox_report
from pipeline.verify.program import ProgramChecks

# Formats whose system prompt already describes the tools: their rows carry tools=null, so a chat template
# does not render the tools a second time.
TEXT_FORMATS = {"react", "cota", "codeact"}


class SampleStage:
    name = "sample"
    output_kind = "trajectory"
    shards_in_flight = 4  # keeps an endpoint busy across shard boundaries

    def __init__(self, config, stage_hash: str):
        self.config = config
        self.stage_hash = stage_hash
        self.teachers = config["sample"]["teachers"]
        self.clients = {}
        self.reflection = config["sample"].get("reflection", OFF)
        self.reflector = Reflector(self.reflection, config["run"]["seed"])
        self.conversations = {key: 0 for key in ("conversations", "user_turns", *ENDINGS)}
        self.toolbox = environments.Toolbox()  # the built-in tools until open() adds the config's environments
        checked = any("stop_after_passing" in t or "step_candidates" in t for t in self.teachers)
        self.program = ProgramChecks(config) if checked else None  # sample-time checks for those teachers

    @asynccontextmanager
    async def open(self, run_dir):
        """Open the config's environments and the endpoints the LLM teachers use for the stage's duration."""
        names = [t["endpoint"] for t in self.teachers if t["policy"] == "llm"]
        names += [t["user_simulator"]["endpoint"] for t in self.teachers if "user_simulator" in t]
        async with AsyncExitStack() as stack:
            if self.config["environments"]:
                self.toolbox = await stack.enter_async_context(environments.opened(self.config, run_dir, self.name))
                if self.program is not None:
                    self.program.use_toolbox(self.toolbox)
            if names:
                self.clients = await stack.enter_async_context(Endpoints(self.config["endpoints"], names, run_dir))
            yield
        self.clients, self.toolbox = {}, environments.Toolbox()

    @property
    def batching(self) -> bool:
        return any(client.batch is not None for client in self.clients.values())

    async def batch_round(self) -> int:
        """Send the requests the last pass deferred, as Batch API jobs; returns how many were sent."""
        return sum([await client.batch.run_round() for client in self.clients.values() if client.batch is not None])

    def stats(self) -> dict:
        """Request counts and spend of this invocation, summed over endpoints, and the simulated-user and
        reflection counts, for the stage summary."""
        totals = summed_stats(self.clients)
        funnels = {}
        if any("user_simulator" in t for t in self.teachers):
            funnels["user_sim"] = dict(self.conversations)
        if self.reflection["fraction"] or self.reflection["from_failures"]:
            funnels["reflection"] = dict(self.reflector.counts)
        if funnels:
            totals["funnels"] = funnels
        return totals

    @staticmethod
    def summarize(paths) -> dict:
        """The summary of finished trajectory shards `paths`: rows, errors, tokens, cost, the funnel."""
        return summed(paths, trajectory_stats)

    def policy(self, teacher: dict, task: dict, fmt_name: str, k: int):
        if teacher["policy"] == "program":
            return ProgramPolicy()
        client, sample_key, seed = self.clients[teacher["endpoint"]], [task["id"], teacher["name"], fmt_name, k], self.config["run"]["seed"] + k
        if "step_candidates" not in teacher:
            return LLMPolicy(client, teacher, sample_key, seed)

        def make(suffix: list, offset: int) -> LLMPolicy:
            return LLMPolicy(client, teacher, sample_key + suffix, seed + offset)

        def outcome(episode: Episode, env: Env) -> bool:
            return self.program.passes(self.finish_row(task, teacher, fmt_name, k, episode, final_state(env)))

        return CandidatePolicy(teacher["step_candidates"], make, lambda: self.new_env(task, teacher, fmt_name), outcome, teacher["max_steps"])

    def groups(self, tasks: list[dict]):
        """(task, teacher, format) of every sampling job group of a shard: its samples run together."""
        chosen = []
        for teacher in self.teachers:
            fitting = [t["id"] for t in tasks if "domains" not in teacher or t["domain"] in teacher["domains"]]
            chosen.append(set(fitting[: teacher.get("max_tasks_per_shard")]))
        for task in tasks:
            for teacher, ids in zip(self.teachers, chosen):
                if task["id"] not in ids:
                    continue
                if teacher["policy"] == "program" and not task["solution"]:
                    continue  # imported tasks without a solution program are for LLM teachers
                for fmt in teacher["formats"]:
                    yield task, teacher, fmt

    def jobs(self, tasks: list[dict]):
        """(task, teacher, format, sample index) of every sample a shard may take (up to the cap, for teachers
        that sample adaptively)."""
        for task, teacher, fmt in self.groups(tasks):
            for k in range(teacher["samples_per_task"]):
                yield task, teacher, fmt, k

    def expected_outputs(self, inputs: int) -> int:
        """Trajectories for a shard of `inputs` tasks (an upper bound when teachers are limited to some domains)."""
        return sum(min(inputs, t.get("max_tasks_per_shard") or inputs) * len(t["formats"]) * t["samples_per_task"] for t in self.teachers)

    def new_env(self, task: dict, teacher: dict, fmt_name: str):
        """A fresh environment of the task (an async context: it holds the slots of the environments it uses)."""
        sample = self.config["sample"]
        ours = code_is_ours("program" if teacher["policy"] == "program" else "llm", task["source"])
        label = f"{task['id']}/{teacher['name']}/{fmt_name}"
        return self.toolbox.episode(task["tools"], task["environment"], sample["max_observation_chars"], sample["sandbox"], label,
                                    trusted_code=ours)

    async def episode(self, task: dict, teacher: dict, fmt_name: str, policy, user=None) -> tuple[Episode, dict]:
        """One episode in a fresh environment, and the environment's final state (read in a thread: an
        environment's state may come from its server)."""
        async with self.new_env(task, teacher, fmt_name) as env:
            episode = await run_episode(task, policy, FORMATS[fmt_name], env, teacher["max_steps"], user)
            try:
                state = await asyncio.to_thread(final_state, env)
            except EnvironmentLost as exc:
                state, episode.error = {}, episode.error or f"final state: {exc}"
                transient.note("environment")
            if env.recording is not None:
                episode.recording = env.recording.meta()
            return episode, state

    def finish_row(self, task: dict, teacher: dict, fmt_name: str, k: int, episode: Episode, state: dict) -> dict:
        row = self.to_row(task, teacher, fmt_name, k, episode)
        if state:
            row["meta"]["final_state"] = state
        if episode.recording is not None:
            row["meta"]["recording"] = episode.recording
        if FORMATS[fmt_name].action_type == "code" or "python" in task["tools"]:
            row["meta"]["sandbox"] = sandbox_report()
        return row

    async def sample_one(self, task: dict, teacher: dict, fmt_name: str, k: int) -> dict:
        return (await self.sample_rows(task, teacher, fmt_name, k, reflect=False))[0]

    async def sample_rows(self, task: dict, teacher: dict, fmt_name: str, k: int, reflect: bool = True) -> list[dict]:
        """The job's row, then its self-reflected copy when reflection makes one."""
        user = None
        if "user_simulator" in teacher:
            spec = teacher["user_simulator"]
            user = UserSimulator(self.clients[spec["endpoint"]], spec, [task["id"], teacher["name"], fmt_name, k])
        policy = self.policy(teacher, task, fmt_name, k)
        episode, state = await self.episode(task, teacher, fmt_name, policy, user)
        row = self.finish_row(task, teacher, fmt_name, k, episode, state)
        if isinstance(policy, CandidatePolicy):
            row["meta"]["step_candidates"] = policy.record
        if user is not None:
            row["meta"]["conversation"] = user.record(episode)
            self.conversations["conversations"] += 1
            self.conversations["user_turns"] += user.turns
            self.conversations[row["meta"]["conversation"]["ended_by"]] += 1
        reflected = await self.reflect(task, teacher, fmt_name, k, episode, row) if reflect and user is None else None
        return [row] if reflected is None else [row, reflected]

    async def reflect(self, task: dict, teacher: dict, fmt_name: str, k: int, episode: Episode, parent: dict) -> dict | None:
        """A self-reflected copy of the job (pipeline/sample/reflect.py), or None."""
        key = [teacher["name"], fmt_name, k]

        async def run(policy):
            return await self.episode(task, teacher, fmt_name, policy)

        if teacher["policy"] == "program" and self.reflector.selected(task, key):
            made = await self.reflector.perturbed(run, task, key)
        elif teacher["policy"] == "llm" and self.reflection["from_failures"]:
            made = await self.reflector.from_failure(run, task, episode, self.clients[teacher["endpoint"]], [task["id"], *key])
        else:
            return None
        if made is None:
            return None
        reflected, state, meta = made
        row = self.finish_row(task, teacher, fmt_name, k, reflected, state)
        row["id"] = "traj-" + content_hash(self.stage_hash, task["id"], teacher["name"], fmt_name, k, "reflection")
        row["train_mask"][meta["message_index"]] = False  # STeP partial masking: the mistake is context, not a target
        row["meta"]["reflection"] = {**meta, "parent_id": parent["id"]}
        return row

    async def process(self, tasks: list[dict], progress) -> list[dict] | None:
        """The rows of every job (task, teacher, format); None when some episode waits on a Batch API round
        (the shard is not done yet)."""
        batching = self.batching
        for task in tasks:
            self.toolbox.check_task(task, "sample")

        async def one(task, teacher, fmt, k):
            with transient.watching() as failures:
                try:
                    rows = await self.sample_rows(task, teacher, fmt, k)
                except Deferred:
                    return None
            if failures:  # the next run of this stage retries the job (finished requests come from the cache)
                for row in rows:
                    row["meta"]["transient"] = transient.kinds(failures)
            if not batching:
                progress(1)
            return rows

        async def group(task, teacher, fmt):
            """Every sample of one task by one teacher in one format, flattened; None while some wait."""
            sample = lambda k: one(task, teacher, fmt, k)  # noqa: E731
            if "stop_after_passing" in teacher:
                return await until_passing(sample, self.program.passes, teacher["stop_after_passing"], teacher["samples_per_task"])
            per_sample = await asyncio.gather(*(sample(k) for k in range(teacher["samples_per_task"])))
            return None if any(rows is None for rows in per_sample) else [row for rows in per_sample for row in rows]

        running = [asyncio.ensure_future(group(*job)) for job in self.groups(tasks)]
        try:
            per_job = await asyncio.gather(*running)
        except BaseException:  # a stopped endpoint or Ctrl-C: no new requests from the other episodes either
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        if any(rows is None for rows in per_job):
            return None
        out = [row for rows in per_job for row in rows]
        if batching:
            progress(sum("reflection" not in row["meta"] for row in out))
        return out

    @staticmethod
    def prompt_id(fmt_name: str, mode: str, episode: Episode) -> str:
        """The prompt the teacher saw, without the task: the system prompt (chat), or the few-shot completion
        prompt around an empty question (completion mode)."""
        fmt = FORMATS[fmt_name]
        if mode == "completion" and fmt.completion:
            template = fmt.completion.prompt([episode.messages[0], {"role": "user", "content": ""}], episode.tools)
            return content_hash(fmt_name, mode, template, length=12)
        return content_hash(fmt_name, episode.messages[0]["content"], length=12)

    def to_row(self, task: dict, teacher: dict, fmt_name: str, k: int, episode: Episode) -> dict:
        program = teacher["policy"] == "program"
        teacher_info = {
            "model": "program" if program else self.config["endpoints"][teacher["endpoint"]]["model"],
            "endpoint": teacher["name"] if program else teacher["endpoint"],
            "mode": "program" if program else self.config["endpoints"][teacher["endpoint"]]["mode"],
            "temperature": None if program else teacher["temperature"],
            "seed": None if program else self.config["run"]["seed"] + k,
            "prompt_id": self.prompt_id(fmt_name, "program" if program else self.config["endpoints"][teacher["endpoint"]]["mode"], episode),
        }
        return {
            "id": "traj-" + content_hash(self.stage_hash, task["id"], teacher["name"], fmt_name, k),
            "task_id": task["id"],
            "domain": task["domain"],
            "source": "program" if program else f"llm:{teacher_info['model']}",
            "format": fmt_name,
            "instruction": task["instruction"],
            "messages": episode.messages,
            "tools": None if fmt_name in TEXT_FORMATS else episode.tools,
            "train_mask": [m["role"] == "assistant" for m in episode.messages],
            "steps": episode.steps,
            "final_answer": episode.final_answer,
            "ground_truth": task["ground_truth"],
            "environment": task["environment"],
            "difficulty": task["difficulty"],
            "meta": {"tools": task["tools"], "teacher": teacher["name"], "sample_index": k, "task_source": task["source"], **task["meta"]},
            "teacher": teacher_info,
            "usage": {**episode.usage, "seconds": round(episode.seconds, 6), "cached_tokens": episode.usage.get("cached_tokens"),
                      "reasoning_tokens": episode.usage.get("reasoning_tokens")},
            "tokens": episode.tokens,
            "error": episode.error,
            "checks": None,
            "judgments": None,
            "passed": None,
            "score": None,
            "split": None,
            "config_hash": self.stage_hash,
            "pipeline_version": __version__,
        }
