"""Trajectories as other tools write them, made from real function-calling program-teacher rows: OpenAI chat
JSONL (string arguments), ShareGPT with function calls (LLaMA-Factory layout) and ATIF documents."""

import json

from tests.verify_suite.rows import base

TASKS = [("arithmetic", 1), ("sql_table", 2), ("kb_multihop", 1), ("units_dates", 3), ("doc_search", 2), ("store_refunds", 1)]


def rows() -> list[dict]:
    return [base(generator, seed, "function_calling") for generator, seed in TASKS]


def openai_record(row: dict) -> dict:
    messages = []
    for m in row["messages"]:
        m = dict(m)
        if "tool_calls" in m:
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"])}} for c in m["tool_calls"]]
        messages.append(m)
    return {"messages": messages, "tools": row["tools"], "model": "gpt-4o-mini", "ground_truth": row["ground_truth"],
            "environment": row["environment"]}


def sharegpt_record(row: dict) -> dict:
    turns = []
    for m in row["messages"][1:]:
        if m["role"] == "user":
            turns.append({"from": "human", "value": m["content"]})
        elif m["role"] == "tool":
            turns.append({"from": "observation", "value": m["content"]})
        elif "tool_calls" in m:
            call = m["tool_calls"][0]["function"]
            turns.append({"from": "function_call", "value": json.dumps({"name": call["name"], "arguments": call["arguments"]})})
        else:
            turns.append({"from": "gpt", "value": m["content"]})
    return {"conversations": turns, "system": row["messages"][0]["content"], "tools": json.dumps([t["function"] for t in row["tools"]]),
            "ground_truth": row["ground_truth"], "environment": row["environment"]}


def atif_document(row: dict) -> dict:
    steps, messages = [], row["messages"]
    for i, m in enumerate(messages):
        if m["role"] in ("system", "user"):
            steps.append({"step_id": len(steps) + 1, "source": m["role"], "message": m["content"]})
        elif m["role"] == "assistant":
            step = {"step_id": len(steps) + 1, "source": "agent", "message": m.get("content", ""), "model_name": "claude-test"}
            if "tool_calls" in m:
                step["tool_calls"] = [{"tool_call_id": c["id"], "function_name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                                      for c in m["tool_calls"]]
                answers = [n for n in messages[i + 1:i + 1 + len(m["tool_calls"])] if n["role"] == "tool"]
                step["observation"] = {"results": [{"source_call_id": a["tool_call_id"], "content": a["content"]} for a in answers]}
            steps.append(step)
    return {"schema_version": "ATIF-v1.8", "session_id": row["id"], "agent": {"name": "test-agent", "version": "1.0",
            "tool_definitions": row["tools"]}, "steps": steps,
            "extra": {"ground_truth": row["ground_truth"], "environment": row["environment"]}}


def write_jsonl(path, records: list, extra_lines: list[str] = ()) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "".join(line + "\n" for line in extra_lines))
