"""An MCP server as an environment: its tools, listed at open, become ordinary tools `<environment>.<tool>`.

```yaml
environments:
  inv:
    mcp:
      command: [python, examples/inventory_server.py]   # stdio; or url: http://127.0.0.1:8000/mcp
      isolation: per_episode        # a fresh server (stdio) or MCP session (HTTP) per episode; or shared
      reset_tool: reset             # optional: called at the start of every episode (hidden from the agent)
      snapshot_tool: snapshot       # optional: the server's state as JSON, the row's final state (hidden)
```
`per_episode` keeps stateful stdio servers from leaking state between episodes (at most `max_sessions` at
once); `shared` keeps one session for the stage. A server whose state outlives a session (any HTTP server,
a shared one) is isolated by its `reset_tool`, and the episodes that use it then run one at a time, so a reset
never lands in the middle of another episode. `${NAME}` in `env` and `headers` values is replaced
by the environment variable NAME, so keys stay out of configs and rows; `${TRAJFORGE_EPISODE_DIR}` in `command`
or `env` is a fresh folder per stdio server, for servers that keep their state in files.
"""

import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from pipeline.environments.base import Environment
from pipeline.environments.mcp_client import Connection
from pipeline.errors import UserError
from pipeline.tools.base import EnvironmentDown, EnvironmentLost, Observation

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


SCRATCH_VARIABLE = "TRAJFORGE_EPISODE_DIR"


def expand(where: str, value: str, scratch: Path | None = None) -> str:
    """`${NAME}` -> the environment variable NAME; `${TRAJFORGE_EPISODE_DIR}` -> the connection's own scratch folder."""
    def variable(match):
        name = match.group(1)
        if name == SCRATCH_VARIABLE and scratch is not None:
            return str(scratch)
        if name not in os.environ:
            raise UserError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(variable, value)


class McpEnvironment(Environment):
    def __init__(self, name: str, spec: dict, log_dir: Path | None):
        super().__init__()
        self.name, self.spec = name, spec
        self.where = f"environments.{name}.mcp"
        self.log_path = log_dir / f"{name}.log" if log_dir is not None and "command" in spec else None
        self.hidden = {spec.get("reset_tool"), spec.get("snapshot_tool")} - {None}
        self.stateful = "snapshot_tool" in spec
        self.shared: Connection | None = None
        self._slot = None
        if "command" in spec:
            self.source = "mcp stdio: " + " ".join(spec["command"])
        else:
            self.source = "mcp http: " + spec["url"]

    @property
    def label(self) -> str:
        return f"environment '{self.name}' ({self.source.split(': ', 1)[1]})"

    def target(self, scratch: Path | None) -> dict:
        spec = self.spec
        if "url" in spec:
            headers = {key: expand(f"{self.where}.headers.{key}", value) for key, value in spec.get("headers", {}).items()}
            return {"url": spec["url"], "headers": headers, "timeout_s": spec["call_timeout_s"]}
        command = [expand(f"{self.where}.command", part, scratch) for part in spec["command"]]
        if command[0] in ("python", "python3"):  # the server runs on trajforge's interpreter (and its mcp SDK)
            command[0] = sys.executable
        env = {key: expand(f"{self.where}.env.{key}", value, scratch) for key, value in spec.get("env", {}).items()}
        return {"command": command[0], "args": command[1:], "env": env, "cwd": spec.get("cwd")}

    def connect(self) -> Connection:
        """A new session; a stdio server gets its own scratch folder (`${TRAJFORGE_EPISODE_DIR}` in its command
        or env: a server that keeps state in files is isolated per episode too), removed when it closes."""
        scratch = Path(tempfile.mkdtemp(prefix=f"trajforge-{self.name}-")) if "command" in self.spec else None
        return Connection(self.label, self.target(scratch), self.spec["startup_timeout_s"], self.log_path, scratch).open()

    def open(self) -> None:
        connection = self.connect()
        try:
            listed = connection.list_tools(self.spec["call_timeout_s"])
        except Exception:
            connection.close()
            raise
        try:
            self._add_tools(listed)
        finally:
            if self.spec["isolation"] == "shared":
                self.shared = connection
            else:
                connection.close()

    def _add_tools(self, listed: list) -> None:
        names = {tool.name for tool in listed}
        wanted = self.spec.get("tools")
        read_only = set(self.spec.get("read_only_tools", []))
        asked = {key: {self.spec[key]} for key in ("reset_tool", "snapshot_tool") if key in self.spec}
        for field, tools in {**asked, "tools": set(wanted or []), "read_only_tools": read_only}.items():
            missing = sorted(tools - names)
            if missing:
                raise UserError(f"{self.where}.{field}: the server has no tool '{missing[0]}' (it lists: {', '.join(sorted(names)) or 'none'})")
        for tool in listed:
            if tool.name in self.hidden or (wanted and tool.name not in wanted):
                continue
            hint = bool(tool.annotations and tool.annotations.read_only_hint)
            quiet = tool.name in read_only or hint
            self.add_tool(tool.name, tool.description or "", tool.input_schema, self._caller(tool.name), read_only=quiet, concurrent=quiet)
        if not self.tools:
            raise UserError(f"{self.label}: the server lists no tools{' the agent may call' if names else ''}")

    def _caller(self, tool_name: str):
        return lambda arguments, env: env.resource(self.name, self.resource).call(tool_name, arguments)

    def slot(self):
        """Bound concurrent episodes: at most `max_sessions` per-episode servers or sessions at once; one episode at
        a time where a reset tool resets state other episodes would see (a shared session, or an HTTP server,
        whose state outlives the session)."""
        if self._slot is None:
            own_server = "command" in self.spec and self.spec["isolation"] == "per_episode"
            if "reset_tool" in self.spec and not own_server:
                self._slot = asyncio.Lock()
            elif self.spec["isolation"] == "per_episode":
                self._slot = asyncio.Semaphore(self.spec["max_sessions"])
        return self._slot if self._slot is not None else super().slot()

    def resource(self, env) -> "Session":
        return Session(self, env)

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
            self.shared = None


class Session:
    """One episode's use of the server: its own connection (per_episode) or the shared one, reset first when
    the environment has a reset tool (arguments: the task's `environment.<name>`, if any). A failure of its own
    connection loses this episode only (EnvironmentLost); one of the shared connection stops the stage."""

    def __init__(self, environment: McpEnvironment, env):
        self.environment, self.env = environment, env
        self.owned = environment.shared is None
        self.connection = None
        self.connection = self._lost_if_owned(environment.connect) if self.owned else environment.shared
        self.snapshot = self._snapshot if environment.stateful else None
        reset = environment.spec.get("reset_tool")
        if reset:
            arguments = env.spec.get(environment.name) or {}
            observation = self._call(reset, arguments, "reset")
            if observation.error:
                self.close()
                raise EnvironmentDown(f"{environment.label}: the reset tool '{reset}' failed: {observation.content[:300]}")

    def _lost_if_owned(self, action):
        try:
            return action()
        except EnvironmentDown as exc:
            self.close()
            if self.owned:
                raise EnvironmentLost(str(exc)) from None
            raise

    def _call(self, tool_name: str, arguments: dict, kind: str | None = None) -> Observation:
        if self.connection is None:
            raise EnvironmentLost(f"{self.environment.label}: this episode's session was closed after a failure")
        timeout = self.environment.spec["call_timeout_s"]
        observation = self._lost_if_owned(lambda: self.connection.call_tool(tool_name, arguments, timeout))
        if kind is not None and self.env.recording is not None:
            self.env.recording.write(self.environment.name, arguments, observation, 0.0, kind=kind)
        return observation

    def call(self, tool_name: str, arguments: dict) -> Observation:
        return self._call(tool_name, arguments)

    def _snapshot(self) -> dict:
        name = self.environment.spec["snapshot_tool"]
        observation = self._call(name, {}, "snapshot")
        try:
            state = json.loads(observation.content)
        except json.JSONDecodeError:
            state = None
        if observation.error or not isinstance(state, dict):
            raise EnvironmentDown(f"{self.environment.label}: the snapshot tool '{name}' did not return a JSON object: {observation.content[:200]}")
        return state

    def close(self) -> None:
        if self.owned and self.connection is not None:
            self.connection.close()
        self.connection = None
