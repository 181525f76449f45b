"""CodeAct: each step is a thought and one ```python code block; observations come back as
'Observation: ...'; the last step is a 'Final Answer:' line.

All code of an episode runs in one persistent sandboxed interpreter (the python tool's), so later blocks see
earlier variables. The task's tools are Python functions inside it, called with keyword arguments and
returning the tool's observation as a string (a failing call raises ToolCallError). Tools as functions, not
only tasks that need the python tool, because composing tool calls in code is what CodeAct is for, and it lets
the program teacher render every generator's solution program in this format: a planned tool call becomes
`print(tool(arg=...))`, whose output is exactly the tool's observation.
"""

import re

from pipeline.formats.base import Action, Format, FormatError, text_observation

_BLOCK = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
_FINAL = re.compile(r"^[ \t]*Final Answer[ \t]*:", re.MULTILINE)
_THOUGHT = re.compile(r"^\s*Thought\s*:\s*")
_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list", "object": "dict"}


def signature(spec: dict) -> str:
    """`name(arg: type, opt: type = default) -> str` from an OpenAI function schema."""
    fn = spec["function"]
    params = fn["parameters"].get("properties", {})
    required = fn["parameters"].get("required", [])
    parts = []
    for name, schema in params.items():
        kind = " | ".join(repr(v) for v in schema["enum"]) if "enum" in schema else _TYPES.get(schema.get("type"), "object")
        parts.append(f"{name}: {kind}" if name in required else f"{name}: {kind} = {schema.get('default')!r}")
    return f"{fn['name']}({', '.join(parts)}) -> str"


def system_prompt(tools: list[dict]) -> str:
    functions = "\n".join(f"- {signature(spec)}: {spec['function'].get('description', '')}" for spec in tools if spec["function"]["name"] != "python")
    return (
        "You are an agent that solves the user's task step by step by writing Python code.\n"
        "Each reply is a thought followed by exactly one code block:\n"
        "Thought: <your reasoning>\n```python\n<code>\n```\n"
        "The code runs in a persistent Python interpreter (variables survive between replies; no network). "
        "You then receive 'Observation: <what the code printed, and the value of its last expression>'.\n"
        + (f"These functions are available in the interpreter (keyword arguments only; each returns a string):\n{functions}\n" if functions else "")
        + "When you know the answer, reply:\nThought: <your reasoning>\nFinal Answer: <the answer>"
    )


def render(action: Action) -> str:
    thought = f"Thought: {action.thought}\n" if action.thought else ""
    if action.is_final:
        return f"{thought}Final Answer: {action.final_answer}"
    return f"{thought}```python\n{action.arguments['code'].strip(chr(10))}\n```"


def _thought(text: str) -> str | None:
    return _THOUGHT.sub("", text.strip(), count=1).strip() or None


def parse(text: str) -> Action:
    blocks = list(_BLOCK.finditer(text))
    final = _FINAL.search(text)
    if final and blocks:
        raise FormatError("reply has both a code block and 'Final Answer:'")
    if final:
        answer = text[final.end():].strip()
        if not answer:
            raise FormatError("'Final Answer:' is empty")
        return Action(_thought(text[:final.start()]), final_answer=answer)
    if not blocks:
        raise FormatError("no ```python code block and no 'Final Answer:' line")
    if len(blocks) > 1:
        raise FormatError(f"{len(blocks)} code blocks; write exactly one per reply")
    block = blocks[0]
    if text[block.end():].strip():
        raise FormatError("text after the code block (the observation comes from running the code)")
    code = block.group(1).strip("\n")
    if not code.strip():
        raise FormatError("the code block is empty")
    return Action(_thought(text[:block.start()]), tool="python", arguments={"code": code})


def as_code(action: Action) -> Action:
    """A planned tool call as a code action: python runs as is, any other tool is called as a function."""
    if action.is_final:
        return action
    if action.tool == "python":
        return Action(action.thought, tool="python", arguments={"code": action.arguments["code"].strip("\n")})
    call = f"{action.tool}({', '.join(f'{k}={v!r}' for k, v in action.arguments.items())})"
    return Action(action.thought, tool="python", arguments={"code": f"print({call})"})


FORMAT = Format(
    name="codeact",
    system_prompt=system_prompt,
    action_message=lambda action: {"role": "assistant", "content": render(action)},
    observation_message=text_observation,
    parse_message=lambda message: parse(message.get("content") or ""),
    action_type="code",
    plan_action=as_code,
)
