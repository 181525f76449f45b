"""ReAct text: Thought / Action / Action Input, observations fed back as 'Observation: ...'."""

import json
import re

from pipeline.formats import demos
from pipeline.formats.base import Action, Completion, Format, FormatError, describe_tools, text_observation

STOP = ["\nObservation:", "Observation:", "\nQuestion:"]

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


def completion_prompt(messages: list[dict], tools: list[dict]) -> str:
    """The original ReAct prompt for base models: the format, worked demonstrations for the task's tools
    (observations from the real tools), then the question and the episode so far, ending in 'Thought:'."""
    names = [spec["function"]["name"] for spec in tools]
    parts = [
        "Answer the question step by step, using tools.\nTools:\n" + describe_tools(tools) + "\n\n"
        "Use this format:\nThought: your reasoning\nAction: the tool name\nAction Input: a JSON object of arguments\n"
        "Observation: the tool's result\n... (Thought, Action, Action Input and Observation repeat as needed)\n"
        "Thought: I now know the answer\nFinal Answer: the answer\n"
    ]
    for name in demos.choose(names):
        demo = demos.DEMOS[name]
        steps = [f"{render(action)}\nObservation: {observation}" for action, observation in zip(demo.actions, demos.observed(name))]
        parts.append("\n".join([f"Question: {demo.question}", *steps, render(demo.final)]) + "\n")
    episode = [f"Question: {messages[1]['content']}"] + [m["content"] for m in messages[2:]]
    return "\n".join(parts) + "\n" + "\n".join(episode) + "\nThought:"


FORMAT = Format(
    name="react",
    system_prompt=system_prompt,
    action_message=lambda action: {"role": "assistant", "content": render(action)},
    observation_message=text_observation,
    parse_message=lambda message: parse(message.get("content") or ""),
    completion=Completion(prompt=completion_prompt, prefix="Thought:", stop=STOP),
)
