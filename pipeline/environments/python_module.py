"""A Python module as an environment: its tools are plain functions.

```yaml
environments:
  shop:
    python: {module: shop_tools, path: examples}   # `path` is put on sys.path first (optional)
```
The module lists its tools in `TOOLS` (functions, or dicts {"function", "name", "description", "parameters",
"read_only"} to give a schema explicitly), or marks them with `@tool` from this module; the schema comes from
type hints and the docstring (pipeline/environments/signatures.py). A tool returns the observation (a string;
anything else is written as JSON) and raises to report an error (its message becomes an error observation).

State: when the module has `make_state(spec)`, each episode (`isolation: per_episode`, the default) or the
whole stage (`shared`) gets `make_state(<the task's environment.<name>, or {}>)`, passed to every tool whose
first parameter is named `state`; a state with `snapshot()` (plain JSON) is the row's final state under the
environment's name. Calls run in a thread with a timeout (`call_timeout_s`): a function that does not return
in time loses the episode (EnvironmentLost: its row is a transient failure the next run retries), as a hung
per-episode server does.
"""

import importlib
import json
import sys
import threading
import time
from pathlib import Path

from pipeline.environments.base import Environment
from pipeline.environments.signatures import function_schema, takes_state
from pipeline.errors import UserError
from pipeline.tools.base import EnvironmentDown, EnvironmentLost, Observation, ToolError

MARK = "__trajforge_tool__"


def tool(fn=None, *, name: str | None = None, description: str | None = None, parameters: dict | None = None, read_only: bool = False):
    """Mark a function as a tool: `@tool` or `@tool(read_only=True, parameters={...})`."""
    def mark(function):
        setattr(function, MARK, {"name": name, "description": description, "parameters": parameters, "read_only": read_only})
        return function

    return mark(fn) if fn is not None else mark


def _entries(module) -> list[dict]:
    """The module's tools as {"function", "name", "description", "parameters", "read_only"}."""
    listed = getattr(module, "TOOLS", None)
    if listed is None:
        listed = [value for value in vars(module).values() if callable(value) and hasattr(value, MARK)]
    entries = []
    for item in listed:
        if isinstance(item, dict):
            entries.append(dict(item))
        elif callable(item):
            entries.append({"function": item, **{k: v for k, v in getattr(item, MARK, {}).items() if v is not None}})
        else:
            raise UserError(f"{module.__name__}.TOOLS: {item!r} is neither a function nor a dict with a 'function'")
    return entries


def _call_with_timeout(fn, args: tuple, kwargs: dict, timeout_s: float, label: str):
    """`fn(*args, **kwargs)` in a daemon thread, so a function that never returns cannot hang the stage."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"trajforge-{label}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise EnvironmentLost(f"{label} did not return within {timeout_s:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class PythonEnvironment(Environment):
    def __init__(self, name: str, spec: dict):
        super().__init__()
        self.name, self.spec = name, spec
        self.where = f"environments.{name}.python"
        self.source = f"python module: {spec['module']}"
        self.module = None
        self.shared_state = None

    def open(self) -> None:
        if self.spec.get("path"):
            folder = str(Path(self.spec["path"]).resolve())
            if folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            self.module = importlib.import_module(self.spec["module"])
        except Exception as exc:
            raise UserError(f"{self.where}.module: cannot import '{self.spec['module']}' ({type(exc).__name__}: {exc})") from None
        self.stateful = callable(getattr(self.module, "make_state", None))
        for entry in _entries(self.module):
            self._add(entry)
        if not self.tools:
            raise UserError(f"{self.where}: module '{self.spec['module']}' has no tools (list them in TOOLS or mark them with @tool)")
        if self.stateful and self.spec["isolation"] == "shared":
            self.shared_state = self._make_state({})

    def _add(self, entry: dict) -> None:
        fn = entry.get("function")
        if not callable(fn):
            raise UserError(f"{self.where}: a TOOLS entry has no callable 'function' ({entry!r})")
        described, inferred = function_schema(fn)
        tool_name = entry.get("name") or fn.__name__
        if tool_name in {t.rsplit(".", 1)[1] for t in self.tools}:
            raise UserError(f"{self.where}: module '{self.spec['module']}' has two tools named '{tool_name}'")
        read_only = bool(entry.get("read_only"))
        self.add_tool(tool_name, entry.get("description") or described, entry.get("parameters") or inferred,
                      self._caller(fn, tool_name), read_only=read_only, concurrent=read_only)

    def _make_state(self, spec: dict):
        try:
            return self.module.make_state(spec)
        except Exception as exc:
            raise EnvironmentDown(f"{self.where}: make_state failed ({type(exc).__name__}: {exc})") from None

    def _caller(self, fn, tool_name: str):
        with_state = takes_state(fn)
        label = f"environment '{self.name}': tool '{tool_name}'"

        def call(arguments: dict, env) -> Observation:
            state = env.resource(self.name, self.resource).state if with_state else None
            args = (state,) if with_state else ()
            try:
                return Observation(as_text(_call_with_timeout(fn, args, arguments, self.spec["call_timeout_s"], label)))
            except (EnvironmentDown, EnvironmentLost, ToolError):
                raise
            except Exception as exc:  # the module's way of saying the call was wrong
                raise ToolError(str(exc) or type(exc).__name__) from None

        return call

    def resource(self, env) -> "ModuleState":
        if not self.stateful:
            return ModuleState(self, env, None)
        state = self.shared_state if self.shared_state is not None else self._make_state(env.spec.get(self.name) or {})
        return ModuleState(self, env, state)


class ModuleState:
    """An episode's state of a module environment; `snapshot` when the state has one (recorded as such)."""

    def __init__(self, environment: PythonEnvironment, env, state):
        self.environment, self.env, self.state = environment, env, state
        self.snapshot = self._snapshot if callable(getattr(state, "snapshot", None)) else None

    def _snapshot(self) -> dict:
        began = time.perf_counter()
        value = self.state.snapshot()
        if self.env.recording is not None:
            self.env.recording.write(self.environment.name, {}, Observation(as_text(value)), time.perf_counter() - began, kind="snapshot")
        return json.loads(as_text(value))
