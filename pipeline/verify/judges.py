"""LLM judges: each judge is an endpoint plus a rubric; it returns a structured verdict {passed, score 1-5,
rationale} requested with `response_format` (a JSON schema: OpenAI structured outputs, or llama.cpp's grammar
for `json_object` with a schema). An invalid verdict is asked once more, then recorded as an abstention; an
endpoint that fails (timeout, 5xx after retries, refused) abstains too. Judges never crash the stage."""

import json

from jsonschema import Draft202012Validator

from pipeline.llm.client import LLMClient, LLMError
from pipeline.verify.rubrics import RUBRICS, STEP_RUBRIC, STEP_VERDICTS_SCHEMA, SYSTEM, VERDICT_SCHEMA

ATTEMPTS = 2
MAX_OBSERVATION_CHARS = 1500


def response_format(schema: dict, style: str) -> dict:
    if style == "json_object":  # llama.cpp: a schema turned into a grammar
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": schema}}


def _clip(text: str | None, limit: int = MAX_OBSERVATION_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more characters]"


def render_trajectory(row: dict, with_truth: bool) -> str:
    """What a judge reads: the task, the tools, every step (with a reasoning model's reasoning), the final
    answer (and the reference answer for rubrics that compare with it)."""
    tools = (row.get("meta") or {}).get("tools") or [t["function"]["name"] for t in row.get("tools") or []]
    lines = [f"TASK:\n{row['instruction']}", f"TOOLS AVAILABLE: {', '.join(tools) or 'none'}", "TRAJECTORY:"]
    for step in row["steps"]:
        message = row["messages"][step["message_index"]] if 0 <= step["message_index"] < len(row["messages"]) else {}
        if message.get("reasoning_content"):
            lines.append(f"[step {step['index']}] reasoning: {_clip(message['reasoning_content'])}")
        lines.append(f"[step {step['index']}] thought: {step['thought'] or '(none)'}")
        if step["action_type"] == "final_answer":
            lines.append(f"[step {step['index']}] final answer: {row.get('final_answer')}")
        elif step["action_type"] == "ask_user":
            lines.append(f"[step {step['index']}] to the user: {_clip(step['raw_action'], 600)}")
            lines.append(f"[step {step['index']}] the user replies: {_clip(step['observation'] or '(nothing)', 600)}")
        elif step["tool_name"]:
            lines.append(f"[step {step['index']}] action: {step['tool_name']} {step['tool_arguments']}")
            lines.append(f"[step {step['index']}] observation: {_clip(step['observation'])}")
        else:
            lines.append(f"[step {step['index']}] unparseable reply: {_clip(step['raw_action'], 300)} ({step['error']})")
    if row.get("error"):
        lines.append(f"THE EPISODE ENDED WITH AN ERROR: {row['error']}")
    lines.append(f"FINAL ANSWER: {row.get('final_answer')}")
    truth = (row.get("ground_truth") or {}).get("answer")
    if with_truth and truth is not None:
        lines.append(f"REFERENCE ANSWER: {json.dumps(truth, ensure_ascii=False)}")
    return "\n".join(lines)


def rubric_text(judge: dict) -> str:
    return judge.get("rubric_text") or RUBRICS[judge["rubric"]]


def parse_verdict(text: str | None, schema: dict) -> dict | None:
    """The verdict object when `text` is one JSON object valid against `schema`, else None."""
    try:
        value = json.loads((text or "").strip(), strict=False)  # raw line breaks in strings: a formatting slip, no content
    except json.JSONDecodeError:
        return None
    return value if Draft202012Validator(schema).is_valid(value) else None


async def _ask(client: LLMClient, messages: list[dict], schema: dict, judge: dict, style: str, key: list) -> tuple[dict | None, str]:
    """(verdict, why not) after up to ATTEMPTS tries."""
    problem = ""
    for attempt in range(ATTEMPTS):
        try:
            reply = await client.chat(messages, sample_key=key + [attempt], response_format=response_format(schema, style),
                                      temperature=judge["temperature"], max_tokens=judge["max_tokens"])
        except LLMError as exc:
            return None, f"abstained: endpoint failed ({exc})"
        verdict = parse_verdict(reply.text, schema)
        if verdict is not None:
            return verdict, ""
        problem = f"abstained: no valid verdict in {ATTEMPTS} tries (last reply: {_clip(reply.text, 120)!r})"
    return None, problem


async def judge_row(client: LLMClient, judge: dict, row: dict, style: str) -> dict:
    """One judgment row for the trajectory: {judge, model, passed, score, rationale}; passed=None abstains."""
    with_truth = judge.get("rubric") == "correctness" or judge.get("with_ground_truth", False)
    system = SYSTEM.format(rubric=rubric_text(judge))
    return await judge_text(client, judge, system, render_trajectory(row, with_truth), style, [row["id"], "judge", judge["name"]])


async def judge_text(client: LLMClient, judge: dict, system: str, text: str, style: str, key: list) -> dict:
    """A judgment of any rendered text under a system prompt that asks for the verdict (judge_row's core; the
    blueprint reviewers of LLM task synthesis use it too)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    verdict, problem = await _ask(client, messages, VERDICT_SCHEMA, judge, style, key)
    if verdict is None:
        return {"judge": judge["name"], "model": client.model, "passed": None, "score": None, "rationale": problem}
    return {"judge": judge["name"], "model": client.model, "passed": verdict["passed"], "score": float(verdict["score"]),
            "rationale": verdict["rationale"]}


async def judge_steps(client: LLMClient, spec: dict, row: dict, style: str) -> tuple[list[dict] | None, str]:
    """Per-step verdicts [{label, score, judge}] aligned with row['steps'], or (None, why) when it abstained."""
    messages = [{"role": "system", "content": STEP_RUBRIC + ' Reply with one JSON object: {"steps": [{"index": 0, "label": "good"|"bad", "score": 1-5}, ...]}.'},
                {"role": "user", "content": render_trajectory(row, with_truth=False)}]
    verdict, problem = await _ask(client, messages, STEP_VERDICTS_SCHEMA, spec, style, [row["id"], "step_judge"])
    if verdict is None:
        return None, problem
    by_index = {entry["index"]: entry for entry in verdict["steps"]}
    if set(by_index) != set(range(len(row["steps"]))):
        return None, f"abstained: verdicts for steps {sorted(by_index)}, the trajectory has {len(row['steps'])}"
    return [{"label": by_index[i]["label"], "score": float(by_index[i]["score"]), "judge": client.model} for i in range(len(row["steps"]))], ""
