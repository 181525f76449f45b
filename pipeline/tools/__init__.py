"""The tool registry: names used by tasks and configs -> Tool."""

from pipeline.tools import calculator, convert, date, lookup, python, search, sql, store
from pipeline.tools.base import Env, Observation, Tool

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (calculator.TOOL, sql.TOOL, lookup.TOOL, convert.TOOL, date.TOOL)}
TOOLS.update({tool.name: tool for tool in (python.TOOL, search.TOOL, *store.TOOLS)})

# Stateful environments: spec key -> how to open it. Their state after an episode is the row's final state.
STATEFUL = {"store": store.store_of}


def run_tool(name: str, arguments, env: Env, allowed: list[str] | None = None) -> Observation:
    """Run a tool by name, if it is one of `allowed` (default: any registered tool); an unknown or
    disallowed name is an error observation, like any other bad action."""
    offered = list(allowed) if allowed is not None else sorted(TOOLS)
    if name not in offered or name not in TOOLS:
        return Observation(f"Error: unknown tool {name!r}; available: {', '.join(offered)}", error=True)
    return TOOLS[name].run(arguments, env)


def run_action(action_type: str, name: str | None, arguments, env: Env, allowed: list[str]) -> Observation:
    """Execute one action of a trajectory. A `code` action (CodeAct) runs in the episode's sandboxed
    interpreter with the allowed tools offered inside as Python functions; anything else is a tool call."""
    if action_type == "code":
        problems = TOOLS["python"].argument_errors(arguments)
        if problems:
            return Observation("Error: invalid code action: " + "; ".join(problems), error=True)
        return python.run_code(arguments["code"], env, {n: TOOLS[n] for n in allowed if n in TOOLS and n != "python"})
    return run_tool(name, arguments, env, allowed)


def final_state(env: Env) -> dict:
    """The state of the task's stateful environments after an episode, including ones no action touched."""
    for key, open_environment in STATEFUL.items():
        if key in env.spec:
            open_environment(env)
    return env.snapshot()


def specs(names: list[str]) -> list[dict]:
    return [TOOLS[name].spec() for name in names]


__all__ = ["TOOLS", "STATEFUL", "Env", "Observation", "Tool", "final_state", "run_action", "run_tool", "specs"]
