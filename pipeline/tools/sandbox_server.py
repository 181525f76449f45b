"""The interpreter inside the sandbox. Started as `python -s -S -c <this file's text>`; standard library only,
since nothing of trajforge is visible in there, and only built-in modules at start-up (json, ast, tempfile,
traceback would double the start-up time; they are loaded when needed, or replaced by their C cores).

Protocol (pipeline/tools/frames.py is the host's half). Host to interpreter: frames of a 4-byte length and a
`marshal`led value (the host is trusted; nothing the interpreter sends is unmarshalled). The first frame is
the configuration, answered by {"ready": true, "fd": <the descriptor requests are read from>}; then each
request is {"cell", "code", "tools", "cpu_seconds"}, answered by one JSON line {"done": <cell>, "stdout",
"stdout_bytes", "stderr", "stderr_bytes", "value", "error", "threads"}. While a cell runs, a call to one of the
task's tools (Python functions in the cell's namespace) sends the JSON line {"call", "arguments"} and waits for
a frame {"content", "error"}. The channel is a socket on stdin/stdout, used through a private duplicate: the
code's own stdin is /dev/null, and its stdout and stderr (and those of any process it starts) go to unnamed
files, read back up to `output_bytes`.

None of this is out of the code's reach: it runs in this process and can write to the channel or change this
module. So the host trusts nothing it reads: it checks every frame, which process sent it and that the
interpreter is idle after a reply, and it reaps stray processes itself (docs/tools.md, the threat model).
"""

import _ast
import _thread
import builtins
import marshal
import os
import resource
import sys
import time
from _json import encode_basestring_ascii as quote

SERVER_PID = os.getpid()
_real_import = builtins.__import__


def to_json(value) -> str:
    """JSON for the values a tool call can carry; anything else is a TypeError for the caller."""
    if value is None or value is True or value is False:
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity are not JSON numbers")
        return float.__repr__(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("object keys must be strings")
        return "{" + ",".join(quote(k) + ":" + to_json(v) for k, v in value.items()) + "}"
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


class Channel:
    def __init__(self):
        self.fd = os.dup(0)  # the socket; 0 and 1 are then pointed elsewhere
        self.lock = _thread.allocate_lock()

    def send(self, json_text: str) -> None:
        data = memoryview(json_text.encode() + b"\n")
        while data:
            data = data[os.write(self.fd, data):]

    def _read(self, size: int) -> bytes:
        """Exactly `size` bytes, read unbuffered: the host sees the interpreter idle in this read."""
        chunks = []
        while size:
            chunk = os.read(self.fd, size)
            if not chunk:
                return b""
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def receive(self):
        header = self._read(4)
        if len(header) < 4:
            return None
        return marshal.loads(self._read(int.from_bytes(header, "big")))


class ToolCallError(Exception):
    """The tool answered with an error observation."""


def make_tool(channel: Channel, name: str, description: str):
    def call(*args, **arguments):
        if args:
            raise TypeError(f"{name}() takes keyword arguments only, e.g. {name}(name=value)")
        if os.getpid() != SERVER_PID:
            raise RuntimeError(f"{name}() can only be called from the main interpreter process")
        try:
            request = '{"call":' + quote(name) + ',"arguments":' + to_json(arguments) + "}"
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"{name}(): arguments must be JSON values ({exc})") from None
        with channel.lock:
            channel.send(request)
            reply = channel.receive()
        if not isinstance(reply, dict):
            os._exit(1)
        if reply["error"]:
            raise ToolCallError(reply["content"])
        return reply["content"]

    call.__name__ = call.__qualname__ = name
    call.__doc__ = description
    return call


class Capture:
    """stdout and stderr of a cell, at the file-descriptor level so child processes are captured too."""

    def __init__(self, limit: int):
        self.limit = limit
        self.fds = [self._unnamed_file(), self._unnamed_file()]

    @staticmethod
    def _unnamed_file() -> int:
        folder = os.environ.get("TMPDIR", "/tmp")
        try:
            return os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (AttributeError, OSError):
            path = os.path.join(folder, f".cell-{os.getpid()}-{len(os.listdir(folder))}")
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            os.unlink(path)
            return fd

    def start(self) -> None:
        for target, fd in zip((1, 2), self.fds):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.dup2(fd, target)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)

    def finish(self) -> str:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        parts = []
        for name, fd in zip(("stdout", "stderr"), self.fds):
            text = os.pread(fd, self.limit, 0).decode("utf-8", "replace")
            parts.append(f'"{name}":{quote(text)},"{name}_bytes":{os.fstat(fd).st_size}')
        return ",".join(parts)


class Interpreter:
    def __init__(self, config: dict, channel: Channel):
        self.config = config
        self.channel = channel
        self.capture = Capture(config["output_bytes"])
        self.seeded: set[str] = set()
        self.cell = 0
        self.namespace = {"__name__": "__main__", "__builtins__": builtins, "ToolCallError": ToolCallError}

    def seeding_import(self, name, *args, **kwargs):
        """`import` that seeds `random` and numpy's global generator when they are first loaded, so code that
        forgets to seed still gives the same observation on replay."""
        module = _real_import(name, *args, **kwargs)
        for generator in ("random", "numpy.random"):
            if generator not in self.seeded:
                seed = getattr(sys.modules.get(generator), "seed", None)  # absent while the module initialises
                if seed is not None:
                    self.seeded.add(generator)
                    seed(self.config["seed"])
        return module

    def run(self, code: str):
        """Run a cell; the value of a final expression statement is returned, as in a REPL."""
        tree = compile(code, "<cell>", "exec", _ast.PyCF_ONLY_AST)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], _ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), self.namespace)
        if last is not None:
            return eval(compile(_ast.Expression(last.value), "<cell>", "eval"), self.namespace)
        return None

    def execute(self, code: str) -> str:
        value = error = None
        self.capture.start()
        try:
            result = self.run(code)
            if result is not None:
                self.namespace["_"] = result
                value = repr(result)[:self.config["output_bytes"]]
        except BaseException as exc:  # the code's failure, whatever it is, is the observation
            if os.getpid() != SERVER_PID:
                os._exit(1)
            error = format_error(exc, code)
        if os.getpid() != SERVER_PID:  # a process the code forked has run off the end of the cell
            os._exit(0)
        return ('{"done":' + str(self.cell) + "," + self.capture.finish() + ',"value":' + to_json(value)
                + ',"error":' + to_json(error) + ',"threads":' + str(threads_left()) + "}")


def format_error(exc: BaseException, code: str) -> str:
    """The traceback from the cell's first frame on: the interpreter's own frames are not the code's business."""
    import linecache
    import traceback

    linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def limit_cpu(seconds: int) -> None:
    """This cell may use `seconds` more CPU seconds (SIGXCPU ends the interpreter beyond that)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    wanted = int(usage.ru_utime + usage.ru_stime) + seconds + 1
    resource.setrlimit(resource.RLIMIT_CPU, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))


def threads_left() -> int:
    """Threads the code started that are still running, after a short grace for ones that are ending: they
    could write into a later cell's output, so the host resets the interpreter when there are any."""
    for _ in range(50):
        if not _thread._count():
            return 0
        time.sleep(0.001)
    return _thread._count()


def reap_children() -> None:
    """Collect the code's child processes that the host killed after the last cell (zombies count against
    the process limit until their parent waits for them)."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def main() -> None:
    channel = Channel()
    config = channel.receive()
    for name, value in config["rlimits"].items():
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]  # a stricter limit inherited from the parent stays
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    interpreter = Interpreter(config, channel)
    builtins.__import__ = interpreter.seeding_import
    sys.path.extend(config["site_packages"])
    channel.send('{"ready":true,"fd":' + str(channel.fd) + "}")
    while True:
        request = channel.receive()
        if request is None:
            return
        reap_children()
        interpreter.cell = request["cell"]
        for tool in request["tools"]:
            interpreter.namespace[tool["name"]] = make_tool(channel, tool["name"], tool["description"])
        limit_cpu(request["cpu_seconds"])
        channel.send(interpreter.execute(request["code"]))


main()
