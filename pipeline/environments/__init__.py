"""Environments: where tools come from. The built-in tools, and the config's `environments:` (an MCP server,
a Python module, an installed plugin), opened by a stage as one Toolbox.

    async with opened(config, run_dir, "sample") as toolbox:
        async with toolbox.episode(task["tools"], task["environment"], limits...) as env:
            ...   # env.tools reaches every tool; calls to environment tools are recorded

A tool is the same thing to the agent loop, verify and replay wherever it comes from. Verify opens the
toolbox offline by default: the environments' tool listings and calls come from the run's recordings
(pipeline/environments/recordings.py) and `replay_env` answers each call from the recording.
"""

import asyncio
import dataclasses
import json
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from pipeline import plugins
from pipeline.environments.base import Environment
from pipeline.environments.mcp import McpEnvironment
from pipeline.environments.python_module import PythonEnvironment
from pipeline.environments.recordings import EpisodeRecording, Recordings
from pipeline.errors import UserError
from pipeline.tools import TOOLS, Env, EnvironmentDown, Observation
from pipeline.tools.naming import wire_name

# Resource and spec keys of the built-in tools: an environment of that name would share their state.
RESERVED = set(TOOLS) | {"documents", "search_index", "sqlite", "sqlite_setup", "store"}
FACTORIES = plugins.Registry("environments", {})


def build(name: str, spec: dict, log_dir: Path | None) -> Environment:
    if name in RESERVED:
        raise UserError(f"environments.{name}: '{name}' is a built-in tool or resource name; choose another")
    if "mcp" in spec:
        return McpEnvironment(name, spec["mcp"], log_dir)
    if "python" in spec:
        return PythonEnvironment(name, spec["python"])
    factory = FACTORIES.get(spec["plugin"])
    if factory is None:
        known = ", ".join(sorted(FACTORIES)) or "none installed"
        raise UserError(f"environments.{name}.plugin: no installed environment plugin '{spec['plugin']}' (known: {known})")
    environment = factory(name, spec.get("options", {}))
    if not isinstance(environment, Environment):
        raise UserError(f"environments.{name}.plugin: '{spec['plugin']}' did not return a pipeline.environments.base.Environment")
    environment.source = environment.source or f"{plugins.origin('environments', spec['plugin'])}: {spec['plugin']}"
    return environment


class OfflineEnvironment(Environment):
    """An environment as its recorded listing: schemas for checks, calls answered by `Toolbox.replay_env`."""

    def __init__(self, name: str, source: str, listing: list[dict], stateful: bool):
        super().__init__()
        self.name, self.source, self.stateful = name, f"{source} (recorded)", stateful
        for tool in listing:
            self.add_tool(tool["name"].split(".", 1)[1], tool["description"], tool["parameters"], self._offline,
                          read_only=tool["read_only"], concurrent=tool["concurrent"])

    def _offline(self, arguments, env):
        raise EnvironmentDown(f"environment '{self.name}' is offline (replaying from recordings); use --live to call it")


def _check_names(tools: dict) -> None:
    seen: dict[str, str] = {}
    for name in tools:
        wire = wire_name(name)
        if wire in seen:
            raise UserError(f"tools '{seen[wire]}' and '{name}' are both sent to models as '{wire}'; rename one "
                            "(two environments or tools expose the same name)")
        seen[wire] = name


class Toolbox:
    """The tools a stage can reach: the built-ins and those of its opened environments."""

    def __init__(self, environments: dict[str, Environment] | None = None, recordings: Recordings | None = None, stage: str = ""):
        self.environments = environments or {}
        self.recordings, self.stage = recordings, stage
        self.tools = dict(TOOLS)
        for environment in self.environments.values():
            self.tools.update(environment.tools)
        _check_names(self.tools)

    def unknown(self, names) -> list[str]:
        return [name for name in names if name not in self.tools]

    def check_task(self, task: dict, where: str) -> None:
        """A task naming a tool no environment has is an input error, before any work."""
        missing = self.unknown(task["tools"])
        if missing:
            known = ", ".join(sorted(n for n in self.tools if "." in n)) or "none configured"
            task_id = f" {task['id']}" if task.get("id") else ""
            raise UserError(f"{where}: task{task_id} names tool(s) {', '.join(missing)} that no environment has "
                            f"(environment tools: {known})")

    def used(self, names) -> list[Environment]:
        prefixes = {name.split(".", 1)[0] for name in names if "." in name}
        return [self.environments[p] for p in sorted(prefixes) if p in self.environments]

    def env(self, names, spec: dict, max_observation_chars: int, sandbox_limits: dict, episode: str = "", trusted_code: bool = False) -> Env:
        """`trusted_code`: the episode's code is ours, not a model's (pipeline/tools/python.py: code_is_ours)."""
        recorded = any(self.tools[n].recorded for n in names if n in self.tools)
        recording = self.recordings.writer(self.stage, episode) if self.recordings is not None and recorded else None
        env = Env(spec, max_observation_chars, sandbox_limits, trusted_code, tools=self.tools, recording=recording)
        for environment in self.used(names):
            if environment.stateful:
                env.stateful[environment.name] = lambda e, x=environment: e.resource(x.name, x.resource)
        return env

    @asynccontextmanager
    async def episode(self, names, spec: dict, max_observation_chars: int, sandbox_limits: dict, episode: str = "", trusted_code: bool = False):
        """An episode's Env, holding the slots of the environments it uses (in name order: no two episodes wait
        on each other) and closed in a thread (stopping a server takes a moment)."""
        async with AsyncExitStack() as stack:
            for environment in self.used(names):
                await stack.enter_async_context(environment.slot())
            env = self.env(names, spec, max_observation_chars, sandbox_limits, episode, trusted_code)
            try:
                yield env
            finally:
                await asyncio.to_thread(env.close)

    def replay_env(self, names, spec: dict, max_observation_chars: int, sandbox_limits: dict, recording: EpisodeRecording,
                   trusted_code: bool = False) -> Env:
        """A fresh Env in which recorded tools answer from `recording` (a call that was never recorded answers
        with an error saying so) and built-in tools run for real."""
        tools = dict(self.tools)
        for name in names:
            if name in tools and tools[name].recorded:
                tools[name] = dataclasses.replace(tools[name], fn=_answer_from(recording, name), recorded=False)
        env = Env(spec, max_observation_chars, sandbox_limits, trusted_code, tools=tools)
        for environment in self.used(names):
            if environment.stateful:
                env.stateful[environment.name] = lambda e, x=environment.name: e.resource(x, lambda _: RecordedState(recording, x))
        return env

    def close(self) -> None:
        for environment in self.environments.values():
            environment.close()
        if self.recordings is not None:
            self.recordings.close()


def _answer_from(recording: EpisodeRecording, name: str):
    def answer(arguments, env) -> Observation:
        found = recording.answer(name, arguments)
        if found is None:
            return Observation(f"Error: [replay] no recorded call of {name} with these arguments in recording {recording.attempt}", error=True)
        return found

    return answer


class RecordedState:
    """An environment's final state as recorded at the end of the episode (no `snapshot` when none was)."""

    def __init__(self, recording: EpisodeRecording, name: str):
        found = recording.answer(name, {}, kind="snapshot")
        self.state = json.loads(found.content) if found is not None else None
        self.snapshot = (lambda: self.state) if found is not None else None


def open_toolbox(config, run_dir: Path | None, stage: str, live: bool = True) -> Toolbox:
    """The stage's toolbox. Live: every environment is opened (servers started, modules imported, tools
    listed) and its listing saved beside the recordings; offline: the listings come from the recordings."""
    specs = config["environments"]
    recordings = Recordings.open(run_dir) if run_dir is not None and specs else None
    log_dir = Path(run_dir) / "environments" if run_dir is not None else None
    opened: dict[str, Environment] = {}
    try:
        for name, spec in specs.items():
            if live:
                environment = build(name, spec, log_dir)
                environment.open()
                if recordings is not None:
                    recordings.save_listing(name, environment.source, environment.listing())
            else:
                environment = _offline(name, recordings, run_dir)
            opened[name] = environment
        return Toolbox(opened, recordings, stage)
    except BaseException:
        for environment in opened.values():
            environment.close()
        if recordings is not None:
            recordings.close()
        raise


def _offline(name: str, recordings: Recordings | None, run_dir) -> OfflineEnvironment:
    listed = recordings.listing(name) if recordings is not None else None
    if listed is None:
        raise UserError(f"environments.{name}: no recorded tool listing in {Path(run_dir or '.') / 'recordings.sqlite'} "
                        "(sample this run first, or verify --live against the environment)")
    return OfflineEnvironment(name, listed[0], listed[1], stateful=True)  # a state is replayed if one was recorded


@asynccontextmanager
async def opened(config, run_dir, stage: str, live: bool = True):
    """`open_toolbox` for a stage's duration, opened and closed in a thread (servers take a moment)."""
    toolbox = await asyncio.to_thread(open_toolbox, config, run_dir, stage, live)
    try:
        yield toolbox
    finally:
        await asyncio.to_thread(toolbox.close)


__all__ = ["Environment", "Recordings", "Toolbox", "open_toolbox", "opened"]
