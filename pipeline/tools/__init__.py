"""The built-in tool registry (names used by tasks and configs -> Tool) and how an action is run.

An episode's `Env` may reach more tools than the built-ins: those of the config's environments
(pipeline/environments/), set as `env.tools` by the stage. Everything here looks tools up there.
"""

from pipeline.tools import calculator, convert, date, lookup, python, search, sql, store
from pipeline.tools.base import Env, EnvironmentDown, EnvironmentLost, Observation, Tool
from pipeline.tools.naming import wire_name

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (calculator.TOOL, sql.TOOL, lookup.TOOL, convert.TOOL, date.TOOL)}
TOOLS.update({tool.name: tool for tool in (python.TOOL, search.TOOL, *store.TOOLS)})

# Stateful environments: spec key -> how to open it. Their state after an episode is the row's final state.
STATEFUL = {"store": store.store_of}


def available(env: Env) -> dict[str, Tool]:
    """The tools an episode can reach: its environments' and the built-ins, or the built-ins alone."""
    return TOOLS if env.tools is None else env.tools


def run_tool(name: str, arguments, env: Env, allowed: list[str] | None = None) -> Observation:
    """Run a tool by name, if it is one of `allowed` (default: any tool the episode can reach); an unknown or
    disallowed name is an error observation, like any other bad action."""
    tools = available(env)
    offered = list(allowed) if allowed is not None else sorted(tools)
    if name not in offered or name not in tools:
        return Observation(f"Error: unknown tool {name!r}; available: {', '.join(map(wire_name, offered))}", error=True)
    return tools[name].run(arguments, env)


def run_action(action_type: str, name: str | None, arguments, env: Env, allowed: list[str]) -> Observation:
    """Execute one action of a trajectory. A `code` action (CodeAct) runs in the episode's sandboxed
    interpreter with the allowed tools offered inside as Python functions (under their wire names, which are
    identifiers); anything else is a tool call."""
    if action_type == "code":
        problems = TOOLS["python"].argument_errors(arguments)
        if problems:
            return Observation("Error: invalid code action: " + "; ".join(problems), error=True)
        tools = available(env)
        offered = {wire_name(n): tools[n] for n in allowed if n in tools and n != "python"}
        return python.run_code(arguments["code"], env, offered)
    return run_tool(name, arguments, env, allowed)


def final_state(env: Env) -> dict:
    """The state of the task's stateful environments after an episode, including ones no action touched."""
    for key, open_environment in STATEFUL.items():
        if key in env.spec:
            open_environment(env)
    for open_environment in env.stateful.values():
        open_environment(env)
    return env.snapshot()


def specs(names: list[str], tools: dict[str, Tool] | None = None) -> list[dict]:
    tools = TOOLS if tools is None else tools
    return [tools[name].spec() for name in names]


__all__ = ["TOOLS", "STATEFUL", "Env", "EnvironmentDown", "EnvironmentLost", "Observation", "Tool", "available", "final_state", "run_action",
           "run_tool", "specs"]
