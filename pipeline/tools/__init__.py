"""The tool registry: names used by tasks and configs -> Tool."""

from pipeline.tools import calculator, convert, date, lookup, sql
from pipeline.tools.base import Env, Observation, Tool

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (calculator.TOOL, sql.TOOL, lookup.TOOL, convert.TOOL, date.TOOL)}


def run_tool(name: str, arguments, env: Env, allowed: list[str] | None = None) -> Observation:
    """Run a tool by name, if it is one of `allowed` (default: any registered tool); an unknown or
    disallowed name is an error observation, like any other bad action."""
    offered = list(allowed) if allowed is not None else sorted(TOOLS)
    if name not in offered or name not in TOOLS:
        return Observation(f"Error: unknown tool {name!r}; available: {', '.join(offered)}", error=True)
    return TOOLS[name].run(arguments, env)


def specs(names: list[str]) -> list[dict]:
    return [TOOLS[name].spec() for name in names]


__all__ = ["TOOLS", "Env", "Observation", "Tool", "run_tool", "specs"]
