"""Built-in judge rubrics. A judge in the config names one (`rubric: correctness`) or writes its own
(`rubric_text: ...`). Each asks for the same structured verdict (VERDICT_SCHEMA)."""

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "passed": {"type": "boolean"},
        "score": {"enum": [1, 2, 3, 4, 5]},  # an enum, not a range: llama.cpp grammars enforce enums
        "rationale": {"type": "string", "maxLength": 600},
    },
    "required": ["passed", "score", "rationale"],
    "additionalProperties": False,
}

STEP_VERDICTS_SCHEMA = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "label": {"enum": ["good", "bad"]},
                    "score": {"enum": [1, 2, 3, 4, 5]},  # an enum, not a range: llama.cpp grammars enforce enums
                },
                "required": ["index", "label", "score"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["steps"],
    "additionalProperties": False,
}

RUBRICS = {
    "correctness": (
        "Judge CORRECTNESS: does the final answer correctly and completely answer the task? When a reference answer "
        "is given, compare with it (allow equivalent forms: rounding, units, wording). Pass only if it is correct."
    ),
    "faithfulness": (
        "Judge FAITHFULNESS TO OBSERVATIONS: are every thought and the final answer supported by what the tools "
        "actually returned? Fail if the agent invents tool results, misreads an observation, or states facts no "
        "observation supports."
    ),
    "coherence": (
        "Judge REASONING COHERENCE: does each thought follow from the task and the previous observations, and does "
        "each action follow from its thought? Fail on contradictions, non sequiturs or actions unrelated to the plan."
    ),
    "efficiency": (
        "Judge TOOL-USE EFFICIENCY: does the agent reach the answer without redundant, repeated or irrelevant tool "
        "calls? Fail if a clearly shorter sequence of calls would have done the same work."
    ),
}

STEP_RUBRIC = (
    "Judge EACH STEP of the trajectory on its own: label it 'good' if the step is a correct, useful move given what "
    "the agent knew at that point (the task and earlier observations), 'bad' if it is wrong, useless, or based on a "
    "misreading. Score each step 1 (harmful) to 5 (ideal). Return one entry per step index."
)

SYSTEM = (
    "You are a strict, careful judge of AI agent trajectories: a task, the tools the agent could call, and what the "
    "agent thought, did and observed. {rubric}\n"
    "Reply with one JSON object: {{\"passed\": true|false, \"score\": 1-5, \"rationale\": \"<one or two sentences>\"}}."
)
