"""A sandboxed, persistent Python interpreter: the python tool and CodeAct run model-written code in it.

One `Sandbox` is one interpreter for one episode (an `Env` resource, closed with the episode). Each `run` is a
cell: its stdout, stderr, the value of its last expression and its traceback come back as a `CellResult`. A
cell that runs past the wall-clock timeout, exceeds a limit, kills its interpreter, leaves a thread running or
breaks the control channel ends with `failure` set; the sandbox is then stopped and the next cell gets a
fresh one. How the sandbox is isolated is decided by `detect()` (isolation.py has the mechanisms); the
process itself is launch.py's, started ahead by pool.py. The limits are enforced as:

- wall clock: the host stops waiting and kills every process of the sandbox (cgroup, process group, and the
  pid namespace, which dies with its first process); tool calls from inside run under the same deadline;
- CPU seconds, address space, file size, open files: rlimits set by the interpreter before any code runs;
- memory and number of processes of the sandbox as a whole: its cgroup;
- output: captured into files capped by the file-size limit, read back up to `output_bytes`, and the reply
  line itself is capped on the host's side;
- what the code leaves running: the host kills every other process of the sandbox after each cell.
"""

import dataclasses
import functools
import platform
import shutil
import time
from dataclasses import dataclass

from pipeline.tools import bridge, frames, isolation, pool, seccomp
from pipeline.tools.bridge import ToolCaller
from pipeline.tools.launch import Failure, Process
from pipeline.tools.limits import Limits

RESET = "The interpreter was reset: variables from earlier cells are gone."


@dataclass(frozen=True)
class CellResult:
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    value: str | None = None
    error: str | None = None  # the code raised: its traceback
    failure: str | None = None  # the sandbox failed the cell: timeout, limit, crash; the interpreter was reset


class Sandbox:
    def __init__(self, limits: Limits = Limits(), how: isolation.Isolation | None = None, pooled: bool = True):
        self.limits = limits
        self.how = how or detect()
        self.pooled = pooled
        self.process: Process | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def cgroup(self):
        return self.process.cgroup if self.process is not None else None

    def run(self, code: str, tools: list[dict] = (), call_tool: ToolCaller | None = None) -> CellResult:
        """Run one cell. `tools` ({name, description}) become Python functions inside; their calls come back
        through `call_tool(name, arguments) -> (content, is_error)`, under the limits of bridge.py."""
        try:
            if self.process is None:
                self.process = pool.take(self.limits, self.how, self.pooled)
            deadline = time.monotonic() + self.limits.timeout_seconds
            frame = self._exchange(code, list(tools), call_tool, deadline)
            self.process.settle(deadline)
        except frames.Forged as exc:
            return self._reset(f"{exc} (the code wrote to the sandbox's control channel)")
        except bridge.DeadlinePassed as exc:
            return self._reset(f"execution timed out after {self.limits.timeout_seconds:g} s (wall clock), "
                               f"in a call of {exc}")
        except Failure as exc:
            return self._reset(str(exc))
        result = CellResult(**{k: frame[k] for k in ("stdout", "stderr", "stdout_bytes", "stderr_bytes", "value", "error")})
        if frame["threads"]:
            self.close()
            failure = (f"the code left {frame['threads']} thread(s) running after the cell, which would write into "
                       f"later cells' output. {RESET}")
            return dataclasses.replace(result, failure=failure)
        return result

    def _exchange(self, code: str, tools: list[dict], call_tool: ToolCaller | None, deadline: float) -> dict:
        """Send the cell, serve its tool calls, and return its reply."""
        process = self.process
        process.request(code, tools, deadline)
        while True:
            frame = process.receive(deadline)
            if frames.call_or_done(frame, process.cell) == "done":
                return frame
            name, arguments = frame["call"], frame["arguments"]
            if call_tool is None:
                content, is_error = f"no tool {name!r} here", True
            else:
                content, is_error = bridge.call(call_tool, name, arguments, deadline, self.limits.tool_call_seconds,
                                                self.limits.output_bytes)
            process.send({"content": content, "error": is_error}, deadline)

    def _reset(self, why: str) -> CellResult:
        if self.process is not None:  # stopped at once: what failed may still be burning CPU
            self.process.stop()
            self.process = None
        return CellResult(failure=f"{why}. {RESET}")

    def close(self) -> None:
        """Stop the sandbox (in the launcher's thread: the episode does not wait for it)."""
        if self.process is not None:
            pool.discard(self.process)
            self.process = None


def _probe_bwrap() -> str | None:
    """None when a bwrap sandbox starts and runs code here, else why not."""
    if not shutil.which("bwrap"):
        return "bwrap is not installed (Debian: apt-get install bubblewrap)"
    with Sandbox(Limits(timeout_seconds=20), isolation.Isolation("bwrap"), pooled=False) as box:
        result = box.run("6 * 7")
    if result.value != "42":
        return f"bwrap sandbox does not run here: {result.failure or result.error}"
    return None


@functools.lru_cache(maxsize=1)
def detect() -> isolation.Isolation:
    """How sandboxes are isolated on this machine, decided once per process by starting a real one."""
    problem = _probe_bwrap()
    if problem is None:
        gaps, reasons = isolation.cgroup_missing()
        if not seccomp.supported():
            gaps, reasons = ["seccomp", *gaps], [f"no seccomp filter for {platform.machine()}", *reasons]
        how = isolation.Isolation("bwrap", tuple(gaps), tuple(reasons))
    else:
        how = isolation.fallback_isolation(problem)
    isolation.announce(how)
    return how
