"""What an environment is: a named source of tools (an MCP server, a Python module, a plugin) that a stage
opens once, and that each episode reaches through its Env.

An opened environment has `tools` (qualified name -> Tool, e.g. `inv.get_item`), a `source` for listings,
`slot()` (an async context an episode holds while it may use the environment: a bound on concurrent
sessions, or one episode at a time when state is reset between episodes), `resource(env)` (the episode's
handle, built on first use and closed with the episode) and `stateful` (whether its state goes into the
row's final state, through the handle's `snapshot()`).
"""

import contextlib

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from pipeline.errors import UserError
from pipeline.tools.base import Tool
from pipeline.tools.naming import qualified


def check_parameters(where: str, parameters) -> dict:
    """An input schema as OpenAI function calling needs it: a valid JSON Schema for an object. A schema that
    names no type (`{}` for a tool without arguments, as some servers list it) is read as an object."""
    if not isinstance(parameters, dict):
        raise UserError(f"{where}: the input schema is not a JSON object")
    try:
        validator_for(parameters, default=Draft202012Validator).check_schema(parameters)
    except SchemaError as exc:
        raise UserError(f"{where}: the input schema is not valid JSON Schema ({exc.message})") from None
    if "type" not in parameters:
        return {"type": "object", **parameters}
    if parameters["type"] != "object":
        raise UserError(f"{where}: the input schema must describe an object (type: object), got type {parameters['type']!r}")
    return parameters


class Environment:
    name: str = ""
    source: str = ""
    stateful: bool = False

    def __init__(self):
        self.tools: dict[str, Tool] = {}

    def add_tool(self, tool_name: str, description: str, parameters: dict, fn, read_only: bool = False, concurrent: bool = False) -> None:
        name = qualified(self.name, tool_name)
        parameters = check_parameters(f"environment '{self.name}': tool '{tool_name}'", parameters)
        self.tools[name] = Tool(name, description or "", parameters, fn, concurrent=concurrent, recorded=True, read_only=read_only,
                                source=self.source)

    def listing(self) -> list[dict]:
        """The tools as recorded beside the calls (enough to check and replay arguments offline)."""
        return [{"name": t.name, "description": t.description, "parameters": t.parameters, "read_only": t.read_only,
                 "concurrent": t.concurrent} for t in self.tools.values()]

    def open(self) -> None:
        """Start what is needed (import the module, list the server's tools); raise UserError naming the
        environment when it cannot be used."""

    def slot(self):
        return contextlib.nullcontext()

    def resource(self, env):
        raise NotImplementedError

    def close(self) -> None:
        """Stop what `open` started."""
