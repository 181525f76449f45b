"""A function-calling trajectory (assistant tool_calls with object arguments, tool messages, a tools list)
built from a real program trajectory, for view and consumer tests."""

import json

from pipeline import schema
from pipeline.tools import specs
from tests.helpers import make_trajectory


def function_calling_row(generator: str = "arithmetic", seed: int = 1) -> dict:
    row = make_trajectory(generator, seed, "cota")
    messages = [{"role": "system", "content": "You solve tasks with the tools you are given."},
                {"role": "user", "content": row["instruction"]}]
    steps = []
    for step in row["steps"]:
        if step["action_type"] == "final_answer":
            messages.append({"role": "assistant", "content": row["final_answer"]})
            steps.append({**step, "message_index": len(messages) - 1})
            continue
        call_id = f"call_{step['index']}"
        call = {"id": call_id, "type": "function", "function": {"name": step["tool_name"], "arguments": json.loads(step["tool_arguments"])}}
        messages.append({"role": "assistant", "tool_calls": [call]})
        steps.append({**step, "message_index": len(messages) - 1, "tool_call_id": call_id})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": step["observation"]})
    out = {**row, "id": row["id"] + "-fc", "format": "function_calling", "messages": messages, "steps": steps,
           "tools": specs(row["meta"]["tools"]), "train_mask": [m["role"] == "assistant" for m in messages]}
    assert schema.errors("trajectory", out) == []
    return out
