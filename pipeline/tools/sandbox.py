"""A sandboxed, persistent Python interpreter: the python tool and CodeAct run model-written code in it.

One `Sandbox` is one interpreter for one episode (an `Env` resource, closed with the episode). Each `run` is a
cell: its stdout, stderr, the value of its last expression and its traceback come back as a `CellResult`. A
cell that runs past the wall-clock timeout, exceeds a limit or kills its interpreter ends with `failure` set;
the whole sandbox is then killed and the next cell starts a fresh one. How the sandbox is isolated is decided
in `isolation.py`; the limits are enforced as:

- wall clock: the parent stops waiting and kills every process of the sandbox (cgroup, process group, and the
  pid namespace, which dies with its first process);
- CPU seconds, address space, file size, open files: rlimits set by the interpreter before any code runs;
- memory and number of processes of the sandbox as a whole: its cgroup;
- output: captured into files capped by the file-size limit, read back up to `output_bytes`, and the reply
  line itself is capped on the parent's side.
"""

import json
import marshal
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from pipeline.tools import cgroups, isolation

MAX_REPLY_BYTES = 16 << 20
START_TIMEOUT_SECONDS = 20.0
SEED = 0

ToolCaller = Callable[[str, dict], tuple[str, bool]]


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 32
    workdir_mb: int = 64
    output_bytes: int = 65536


@dataclass(frozen=True)
class CellResult:
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    value: str | None = None
    error: str | None = None  # the code raised: its traceback
    failure: str | None = None  # the sandbox failed the cell: timeout, limit, crash; the interpreter was reset


class _CellFailed(Exception):
    """The cell did not complete; the message says why."""


class Sandbox:
    def __init__(self, limits: Limits = Limits(), how: isolation.Isolation | None = None):
        self.limits = limits
        self.how = how or isolation.detect()
        self.proc: subprocess.Popen | None = None
        self.cgroup: cgroups.Cgroup | None = None
        self.workdir: str | None = None
        self._buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- starting ---------------------------------------------------------------------------------------------

    def _server_config(self) -> dict:
        mb = 1 << 20
        limits = self.limits
        rlimits = {"RLIMIT_AS": limits.memory_mb * mb, "RLIMIT_FSIZE": limits.file_size_mb * mb, "RLIMIT_NOFILE": 256,
                   "RLIMIT_CORE": 0, "RLIMIT_CPU": limits.cpu_seconds * 20}
        if self.cgroup is None or "pids" not in self.cgroup.controllers:
            # Without a pids cgroup, RLIMIT_NPROC is the only bound on processes. It counts every process of the
            # uid (other sandboxes too, or the user's own processes when there is no uid to drop to).
            dropped = os.geteuid() == 0 and "unprivileged_uid" not in self.how.missing
            rlimits["RLIMIT_NPROC"] = limits.max_processes + (0 if dropped else _processes_of(os.getuid()))
        return {"rlimits": rlimits, "site_packages": isolation.site_packages(), "seed": SEED,
                "output_bytes": limits.output_bytes, "parent_pid_namespace": os.stat("/proc/self/ns/pid").st_ino}

    def _command(self, seccomp_fd: int | None) -> tuple[list[str], dict, str | None]:
        drop = isolation.drop_privileges() if "unprivileged_uid" not in self.how.missing else []
        inner = drop + isolation.no_aslr() + isolation.python_command()
        if self.how.mechanism == "bwrap":
            mb = 1 << 20
            outer = isolation.bwrap_command(seccomp_fd, self.limits.workdir_mb * mb, self.limits.workdir_mb * mb)
            return outer + inner, {}, None
        self.workdir = tempfile.mkdtemp(prefix="trajforge-sandbox-")
        if drop:
            os.chown(self.workdir, isolation.NOBODY, isolation.NOBODY)
        env = {**isolation.ENVIRONMENT, "HOME": self.workdir, "TMPDIR": self.workdir}
        return inner, env, self.workdir

    def _start(self) -> None:
        self.cgroup, _ = cgroups.create(self.limits.memory_mb << 20, self.limits.max_processes)
        program = isolation.seccomp_program() if self.how.mechanism == "bwrap" else None
        read_fd = None
        if program is not None:
            read_fd, write_fd = os.pipe()
            os.write(write_fd, program)
            os.close(write_fd)
        try:
            argv, env, cwd = self._command(read_fd)
            if self.cgroup is not None:
                # A shell joins the cgroup before it becomes the sandbox, so no process of it is ever outside.
                joins = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
                argv = ["/bin/sh", "-c", joins, "sh", *self.cgroup.procs_files, "--", *argv]
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=env, cwd=cwd, start_new_session=True, umask=0o077,
                                         pass_fds=(read_fd,) if read_fd is not None else ())
        except OSError as exc:
            self._stop()
            raise _CellFailed(f"the sandbox did not start: {exc}") from None
        finally:
            if read_fd is not None:
                os.close(read_fd)
        self._buffer = b""
        try:
            self._send(self._server_config())
            self._receive(time.monotonic() + START_TIMEOUT_SECONDS)
        except _CellFailed as exc:
            detail = self._stderr_tail()
            self._stop()
            raise _CellFailed(f"the sandbox did not start: {exc}{': ' + detail if detail else ''}") from None

    def _stderr_tail(self) -> str:
        if self.proc is None or self.proc.stderr is None:
            return ""
        try:
            os.set_blocking(self.proc.stderr.fileno(), False)
            data = self.proc.stderr.read(4096) or b""
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip().splitlines()[-1] if data.strip() else ""

    # -- talking ----------------------------------------------------------------------------------------------

    def _send(self, message: dict) -> None:
        """A frame: 4-byte length and the marshalled message (only ever unmarshalled inside the sandbox)."""
        data = marshal.dumps(message)
        try:
            self.proc.stdin.write(len(data).to_bytes(4, "big") + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _CellFailed(self._death()) from None

    def _receive(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _CellFailed(f"execution timed out after {self.limits.timeout_seconds:g} s (wall clock)")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise _CellFailed(self._death())
            self._buffer += chunk
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise _CellFailed("the interpreter's reply exceeded the size limit")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise _CellFailed("the interpreter's reply was garbled (the code wrote to the sandbox's control channel)")
        return message

    def _death(self) -> str:
        """Why the interpreter ended, as well as can be told."""
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"the interpreter was killed for exceeding the memory limit ({self.limits.memory_mb} MB)"
        signum = -code if code is not None and code < 0 else (code - 128 if code is not None and code > 128 else None)
        if signum == signal.SIGXCPU:
            return f"the interpreter exceeded its CPU time limit ({self.limits.cpu_seconds} s)"
        if signum is not None:
            return f"the interpreter was killed by {signal.Signals(signum).name}"
        return f"the interpreter exited (status {code})"

    def run(self, code: str, tools: list[dict] = (), call_tool: ToolCaller | None = None) -> CellResult:
        """Run one cell. `tools` ({name, description}) become Python functions inside; their calls come back
        through `call_tool(name, arguments) -> (content, is_error)`."""
        try:
            if self.proc is None:
                self._start()
            deadline = time.monotonic() + self.limits.timeout_seconds
            self._send({"code": code, "tools": list(tools), "cpu_seconds": self.limits.cpu_seconds})
            while True:
                message = self._receive(deadline)
                if message.get("done"):
                    break
                name, arguments = message.get("call"), message.get("arguments")
                if not isinstance(name, str) or not isinstance(arguments, dict):
                    raise _CellFailed("the interpreter sent a malformed message (the code wrote to the sandbox's control channel)")
                content, is_error = call_tool(name, arguments) if call_tool else (f"no tool {name!r} here", True)
                self._send({"content": content, "error": is_error})
        except _CellFailed as exc:
            self._stop()
            return CellResult(failure=f"{exc}. The interpreter was reset: variables from earlier cells are gone.")
        if self.how.mechanism != "bwrap" and self.cgroup is not None:
            self.cgroup.kill(spare=self.proc.pid)  # what the code left running (bwrap's pid namespace does this inside)
        return CellResult(stdout=message["stdout"], stderr=message["stderr"], stdout_bytes=message["stdout_bytes"],
                          stderr_bytes=message["stderr_bytes"], value=message["value"], error=message["error"])

    # -- stopping ---------------------------------------------------------------------------------------------

    def _stop(self) -> None:
        """Kill every process of the sandbox and remove what it left behind."""
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc = None
        if self.cgroup is not None:
            self.cgroup.kill()  # the pid namespace's last processes leave the group after bwrap is gone
            self.cgroup.remove()
            self.cgroup = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def close(self) -> None:
        self._stop()


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        try:
            count += entry.name.isdigit() and entry.stat().st_uid == uid
        except OSError:
            pass
    return count
