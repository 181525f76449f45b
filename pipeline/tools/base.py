"""The tool interface: a name, an OpenAI function JSON schema, and `run(arguments, env) -> Observation`.

`run` never raises for what an action does: invalid arguments, tool failures and crashes become error
observations, so a bad action ends up as data on the trajectory instead of killing a shard. A `UserError` (the
config does not allow the action here: model-written code where isolation is missing) does stop the run.
"""

import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from pipeline.errors import UserError
from pipeline.schema import field_path
from pipeline.tools.naming import wire_name

DEFAULT_MAX_OBSERVATION_CHARS = 4000
MAX_RECORDED_CHARS = 1_000_000  # what an environment tool may return before it is cut (and recorded), whatever the episode's limit


class ToolError(Exception):
    """An expected failure of a tool (bad SQL, unknown document): its message becomes the observation."""


class EnvironmentDown(UserError):
    """The server behind an environment's tools cannot serve the stage: it could not start, or a server shared
    by every episode died or hung. Not an observation (the model did nothing wrong): the stage stops with this
    one line, like a dead LLM endpoint; finished shards are kept and a re-run resumes."""

    exit_code = 3


class EnvironmentLost(Exception):
    """The environment failed one episode only: its own server died or hung, a module's function did not
    return. The episode ends with this error on its row, recorded as a transient failure, so the next run
    retries it (pipeline/llm/transient.py); the other episodes go on."""


@dataclass(frozen=True)
class Observation:
    content: str
    error: bool = False


class Env:
    """Per-episode state the tools act on: the task's environment spec and resources built from it.

    Tools fetch what they need with `resource(key, build)`, so each tool owns how its resource is made
    (a SQLite database, a document index, a sandbox) and the episode closes them all at the end.
    `sandbox_limits` is the `sample.sandbox` config section. `trusted_code` says the episode's code was written
    by trajforge itself (python.code_is_ours); by default it is taken to be model-written.
    """

    def __init__(self, spec: dict | None = None, max_observation_chars: int = DEFAULT_MAX_OBSERVATION_CHARS,
                 sandbox_limits: dict | None = None, trusted_code: bool = False, tools: dict | None = None, recording=None):
        self.spec = spec or {}
        self.max_observation_chars = max_observation_chars
        self.sandbox_limits = sandbox_limits or {}
        self.trusted_code = trusted_code
        self.tools = tools  # name -> Tool the episode can reach; None: the built-in tools
        self.recording = recording  # where calls to recorded tools are written (environments/recordings.py)
        self.stateful: dict[str, Callable[["Env"], object]] = {}  # environments whose state the row records
        self._resources: dict = {}
        self._lock = threading.RLock()  # parallel tool calls of one episode run in threads

    def resource(self, key: str, build: Callable[["Env"], object]):
        with self._lock:
            if key not in self._resources:
                self._resources[key] = build(self)
            return self._resources[key]

    def snapshot(self) -> dict:
        """The state of the episode's stateful resources (those with a `snapshot()`), as plain JSON, keyed like
        the environment spec: what verification compares with a task's `ground_truth.final_state`."""
        return {key: value.snapshot() for key, value in sorted(self._resources.items()) if callable(getattr(value, "snapshot", None))}

    def close(self) -> None:
        with self._lock:
            resources = list(self._resources.values())
            self._resources.clear()
        for value in resources:
            close = getattr(value, "close", None)
            if callable(close):
                close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class Tool:
    """`fn` returns the observation text, or an Observation when the tool itself decides it is an error
    (the python tool: a traceback is an error observation with the code's output kept).

    `name` is what tasks and steps use (`calculator`, `inv.get_item`); models see `wire_name`. `concurrent`:
    calls may run at the same time as the episode's other calls (parallel tool calls). `recorded`: the tool is
    not a deterministic built-in, so its calls are recorded and replay compares with the recording.
    `read_only`: the tool changes nothing (what blueprint exploration may call). `source` says where it
    comes from (`trajforge list tools`)."""

    name: str
    description: str
    parameters: dict
    fn: Callable[[dict, Env], "str | Observation"] = field(repr=False)
    concurrent: bool = False
    recorded: bool = False
    read_only: bool = False
    source: str = "builtin"

    @property
    def wire_name(self) -> str:
        return wire_name(self.name)

    def spec(self) -> dict:
        """The OpenAI function tool schema, under the name models see."""
        return {"type": "function", "function": {"name": self.wire_name, "description": self.description, "parameters": self.parameters}}

    @cached_property
    def _validator(self):
        """The validator of the schema's own dialect (`$schema`: MCP servers often list draft-07), else 2020-12."""
        return validator_for(self.parameters, default=Draft202012Validator)(self.parameters)

    def argument_errors(self, arguments) -> list[str]:
        if not isinstance(arguments, dict):
            return [f"arguments must be a JSON object, got {type(arguments).__name__}"]
        return [f"{field_path(e.absolute_path) if e.absolute_path else 'arguments'}: {e.message}" for e in self._validator.iter_errors(arguments)]

    def run(self, arguments, env: Env) -> Observation:
        problems = self.argument_errors(arguments)
        if problems:
            return Observation(f"Error: invalid arguments for {self.name}: " + "; ".join(problems), error=True)
        began = time.perf_counter()
        observation = self._call(arguments, env)
        if self.recorded:  # what the tool said, before the episode's output limit, so replay cuts it the same way
            observation = Observation(truncate(observation.content, MAX_RECORDED_CHARS), observation.error)
            if env.recording is not None:
                env.recording.write(self.name, arguments, observation, time.perf_counter() - began)
        return Observation(truncate(observation.content, env.max_observation_chars), observation.error)

    def _call(self, arguments: dict, env: Env) -> Observation:
        try:
            content = self.fn(arguments, env)
        except EnvironmentLost:
            raise
        except ToolError as exc:
            return Observation(f"Error: {exc}", error=True)
        except UserError:
            raise
        except Exception as exc:  # a crash inside a tool is data about the action, not a reason to stop the run
            return Observation(f"Error: {self.name} failed: {type(exc).__name__}: {exc}", error=True)
        return content if isinstance(content, Observation) else Observation(str(content))


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[truncated: {len(text) - limit} more characters]"
