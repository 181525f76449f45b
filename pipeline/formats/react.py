"""ReAct text: Thought / Action / Action Input, observations fed back as 'Observation: ...'."""

import json
import re

from pipeline.formats.base import Action, Format, FormatError, describe_tools, text_observation

STOP = ["\nObservation:", "Observation:"]

_FIELD = re.compile(r"^\s*(Thought|Action Input|Action|Final Answer)\s*:\s*", re.MULTILINE)


def system_prompt(tools: list[dict]) -> str:
    return (
        "You are an agent that solves the user's task step by step with tools.\n"
        f"Tools:\n{describe_tools(tools)}\n\n"
        "Answer in this format, one action per reply:\n"
        "Thought: <your reasoning>\nAction: <tool name>\nAction Input: <JSON object of arguments>\n"
        "You then receive 'Observation: <result>'. When you know the answer, reply:\n"
        "Thought: <your reasoning>\nFinal Answer: <the answer>"
    )


def render(action: Action) -> str:
    thought = f"Thought: {action.thought}\n" if action.thought else ""
    if action.is_final:
        return f"{thought}Final Answer: {action.final_answer}"
    return f"{thought}Action: {action.tool}\nAction Input: {json.dumps(action.arguments, ensure_ascii=False)}"


def parse(text: str) -> Action:
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    if not matches:
        raise FormatError("no 'Thought:', 'Action:' or 'Final Answer:' line")
    for match, nxt in zip(matches, matches[1:] + [None]):
        name = match.group(1)
        if name in fields:
            raise FormatError(f"'{name}:' appears more than once")
        fields[name] = text[match.end(): nxt.start() if nxt else len(text)].strip()
    thought = fields.get("Thought") or None
    if "Final Answer" in fields:
        if "Action" in fields:
            raise FormatError("reply has both 'Action:' and 'Final Answer:'")
        return Action(thought, final_answer=fields["Final Answer"])
    if "Action" not in fields:
        raise FormatError("no 'Action:' or 'Final Answer:'")
    if "Action Input" not in fields:
        raise FormatError(f"'Action: {fields['Action']}' has no 'Action Input:'")
    try:
        arguments = json.loads(fields["Action Input"])
    except json.JSONDecodeError as exc:
        raise FormatError(f"Action Input is not valid JSON: {exc.msg}") from None
    if not isinstance(arguments, dict):
        raise FormatError("Action Input must be a JSON object")
    return Action(thought, tool=fields["Action"], arguments=arguments)


FORMAT = Format(
    name="react",
    system_prompt=system_prompt,
    action_message=lambda action: {"role": "assistant", "content": render(action)},
    observation_message=text_observation,
    parse_message=lambda message: parse(message.get("content") or ""),
)
