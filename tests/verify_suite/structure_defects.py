"""Corruptions of a trajectory's structure: observations, messages against steps, loops, final state, schema,
context (prompt, user turn, tools), train_mask and tool-call ids."""

import copy
import json

from pipeline.tools import specs
from tests.verify_suite.rows import execute, render, tool_steps


def fabricated_observation(row, ctx):
    step = ctx.rng.choice(tool_steps(row))
    observation = step["observation"] or ""
    digits = [i for i, c in enumerate(observation) if c.isdigit()]
    if digits:
        at = ctx.rng.choice(digits)
        step["observation"] = observation[:at] + str((int(observation[at]) + 3) % 10) + observation[at + 1:]
    else:
        step["observation"] = ctx.rng.choice(["No results.", "OK", observation[: len(observation) // 2]])
    return render(row)


def messages_disagree(row, ctx):
    """Only the messages change: an edited thought, other arguments, or a dropped observation."""
    i = ctx.rng.choice([i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"])
    message = row["messages"][i]
    choices = ["content"] + (["drop"] if i + 1 < len(row["messages"]) else []) + (["arguments"] if message.get("tool_calls") else [])
    how = ctx.rng.choice(choices)
    if how == "content":
        message["content"] = (message.get("content") or "") + " (edited)"
    elif how == "drop":
        del row["messages"][i + 1]
        row["train_mask"] = [m["role"] == "assistant" for m in row["messages"]]
    else:
        message["tool_calls"][0]["function"]["arguments"] = {"unexpected": 1}
    return row


def loop(row, ctx):
    step = ctx.rng.choice(tool_steps(row))
    position = row["steps"].index(step)
    again = [{**copy.deepcopy(step), "tool_call_id": f"{step['tool_call_id']}_again{n}"} for n in range(ctx.rng.randint(1, 2))]
    row["steps"][position + 1:position + 1] = again
    return execute(row)


def wrong_final_state(row, ctx):
    """A state-changing action left out (the answer still stated), or an address changed to another one."""
    if "final_state" not in row["meta"]:
        return None
    changing = [s for s in tool_steps(row) if s["tool_name"] in ("cancel_order", "return_items", "update_address")
                or "cancel_order(" in s["tool_arguments"] or "return_items(" in s["tool_arguments"] or "update_address(" in s["tool_arguments"]]
    step = changing[-1]
    arguments = json.loads(step["tool_arguments"])
    if "address" in arguments and ctx.rng.random() < 0.5:
        arguments["address"] = "1 Nowhere Road, Elsewhere"
        step["tool_arguments"] = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
    else:
        row["steps"].remove(step)
    return execute(row)


SCHEMA_BREAKS = [
    lambda row: row["usage"].update(llm_calls=-1),
    lambda row: row.update(difficulty=0),
    lambda row: row.update(format="xml"),
    lambda row: row.update(source="somewhere"),
    lambda row: row["messages"][1].update(role="human"),
    lambda row: row["messages"][2].update(content=None),
    lambda row: row.update(instruction=""),
    lambda row: row["teacher"].update(mode="telepathy"),
    lambda row: row["steps"][0].update(action_type="think"),
    lambda row: row.update(tools=[]),
]


def schema_break(row, ctx):
    ctx.rng.choice(SCHEMA_BREAKS)(row)
    return row


def context_user_turn(row, ctx):
    """The user turn of another task (the instruction column still this task's)."""
    row["messages"][1] = {"role": "user", "content": ctx.other(row)["instruction"]}
    return row


def context_system_prompt(row, ctx):
    """A system prompt that describes another task's tools (for function calling: a text format's prompt)."""
    other = ctx.other(row, fmt="cota" if row["format"] == "function_calling" else row["format"])
    row["messages"][0] = copy.deepcopy(other["messages"][0])
    return row


def context_tools(row, ctx):
    """The `tools` column of another task, or (function calling) none at all, or (text formats) the task's own,
    which a template would then render a second time."""
    how = ctx.rng.choice(["other", "missing" if row["format"] == "function_calling" else "own"])
    if how == "other":
        row["tools"] = specs(ctx.other(row)["meta"]["tools"])
    else:
        row["tools"] = None if how == "missing" else specs(row["meta"]["tools"])
    return row


def context_dropped_system(row, ctx):
    del row["messages"][0]
    for step in row["steps"]:
        step["message_index"] -= 1
    row["train_mask"] = row["train_mask"][1:]
    return row


def wrong_mask(row, ctx):
    mask = row["train_mask"]
    how = ctx.rng.choice(["observation", "prompt", "nothing", "assistant"])
    if how == "observation":
        mask[ctx.rng.choice([i for i, m in enumerate(row["messages"]) if m["role"] in ("tool", "user") and i > 1] or [1])] = True
    elif how == "prompt":
        mask[ctx.rng.choice([0, 1])] = True
    elif how == "nothing":
        row["train_mask"] = [False] * len(mask)
    else:
        mask[ctx.rng.choice([i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"])] = False
    return row


def step_ids(row, ctx):
    """Function calling: a step's tool_call_id that is not its call's, or ids that collide."""
    if row["format"] != "function_calling" or not tool_steps(row):
        return None
    steps = tool_steps(row)
    if ctx.rng.random() < 0.5 or len(steps) < 2:
        ctx.rng.choice(steps)["tool_call_id"] = "call_x" + str(ctx.rng.randint(10, 99))
        return row
    steps[1]["tool_call_id"] = steps[0]["tool_call_id"]
    return render(row)


def tool_call_id_mismatch(row, ctx):
    """Function calling: a tool message that answers another id than its call's, or a call whose id changed."""
    if row["format"] != "function_calling" or not tool_steps(row):
        return None
    step = ctx.rng.choice(tool_steps(row))
    if ctx.rng.random() < 0.5:
        row["messages"][step["message_index"] + 1]["tool_call_id"] = "call_other"
    else:
        row["messages"][step["message_index"]]["tool_calls"][0]["id"] = "call_other"
    return row


DEFECTS = {
    "fabricated_observation": fabricated_observation,
    "messages_steps": messages_disagree,
    "loop": loop,
    "wrong_final_state": wrong_final_state,
    "schema_break": schema_break,
    "context_user_turn": context_user_turn,
    "context_system_prompt": context_system_prompt,
    "context_tools": context_tools,
    "context_dropped_system": context_dropped_system,
    "wrong_mask": wrong_mask,
    "step_ids": step_ids,
    "tool_call_id_mismatch": tool_call_id_mismatch,
}
