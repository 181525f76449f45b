"""The tool registry: names used by tasks and configs -> Tool."""

from pipeline.tools import calculator, convert, date, lookup, sql
from pipeline.tools.base import Env, Observation, Tool

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (calculator.TOOL, sql.TOOL, lookup.TOOL, convert.TOOL, date.TOOL)}


def run_tool(name: str, arguments, env: Env) -> Observation:
    """Run a tool by name; an unknown name is an error observation, like any other bad action."""
    tool = TOOLS.get(name)
    if tool is None:
        return Observation(f"Error: unknown tool {name!r}; available: {', '.join(sorted(TOOLS))}", error=True)
    return tool.run(arguments, env)


def specs(names: list[str]) -> list[dict]:
    return [TOOLS[name].spec() for name in names]


__all__ = ["TOOLS", "Env", "Observation", "Tool", "run_tool", "specs"]
