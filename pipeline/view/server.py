"""`trajforge view`: serve the viewer (uvicorn) on 127.0.0.1 until interrupted.

While it runs, RUN_DIR/.view.json says where, so a report written meanwhile links its examples into it.
"""

import json
import os
import signal
import socket
from contextlib import contextmanager
from pathlib import Path

from pipeline import rundir
from pipeline.stages import STAGE_DIRS
from pipeline.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (pick another --port)") from None
    sock.listen(128)
    return sock


@contextmanager
def announced(run_dir: Path, url: str):
    """RUN_DIR/.view.json while the viewer runs (best effort: a read-only run directory is viewed all the same)."""
    path = Path(run_dir) / rundir.VIEWER_FILE
    try:
        path.write_text(json.dumps({"url": url, "pid": os.getpid(), "host": socket.gethostname()}))
    except OSError:
        path = None
    try:
        yield
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


def serve(run_dir: Path, host: str, port: int, echo=print) -> None:
    import uvicorn

    from pipeline.view.app import create_app

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not any(rundir.stage_files(run_dir, s) for s in STAGE_DIRS):
        raise UserError(f"{run_dir}: no stage shards to view (not a run directory, or nothing has run yet)")
    sock = listen(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    if host not in LOOPBACK:
        echo(f"warning: listening on {host}: anyone who can reach this address can read every row of {run_dir}")
    server = uvicorn.Server(uvicorn.Config(create_app(run_dir), log_level="warning", access_log=False))
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: turned into an exception
    # here, so .view.json is removed and the command ends normally
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        with announced(run_dir, url):
            echo(f"trajforge view: {url} (read-only; Ctrl-C to stop)", flush=True)  # the socket already listens
            server.run(sockets=[sock])
    except (Stopped, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    echo("trajforge view: stopped")


class Stopped(Exception):
    """SIGTERM, after uvicorn's graceful shutdown."""


def _stopped(signum, frame):
    raise Stopped
