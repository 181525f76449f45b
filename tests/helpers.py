"""Rows for tests, made by the real generators and the real program teacher."""

import asyncio
import copy
import random

from pipeline.formats import FORMATS
from pipeline.sample.agent import run_episode
from pipeline.sample.policies import ProgramPolicy
from pipeline.sample.stage import SampleStage
from pipeline.synthesize.generators import GENERATORS
from pipeline.tools import Env

TEACHER = {"name": "program", "policy": "program", "formats": ["cota"], "samples_per_task": 1, "max_steps": 8, "temperature": 0.0}


def make_task(generator: str = "arithmetic", seed: int = 1) -> dict:
    content = GENERATORS[generator].make(random.Random(seed), 1, 10)
    return {"id": f"task-{generator}-{seed}", "domain": GENERATORS[generator].domain, "source": f"program:{generator}", **content,
            "config_hash": "test", "pipeline_version": "test"}


def make_trajectory(generator: str = "arithmetic", seed: int = 1, fmt: str = "cota") -> dict:
    task = make_task(generator, seed)
    with Env(task["environment"]) as env:
        episode = asyncio.run(run_episode(task, ProgramPolicy(), FORMATS[fmt], env, 8))
    stage = SampleStage({"sample": {"teachers": [TEACHER]}, "run": {"seed": 0}, "endpoints": {}}, "test")
    return copy.deepcopy(stage.to_row(task, TEACHER, fmt, 0, episode))


def rebuild_messages(row: dict) -> dict:
    """Re-render a text-format row's messages from its steps, so a corruption of the steps stays consistent
    between messages and steps (only the targeted check should notice it)."""
    import json

    from pipeline.formats import Action

    fmt = FORMATS[row["format"]]
    messages = row["messages"][:2]
    for step in row["steps"]:
        if step["action_type"] == "final_answer":
            action = Action(step["thought"], final_answer=row["final_answer"])
        else:
            action = Action(step["thought"], tool=step["tool_name"], arguments=json.loads(step["tool_arguments"]))
        messages.append(fmt.action_message(action))
        step["message_index"] = len(messages) - 1
        step["raw_action"] = messages[-1]["content"]
        if step["observation"] is not None:
            messages.append(fmt.observation_message(step["observation"], action))
    for i, step in enumerate(row["steps"]):
        step["index"] = i
    row["messages"] = messages
    row["train_mask"] = [m["role"] == "assistant" for m in messages]
    return row


def host_processes_with(marker: str) -> list[int]:
    """Pids of this host's processes whose command line holds `marker` (a process that outlived its sandbox)."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def rewrite_shard(path, table) -> None:
    """Replace a finished shard's contents as if its stage had written them (footer kept, done-marker renewed):
    how tests stand in for rows written by another source or an earlier trajforge. A shard changed behind its
    marker's back is damage, which the next stage refuses."""
    from pipeline import shards

    found = shards.footer(path)
    shards.write_finished(path, table, found["stage_hash"], found["pending"], found["input"])
