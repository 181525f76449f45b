"""CoTA: one JSON object per step, {"thought", "tool", "arguments"} or {"thought", "final_answer"}."""

import json

from pipeline.formats.base import Action, Format, FormatError, describe_tools, text_observation


def system_prompt(tools: list[dict]) -> str:
    return (
        "You are an agent that solves the user's task step by step with tools.\n"
        f"Tools:\n{describe_tools(tools)}\n\n"
        "Reply with exactly one JSON object per turn, either a tool call\n"
        '{"thought": "<your reasoning>", "tool": "<tool name>", "arguments": {<arguments>}}\n'
        "after which you receive 'Observation: <result>', or, when you know the answer,\n"
        '{"thought": "<your reasoning>", "final_answer": "<the answer>"}'
    )


def render(action: Action) -> str:
    if action.is_final:
        body = {"thought": action.thought, "final_answer": action.final_answer}
    else:
        body = {"thought": action.thought, "tool": action.tool, "arguments": action.arguments}
    return json.dumps(body, ensure_ascii=False)


def parse(text: str) -> Action:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        body = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise FormatError(f"reply is not one JSON object: {exc.msg} at char {exc.pos}") from None
    if not isinstance(body, dict):
        raise FormatError("reply must be a JSON object")
    thought = body.get("thought")
    if thought is not None and not isinstance(thought, str):
        raise FormatError("'thought' must be a string")
    if "final_answer" in body:
        if "tool" in body:
            raise FormatError("reply has both 'tool' and 'final_answer'")
        answer = body["final_answer"]
        return Action(thought, final_answer=answer if isinstance(answer, str) else json.dumps(answer))
    if not isinstance(body.get("tool"), str) or not body["tool"]:
        raise FormatError("reply needs a string 'tool' or a 'final_answer'")
    arguments = body.get("arguments", {})
    if not isinstance(arguments, dict):
        raise FormatError("'arguments' must be a JSON object")
    return Action(thought, tool=body["tool"], arguments=arguments)


FORMAT = Format(
    name="cota",
    system_prompt=system_prompt,
    action_message=lambda action: {"role": "assistant", "content": render(action)},
    observation_message=text_observation,
    parse_message=lambda message: parse(message.get("content") or ""),
)
