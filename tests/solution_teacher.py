"""A competent fake teacher for the fake OpenAI server: it follows each task's solution program, step by step,
from the observations it has been sent (so its trajectories pass verification), in the function_calling or the
react chat format. `think` wraps each reply in a reasoning model's shape; `extra` adds fields to every reply
(token ids, logprobs, usage)."""

import json
from pathlib import Path

from pipeline import shards
from pipeline.formats import FORMATS
from pipeline.sample.policies import planned_action

THOUGHT = "Let me work through this carefully before I act."


def shaped(reply: dict, think: str | None) -> dict:
    """`reply` as a reasoning model's server sends it: the reasoning in a field, or a <think> block in content."""
    if think in ("reasoning_content", "reasoning"):
        return {**reply, think: THOUGHT}
    if think == "tags":
        return {**reply, "content": f"<think>\n{THOUGHT}\n</think>\n\n{reply.get('content') or ''}"}
    if think == "leaked":  # an R1 distill whose reasoning was not split off: the closing tag stays in content
        return {**reply, "content": f"{THOUGHT}\n</think>\n\n{reply.get('content') or ''}"}
    return reply


class SolutionTeacher:
    def __init__(self, run_dir: Path, think: str | None = None, extra=None):
        self.run_dir, self.think, self.extra = Path(run_dir), think, extra
        self.tasks: dict[str, dict] = {}

    def task(self, instruction: str) -> dict:
        if instruction not in self.tasks:
            for path in sorted((self.run_dir / "tasks").glob("part-*.parquet")):
                self.tasks.update({t["instruction"]: t for t in shards.read_shard(path, "task", validate=False)})
        return self.tasks[instruction]

    def __call__(self, path: str, body: dict):
        messages = body["messages"]
        task = self.task(messages[1]["content"])
        if "tools" in body:
            seen = [m["content"] for m in messages if m["role"] == "tool"]
            action = planned_action(task["solution"], len(seen), seen, f"call_{len(seen)}")
            message = FORMATS["function_calling"].action_message(action)
            reply = {"content": message.get("content")}
            if "tool_calls" in message:
                call = message["tool_calls"][0]
                reply["tool_calls"] = [{"id": call["id"], "name": call["function"]["name"], "arguments": json.dumps(call["function"]["arguments"])}]
        else:
            seen = [m["content"].removeprefix("Observation: ") for m in messages[2:] if m["role"] == "user"]
            action = planned_action(task["solution"], len(seen), seen, None)
            reply = {"content": FORMATS["react"].action_message(action)["content"]}
        reply = shaped(reply, self.think)
        return {**reply, **(self.extra(path, body) if self.extra else {})}
