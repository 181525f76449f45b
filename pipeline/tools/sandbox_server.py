"""The interpreter inside the sandbox. Started as `python -s -S -c <this file's text> CONFIG`; standard
library only, since nothing of trajforge is visible in there.

Protocol: one JSON object per line. The parent sends {"code", "tools", "cpu_seconds"}; the interpreter runs the
code and answers {"done": true, "stdout", "stdout_bytes", "stderr", "stderr_bytes", "value", "error"}. While a
cell runs, a call to one of the task's tools (exposed as Python functions) sends {"call", "arguments"} and
waits for {"content", "error"}. The protocol uses private duplicates of stdin/stdout: the code's own stdin is
/dev/null and its stdout/stderr (and those of any process it starts) go to unnamed temporary files, read back
up to `output_bytes`.
"""

import ast
import builtins
import json
import linecache
import os
import random
import resource
import signal
import sys
import tempfile
import threading
import traceback

CONFIG = json.loads(sys.argv[1])
SERVER_PID = os.getpid()
SEED = CONFIG["seed"]
LIMIT = CONFIG["output_bytes"]
_real_import = builtins.__import__
_numpy_seeded = False


def set_limits() -> None:
    for name, value in CONFIG["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))


def seeding_import(name, *args, **kwargs):
    """`import` that seeds numpy's global generator the first time numpy.random is loaded, so code that
    forgets to seed still gives the same observation on replay."""
    global _numpy_seeded
    module = _real_import(name, *args, **kwargs)
    if not _numpy_seeded and name.startswith("numpy"):
        seed = getattr(sys.modules.get("numpy.random"), "seed", None)  # absent while numpy.random initialises
        if seed is not None:
            _numpy_seeded = True
            seed(SEED)
    return module


class Channel:
    def __init__(self):
        self.reader = os.fdopen(os.dup(0), "rb")
        self.writer = os.fdopen(os.dup(1), "wb")
        self.lock = threading.Lock()

    def send(self, message: dict) -> None:
        self.writer.write(json.dumps(message).encode() + b"\n")
        self.writer.flush()

    def receive(self) -> dict | None:
        line = self.reader.readline()
        return json.loads(line) if line else None


class ToolCallError(Exception):
    """The tool answered with an error observation."""


def make_tool(channel: Channel, name: str, description: str):
    def call(*args, **arguments):
        if args:
            raise TypeError(f"{name}() takes keyword arguments only, e.g. {name}(name=value)")
        if os.getpid() != SERVER_PID:
            raise RuntimeError(f"{name}() can only be called from the main interpreter process")
        try:
            request = {"call": name, "arguments": arguments}
            json.dumps(request)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}(): arguments must be JSON values ({exc})") from None
        with channel.lock:
            channel.send(request)
            reply = channel.receive()
        if reply is None:
            os._exit(1)
        if reply["error"]:
            raise ToolCallError(reply["content"])
        return reply["content"]

    call.__name__ = call.__qualname__ = name
    call.__doc__ = description
    return call


class Capture:
    """stdout and stderr of a cell, at the file-descriptor level so child processes are captured too."""

    def __init__(self):
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]

    def start(self) -> None:
        for target, handle in zip((1, 2), self.files):
            os.ftruncate(handle.fileno(), 0)
            os.lseek(handle.fileno(), 0, os.SEEK_SET)
            os.dup2(handle.fileno(), target)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)

    def finish(self) -> dict:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        result = {}
        for name, handle in zip(("stdout", "stderr"), self.files):
            size = os.fstat(handle.fileno()).st_size
            result[name] = os.pread(handle.fileno(), LIMIT, 0).decode("utf-8", "replace")
            result[name + "_bytes"] = size
        return result


def run(code: str, namespace: dict):
    """Run a cell; the value of a final expression statement is returned, as in a REPL."""
    linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
    tree = ast.parse(code, "<cell>", "exec")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last is not None:
        return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
    return None


def format_error(exc: BaseException) -> str:
    """The traceback from the cell's first frame on: the interpreter's own frames are not the code's business."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def limit_cpu(seconds: int) -> None:
    """This cell may use `seconds` more CPU seconds (SIGXCPU ends the interpreter beyond that)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    wanted = int(usage.ru_utime + usage.ru_stime) + seconds + 1
    resource.setrlimit(resource.RLIMIT_CPU, (min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted, hard))


def in_own_pid_namespace() -> bool:
    """True only inside a pid namespace other than the parent's, as an unprivileged user: the one place where
    kill(-1) reaches nothing but the code's own processes."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino != CONFIG["parent_pid_namespace"] and os.geteuid() != 0
    except OSError:
        return False


def kill_strays() -> None:
    """In the sandbox's own pid namespace every other process was started by the code: none outlives a cell."""
    if not in_own_pid_namespace():
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # nothing left to kill
        return
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def execute(code: str, namespace: dict, capture: Capture) -> dict:
    value = error = None
    capture.start()
    try:
        result = run(code, namespace)
        if result is not None:
            namespace["_"] = result
            value = repr(result)[:LIMIT]
    except BaseException as exc:  # the code's failure, whatever it is, is the observation
        if os.getpid() != SERVER_PID:
            os._exit(1)
        error = format_error(exc)
    if os.getpid() != SERVER_PID:  # a process the code forked has run off the end of the cell
        os._exit(0)
    kill_strays()
    return {"done": True, **capture.finish(), "value": value, "error": error}


def main() -> None:
    set_limits()
    channel = Channel()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    capture = Capture()
    random.seed(SEED)
    builtins.__import__ = seeding_import
    sys.path.extend(CONFIG["site_packages"])
    namespace = {"__name__": "__main__", "__builtins__": builtins, "ToolCallError": ToolCallError}
    channel.send({"ready": True})
    while True:
        request = channel.receive()
        if request is None:
            return
        for tool in request["tools"]:
            namespace[tool["name"]] = make_tool(channel, tool["name"], tool["description"])
        limit_cpu(request["cpu_seconds"])
        channel.send(execute(request["code"], namespace, capture))


main()
