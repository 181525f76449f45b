"""Run Python code in the sandbox (see sandbox.py and docs/tools.md).

One interpreter per episode, kept between calls like a notebook: a later call sees the variables, functions
and imports of earlier ones. The observation is what the code printed (stdout, then stderr marked as such),
then the value of a final expression (as in a REPL) or the traceback. A traceback, a timeout, a limit or a
crash makes an error observation; the trajectory and the run go on.
"""

from pipeline.errors import UserError
from pipeline.tools import limits, sandbox
from pipeline.tools.base import Env, Observation, Tool, truncate
from pipeline.tools.sandbox import CellResult, Sandbox

MAX_CODE_CHARS = 20000


class SandboxRefused(UserError):
    """Model-written code was about to run where isolation is weaker than the config accepts."""


def interpreter(env: Env) -> Sandbox:
    """The episode's sandbox; refused (before anything starts) where this code may not run here."""
    sandbox_limits, allow_weak = limits.from_config(env.sandbox_limits)
    how = sandbox.detect()
    problem = how.refusal(env.trusted_code, allow_weak)
    if problem is not None:
        raise SandboxRefused(problem)
    return Sandbox(sandbox_limits, how)


def code_is_ours(source: str, task_source: str) -> bool:
    """Whether an episode's code was written by trajforge, not by a model: the program teacher (row source
    'program') running the solution program of a task a generator made ('program:<generator>'). A blueprint
    an LLM proposed ('llm:<model>') has a model-written solution program."""
    return source == "program" and task_source.startswith("program:")


def sandbox_report() -> dict:
    """How code is isolated on this machine, for row metadata."""
    return sandbox.detect().report()


def _stream(text: str, total_bytes: int, limit: int) -> str:
    """A stream cut to `limit` characters, saying how much the code really wrote."""
    text = text.rstrip("\n")
    if len(text) <= limit and total_bytes <= len(text.encode("utf-8", "replace")) + 1:
        return text
    note = f"\n[output truncated: the code wrote {total_bytes} bytes]"
    return text[:max(0, limit - len(note))] + note


def render(result: CellResult, limit: int) -> Observation:
    parts = []
    if result.stdout:
        parts.append(_stream(result.stdout, result.stdout_bytes, limit))
    if result.stderr:
        parts.append("[stderr]\n" + _stream(result.stderr, result.stderr_bytes, limit))
    if result.error is not None:
        parts.append(result.error)
    elif result.value is not None:
        parts.append(result.value)
    if result.failure is not None:
        parts.append(f"Error: {result.failure}")
    error = result.error is not None or result.failure is not None
    return Observation("\n".join(parts) if parts else "(no output)", error)


def run_code(code: str, env: Env, tools: dict[str, Tool] | None = None) -> Observation:
    """Run one cell in the episode's interpreter. `tools` are offered inside as Python functions taking
    keyword arguments (CodeAct): each call runs the real tool here, against this episode's environment."""
    tools = tools or {}

    def call_tool(name: str, arguments: dict) -> tuple[str, bool]:
        if name not in tools:
            return f"unknown tool {name!r}", True
        observation = tools[name].run(arguments, env)
        return observation.content.removeprefix("Error: "), observation.error

    box = env.resource("python", interpreter)
    offered = [{"name": name, "description": tool.description} for name, tool in sorted(tools.items())]
    observation = render(box.run(code, offered, call_tool), env.max_observation_chars)
    return Observation(truncate(observation.content, env.max_observation_chars), observation.error)


TOOL = Tool(
    name="python",
    description="Run Python 3 code in a sandbox (no network, no files outside the working directory). State persists "
                "between calls. Returns what the code prints and the value of its last expression.",
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "minLength": 1, "maxLength": MAX_CODE_CHARS, "description": "Python source to run."}},
        "required": ["code"],
        "additionalProperties": False,
    },
    fn=lambda args, env: run_code(args["code"], env),
)
