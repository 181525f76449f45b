"""Task blueprints (APIGen-MT): an instruction with its ground-truth actions and expected answer, proposed by
an LLM and kept only when executing the actions in the real tools reaches what the blueprint states.

A blueprint as the proposer writes it (BLUEPRINT_SCHEMA):
    {"instruction": "...", "actions": [{"thought": "...", "tool": "get_order", "arguments": {...}}, ...],
     "answer": "45.00", "state_changes": {"store.orders.O1234.status": "cancelled"}}
Arguments may reference earlier observations as {s0}, {s1}, ... like a solution program. `state_changes`
(optional) names values the environment's final state must hold after the actions (dotted paths into
`Env.snapshot()`). The answer must be grounded: a number some observation states (to the precision the
blueprint gives), or text some observation contains. A validated blueprint becomes an ordinary task whose
solution program is its actions, so the program teacher samples it and verify replays it.
"""

import json
import re
from dataclasses import dataclass, field

from jsonschema import Draft202012Validator

from pipeline.jsonutil import dotted_get
from pipeline.sample.policies import fill_arguments
from pipeline.tools import Env, final_state, run_tool
from pipeline.verify.answers import normalize_text

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_NUMERIC_ANSWER = re.compile(r"\$?\s*[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")
MAX_OBSERVATION_CHARS_SHOWN = 600


def blueprint_schema(tools: list[str], max_actions: int) -> dict:
    """The JSON schema a proposal must follow (an enum of tool names: grammars enforce enums)."""
    action = {"type": "object", "additionalProperties": False, "required": ["thought", "tool", "arguments"],
              "properties": {"thought": {"type": "string"}, "tool": {"enum": list(tools)}, "arguments": {"type": "object"}}}
    return {
        "type": "object", "additionalProperties": False, "required": ["instruction", "actions", "answer"],
        "properties": {
            "instruction": {"type": "string", "minLength": 10},
            "actions": {"type": "array", "minItems": 1, "maxItems": max_actions, "items": action},
            "answer": {"type": ["string", "number"]},
            "state_changes": {"type": "object"},
        },
    }


def parse(text: str | None, schema: dict) -> tuple[dict | None, str | None]:
    """(blueprint, None), or (None, why it is not one)."""
    try:
        value = json.loads((text or "").strip(), strict=False)  # raw line breaks in strings: a formatting slip, no content
    except json.JSONDecodeError as exc:
        return None, f"the reply is not one JSON object ({exc.msg} at char {exc.pos})"
    problems = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if problems:
        where = "/".join(map(str, problems[0].absolute_path)) or "the blueprint"
        return None, f"{where}: {problems[0].message[:200]}"
    if not str(value["answer"]).strip():
        return None, "answer: empty"
    return value, None


@dataclass
class Execution:
    """What running a blueprint's actions did: each observation, whether each changed the state, the final
    state (for stateful environments) and the first problem, if any."""

    observations: list[str] = field(default_factory=list)
    changed: list[bool] = field(default_factory=list)
    arguments: list[dict] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    answer: object = None
    tolerance: float | None = None
    problem: str | None = None


def execute(blueprint: dict, environment: dict, tools: list[str], max_observation_chars: int, sandbox: dict) -> Execution:
    """Run the actions in a fresh environment of the built-in tools (see `run_actions`)."""
    with Env(environment, max_observation_chars, sandbox) as env:
        return run_actions(blueprint, env, tools)


def run_actions(blueprint: dict, env: Env, tools: list[str]) -> Execution:
    """Run the actions in `env`, a fresh environment; every one must succeed, the stated state changes must
    hold and the answer must be grounded in the observations."""
    run = Execution()
    before = final_state(env)
    for i, action in enumerate(blueprint["actions"]):
        arguments = fill_arguments(action["arguments"], run.observations)
        observation = run_tool(action["tool"], arguments, env, tools)
        if observation.error:
            run.problem = f"action {i} ({action['tool']} {json.dumps(arguments)}) failed: {observation.content[:300]}"
            return run
        after = final_state(env)
        run.observations.append(observation.content)
        run.arguments.append(arguments)
        run.changed.append(after != before)
        before = after
    run.state = before
    run.problem = state_problem(blueprint.get("state_changes") or {}, run.state)
    if run.problem is None:
        run.answer, run.tolerance, run.problem = grounded_answer(blueprint["answer"], run.observations)
    return run


def state_problem(changes: dict, state: dict) -> str | None:
    for path, expected in changes.items():
        try:
            actual = dotted_get(state, path)
        except KeyError as missing:
            return f"state_changes: {path}: the final state has no {missing.args[0]!r}"
        if actual != expected:
            return f"state_changes: {path} is {json.dumps(actual)} after the actions, not {json.dumps(expected)}"
    return None


def grounded_answer(stated, observations: list[str]) -> tuple[object, float | None, str | None]:
    """(ground-truth answer, tolerance, None) when `stated` is grounded in the observations, else (None, None, why).

    A numeric answer matches a number an observation states, to the precision given ('3.33' matches 3.3333):
    the ground truth is the observed value, with the stated precision as tolerance. Text must appear in an
    observation (up to case and whitespace)."""
    text = str(stated).strip()
    numeric = _NUMERIC_ANSWER.fullmatch(text)
    if numeric:
        value = float(text.replace("$", "").replace(",", "").replace(" ", ""))
        decimals = len(numeric.group(1) or "")
        tolerance = 0.5 * 10 ** -decimals + 1e-9
        for observation in observations:
            for match in _NUMBER.finditer(observation.replace("$", "")):
                observed = float(match.group(0).replace(",", ""))
                if abs(observed - value) <= tolerance:
                    answer = int(observed) if observed.is_integer() else observed
                    return answer, (tolerance if decimals or not observed.is_integer() else None), None
        return None, None, f"answer {text!r}: no observation states this number"
    wanted = normalize_text(text)
    if any(wanted and wanted in normalize_text(o) for o in observations):
        return text, None, None
    return None, None, f"answer {text!r}: no observation contains it"


def render(blueprint: dict, run: Execution) -> str:
    """What a reviewer reads: the instruction, each action with its real observation, the answer."""
    lines = [f"INSTRUCTION (what the user asks):\n{blueprint['instruction']}", "GROUND-TRUTH ACTIONS, AS EXECUTED:"]
    for i, (action, arguments, observation) in enumerate(zip(blueprint["actions"], run.arguments, run.observations)):
        shown = observation if len(observation) <= MAX_OBSERVATION_CHARS_SHOWN else observation[:MAX_OBSERVATION_CHARS_SHOWN] + " ..."
        lines += [f"[{i}] {action['tool']} {json.dumps(arguments, ensure_ascii=False)}", f"[{i}] observation: {shown}"]
    lines.append(f"EXPECTED ANSWER: {blueprint['answer']}")
    if blueprint.get("state_changes"):
        lines.append(f"EXPECTED STATE CHANGES: {json.dumps(blueprint['state_changes'], ensure_ascii=False)}")
    return "\n".join(lines)


def task_content(blueprint: dict, run: Execution, example: dict, domain: str | None, model: str, meta: dict) -> dict:
    """The task row content (no id or provenance) for a validated blueprint."""
    ground_truth = {"answer": run.answer,
                    "actions": [{"tool": a["tool"], "arguments": args, "changes_state": changed}
                                for a, args, changed in zip(blueprint["actions"], run.arguments, run.changed)]}
    if run.tolerance is not None:
        ground_truth["tolerance"] = run.tolerance
    if run.state:
        ground_truth["final_state"] = run.state
    steps = [{"thought": a["thought"].strip() or f"I call {a['tool']}.", "tool": a["tool"], "arguments": a["arguments"]}
             for a in blueprint["actions"]]
    return {
        "domain": domain or example["domain"],
        "source": f"llm:{model}",
        "instruction": blueprint["instruction"].strip(),
        "tools": list(example["tools"]),
        "environment": example["environment"],
        "ground_truth": ground_truth,
        "solution": {"steps": steps, "answer": str(blueprint["answer"]).strip()},
        "difficulty": max(1, min(10, len(steps))),
        "meta": meta,
    }
