"""One sandbox process: starting it (cgroup, bubblewrap or the fallback, seccomp, the handshake), the control
channel to it, telling whether it is idle, killing what the code left running, and stopping it.

The channel is a Unix socket with SO_PASSCRED on the host's end, so the kernel tells the host which process
wrote every chunk it reads (as a host pid): only the interpreter may write, and its pid is learnt from its
greeting, before any code runs. Every other piece of per-sandbox host state (the cgroup, the fallback's
workdir) is named after the trajforge process that made it, so what a SIGKILLed process left is removed at the
next start.
"""

import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from pipeline.tools import cgroups, frames, isolation, seccomp
from pipeline.tools.limits import Limits

START_TIMEOUT_SECONDS = 20.0
SEED = 0
IDLE_POLL_SECONDS = 0.0002
WORKDIR_PREFIX = "trajforge-sandbox-"
_WORKDIR_NAME = re.compile(WORKDIR_PREFIX + r"(\d+)-")
_CREDENTIALS = struct.Struct("iii")  # struct ucred: pid, uid, gid
_swept = threading.Lock()  # held for good once this process has removed stale workdirs


class Failure(Exception):
    """The sandbox failed (died, timed out, broke the protocol); the message says why."""


class Process:
    """A started interpreter, waiting for requests."""

    def __init__(self, limits: Limits, how: isolation.Isolation):
        self.limits, self.how = limits, how
        self.proc: subprocess.Popen | None = None
        self.cgroup: cgroups.Cgroup | None = None
        self.workdir: str | None = None
        self.sock: socket.socket | None = None
        self.pid: int | None = None  # the interpreter, as the host sees it
        self.request_fd: int | None = None  # where the interpreter reads requests from
        self.spare: frozenset[int] = frozenset()  # the launcher, bwrap's init and the interpreter
        self.cell = 0  # the last request's number
        self._buffer = b""

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
        return {"rlimits": rlimits, "site_packages": isolation.site_packages(), "seed": SEED, "output_bytes": limits.output_bytes}

    def _command(self, seccomp_fd: int | None) -> tuple[list[str], dict, str | None]:
        drop = isolation.drop_privileges() if "unprivileged_uid" not in self.how.missing else []
        inner = drop + isolation.no_aslr() + isolation.python_command()
        if self.how.mechanism == "bwrap":
            mb = 1 << 20
            outer = isolation.bwrap_command(seccomp_fd, self.limits.workdir_mb * mb, self.limits.workdir_mb * mb)
            return outer + inner, {}, None
        self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")
        if drop:
            os.chown(self.workdir, isolation.NOBODY, isolation.NOBODY)
        env = {**isolation.ENVIRONMENT, "HOME": self.workdir, "TMPDIR": self.workdir}
        return inner, env, self.workdir

    def start(self) -> "Process":
        if _swept.acquire(blocking=False):
            remove_stale_workdirs()
        self.cgroup, _ = cgroups.create(self.limits.memory_mb << 20, self.limits.max_processes)
        program = isolation.seccomp_program() if self.how.mechanism == "bwrap" else None
        read_fd = None
        if program is not None:
            read_fd, write_fd = os.pipe()
            os.write(write_fd, program)
            os.close(write_fd)
        self.sock, inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setblocking(False)
        try:
            argv, env, cwd = self._command(read_fd)
            if self.cgroup is not None:
                # A shell joins the cgroup before it becomes the sandbox, so no process of it is ever outside.
                joins = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
                argv = ["/bin/sh", "-c", joins, "sh", *self.cgroup.procs_files, "--", *argv]
            self.proc = subprocess.Popen(argv, stdin=inside.fileno(), stdout=inside.fileno(), stderr=subprocess.PIPE,
                                         env=env, cwd=cwd, start_new_session=True, umask=0o077,
                                         pass_fds=(read_fd,) if read_fd is not None else ())
        except OSError as exc:
            self.stop()
            raise Failure(f"the sandbox did not start: {exc}") from None
        finally:
            inside.close()
            if read_fd is not None:
                os.close(read_fd)
        try:
            self.send(self._server_config(), time.monotonic() + START_TIMEOUT_SECONDS)
            self.request_fd = frames.ready(self.receive(time.monotonic() + START_TIMEOUT_SECONDS))
            self.spare = frozenset({self.proc.pid, self.pid, _parent_of(self.pid)})
        except OSError:  # the interpreter ended right after its greeting
            self.stop()
            raise Failure("the sandbox did not start: the interpreter ended at once") from None
        except (Failure, frames.Forged) as exc:
            detail = self._stderr_tail()
            self.stop()
            raise Failure(f"the sandbox did not start: {exc}{': ' + detail if detail else ''}") from None
        return self

    def _stderr_tail(self) -> str:
        if self.proc is None or self.proc.stderr is None:
            return ""
        try:
            os.set_blocking(self.proc.stderr.fileno(), False)
            data = self.proc.stderr.read(4096) or b""
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip().splitlines()[-1] if data.strip() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def warm_up(self) -> "Process":
        """Run an empty cell, so that the first real one finds the interpreter's code paths paged in."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        self.request("pass", [], deadline)
        if frames.call_or_done(self.receive(deadline), self.cell) != "done":
            raise Failure("the sandbox did not start: its first cell did not finish")
        self.settle(deadline)
        return self

    # -- talking ----------------------------------------------------------------------------------------------

    def request(self, code: str, tools: list[dict], deadline: float) -> None:
        """Send the next cell. Nothing may have come since the last reply (a signal handler of the code's, run
        while the interpreter waited, could have written)."""
        if self._readable():
            raise frames.Forged("a frame came between cells")
        self.cell += 1
        self.send({"cell": self.cell, "code": code, "tools": tools, "cpu_seconds": self.limits.cpu_seconds}, deadline)

    def send(self, message: dict, deadline: float) -> None:
        data = memoryview(frames.encode(message))
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"execution timed out after {self.limits.timeout_seconds:g} s (wall clock)")
            select.select([], [self.sock], [], remaining)
            try:
                data = data[self.sock.send(data):]
            except BlockingIOError:
                continue
            except OSError:
                raise Failure(self.death()) from None

    def receive(self, deadline: float) -> dict:
        """The next frame, decoded (not yet checked for its kind)."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"execution timed out after {self.limits.timeout_seconds:g} s (wall clock)")
            if select.select([self.sock], [], [], remaining)[0]:
                self._read_chunk()
        line, _, self._buffer = self._buffer.partition(b"\n")
        return frames.decode(line)

    def _read_chunk(self) -> None:
        try:
            chunk, ancillary, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(_CREDENTIALS.size))
        except BlockingIOError:
            return
        except OSError:
            raise Failure(self.death()) from None
        if not chunk:
            raise Failure(self.death())
        sender = next((_CREDENTIALS.unpack(data)[0] for level, kind, data in ancillary
                       if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), None)
        if self.pid is None:
            self.pid = sender  # the greeting: no code has run yet, so it is the interpreter's
        if sender is None or sender != self.pid:
            raise frames.Forged(f"a frame came from process {sender}, not from the interpreter")
        self._buffer += chunk
        if len(self._buffer) > frames.MAX_LINE_BYTES:
            raise Failure("the interpreter's reply exceeded the size limit")

    def _readable(self) -> bool:
        return bool(self._buffer) or bool(select.select([self.sock], [], [], 0)[0])

    # -- after a cell -----------------------------------------------------------------------------------------

    def _idle(self) -> bool:
        """Whether the interpreter's main thread is blocked reading its next request (True where the kernel
        cannot tell: no /proc/<pid>/syscall, or an architecture whose read(2) number is not known here)."""
        number = seccomp.read_number()
        try:
            with open(f"/proc/{self.pid}/syscall") as status:
                fields = status.read().split()  # "running", or the number and arguments of a blocked call
        except OSError:
            return True
        if number is None:
            return True
        return len(fields) > 1 and fields[0] == str(number) and int(fields[1], 16) == self.request_fd

    def settle(self, deadline: float) -> None:
        """After the cell's reply: wait until the interpreter is idle, then kill every process the code left.
        A genuine reply is the interpreter's last act before it waits for the next request, so any frame after
        it, or code still running, means the reply was forged."""
        while not self._idle():
            if self._readable():
                raise frames.Forged("a frame came after the cell's reply")
            if time.monotonic() > deadline:
                raise Failure(f"execution timed out after {self.limits.timeout_seconds:g} s (wall clock)")
            select.select([self.sock], [], [], IDLE_POLL_SECONDS)
        self.kill_strays()
        if self._readable():
            raise frames.Forged("a frame came after the cell's reply")

    def kill_strays(self) -> None:
        """SIGKILL every process of the sandbox but the launcher, bwrap's init and the interpreter: from the
        host, so the code cannot switch it off."""
        if self.cgroup is not None:
            self.cgroup.kill(spare=self.spare)
        elif self.how.mechanism == "bwrap":
            try:
                members = _namespace_members(self.pid)
            except OSError:  # the interpreter is gone
                raise Failure(self.death()) from None
            for pid in members - self.spare:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- stopping ---------------------------------------------------------------------------------------------

    def death(self) -> str:
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

    def stop(self) -> None:
        """Kill every process of the sandbox and remove what it left behind."""
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.cgroup is not None:
            self.cgroup.kill()  # the pid namespace's last processes leave the group after bwrap is gone
            self.cgroup.remove()
            self.cgroup = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def remove_stale_workdirs() -> None:
    """Fallback workdirs of trajforge processes that are gone (SIGKILLed before they could clean up)."""
    folder = tempfile.gettempdir()
    for entry in os.scandir(folder):
        match = _WORKDIR_NAME.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not cgroups.alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[1])


def _namespace_members(pid: int) -> set[int]:
    """The processes in `pid`'s pid namespace (without a cgroup, how the host finds a bwrap sandbox's)."""
    namespace = os.stat(f"/proc/{pid}/ns/pid").st_ino
    members = set()
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and os.stat(f"/proc/{entry.name}/ns/pid").st_ino == namespace:
                members.add(int(entry.name))
        except OSError:
            pass
    return members


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        try:
            count += entry.name.isdigit() and entry.stat().st_uid == uid
        except OSError:
            pass
    return count
