"""The sample stage: for each task, each teacher, each of its formats and samples, run one episode and
write it as a trajectory row."""

import asyncio

from pipeline import __version__
from pipeline.formats import FORMATS
from pipeline.jsonutil import content_hash
from pipeline.sample.agent import Episode, run_episode
from pipeline.sample.policies import ProgramPolicy
from pipeline.tools import Env, final_state
from pipeline.tools.python import sandbox_report

# Formats whose system prompt already describes the tools: their rows carry tools=null, so a chat template
# does not render the tools a second time.
TEXT_FORMATS = {"react", "cota", "codeact"}


class SampleStage:
    name = "sample"
    output_kind = "trajectory"

    def __init__(self, config, stage_hash: str):
        self.config = config
        self.stage_hash = stage_hash
        self.teachers = config["sample"]["teachers"]

    def policy(self, teacher: dict):
        if teacher["policy"] == "program":
            return ProgramPolicy()
        raise NotImplementedError(f"policy {teacher['policy']!r}")

    def jobs(self, tasks: list[dict]):
        for task in tasks:
            for teacher in self.teachers:
                if "domains" in teacher and task["domain"] not in teacher["domains"]:
                    continue
                if teacher["policy"] == "program" and not task["solution"]:
                    continue  # imported tasks without a solution program are for LLM teachers
                for fmt in teacher["formats"]:
                    for k in range(teacher["samples_per_task"]):
                        yield task, teacher, fmt, k

    def expected_outputs(self, inputs: int) -> int:
        """Trajectories for `inputs` tasks (an upper bound when teachers are limited to some domains)."""
        return inputs * sum(len(t["formats"]) * t["samples_per_task"] for t in self.teachers)

    async def sample_one(self, task: dict, teacher: dict, fmt_name: str, k: int) -> dict:
        fmt = FORMATS[fmt_name]
        sample = self.config["sample"]
        with Env(task["environment"], sample["max_observation_chars"], sample["sandbox"]) as env:
            episode = await run_episode(task, self.policy(teacher), fmt, env, teacher["max_steps"])
            state = final_state(env)
        row = self.to_row(task, teacher, fmt_name, k, episode)
        if state:
            row["meta"]["final_state"] = state
        if fmt.action_type == "code" or "python" in task["tools"]:
            row["meta"]["sandbox"] = sandbox_report()
        return row

    async def process(self, tasks: list[dict], progress) -> list[dict]:
        async def one(job):
            row = await self.sample_one(*job)
            progress(1)
            return row

        return list(await asyncio.gather(*(one(job) for job in self.jobs(tasks))))

    def to_row(self, task: dict, teacher: dict, fmt_name: str, k: int, episode: Episode) -> dict:
        program = teacher["policy"] == "program"
        teacher_info = {
            "model": "program" if program else self.config["endpoints"][teacher["endpoint"]]["model"],
            "endpoint": teacher["name"] if program else teacher["endpoint"],
            "mode": "program" if program else self.config["endpoints"][teacher["endpoint"]]["mode"],
            "temperature": None if program else teacher["temperature"],
            "seed": None if program else self.config["run"]["seed"] + k,
            "prompt_id": content_hash(fmt_name, episode.messages[0]["content"], length=12),
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
            "usage": {**episode.usage, "seconds": round(episode.seconds, 6)},
            "error": episode.error,
            "checks": None,
            "judgments": None,
            "passed": None,
            "score": None,
            "split": None,
            "config_hash": self.stage_hash,
            "pipeline_version": __version__,
        }
