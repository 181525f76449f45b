"""What a trajectory format is: a system prompt, how an action becomes an assistant message, how an
observation becomes a message, and how an assistant message is parsed back into an action.

Parsers tolerate whitespace but never invent content: a reply that does not fit the format raises
FormatError, which the agent loop records on the row.
"""

from dataclasses import dataclass, field
from typing import Callable

from pipeline.jsonutil import canonical_json


class FormatError(ValueError):
    """A reply that does not follow its format."""


@dataclass
class Action:
    """One parsed step: a tool call or a final answer, with the thought that led to it. A function-calling
    turn with several tool calls is one Action whose `parallel` holds one Action per call (the thought is
    the turn's; each call has its own tool, arguments and id)."""

    thought: str | None
    tool: str | None = None
    arguments: dict = field(default_factory=dict)
    final_answer: str | None = None
    tool_call_id: str | None = None
    parallel: list["Action"] | None = None

    @property
    def is_final(self) -> bool:
        return self.final_answer is not None

    def calls(self) -> list["Action"]:
        """The tool calls of this turn, in order: the parallel calls, or the action itself."""
        return list(self.parallel) if self.parallel else [self]

    def arguments_json(self) -> str:
        return canonical_json(self.arguments)


@dataclass(frozen=True)
class Completion:
    """How a base model is driven in completion mode: `prompt(messages, tools)` renders the episode so far as
    a few-shot text prompt ending in `prefix`, which the model continues until one of `stop`. The row's
    assistant message is `prefix` + the generated text, stripped."""

    prompt: Callable[[list[dict], list[dict]], str]
    prefix: str
    stop: list[str]


@dataclass(frozen=True)
class Format:
    """`action_type` is what the steps record for a non-final action (`tool_call`, or `code` for CodeAct);
    `plan_action` turns a tool call of a solution program into this format's action (CodeAct writes it as code)."""

    name: str
    system_prompt: Callable[[list[dict]], str]
    action_message: Callable[[Action], dict]
    observation_message: Callable[[str, Action], dict]
    parse_message: Callable[[dict], Action]
    action_type: str = "tool_call"
    plan_action: Callable[[Action], Action] = lambda action: action
    completion: Completion | None = None  # None: the format cannot drive a completion-mode endpoint
    native_tools: bool = False  # tools go to the API as `tools`, replies carry `tool_calls`


def describe_tools(tools: list[dict]) -> str:
    """Tool list for text formats: one line per tool with its JSON parameters."""
    lines = []
    for spec in tools:
        fn = spec["function"]
        lines.append(f"- {fn['name']}: {fn.get('description', '')} Parameters: {canonical_json(fn['parameters'])}")
    return "\n".join(lines)


def text_observation(observation: str, action: Action) -> dict:
    """Text formats feed the observation back as a user turn."""
    return {"role": "user", "content": f"Observation: {observation}"}
