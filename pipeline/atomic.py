"""Files and folders replaced atomically through temporary names, and the temporaries a killed process left.

Every temporary trajforge writes is named `.NAME.HOST.PID-THREAD.tmp` (a folder being swapped out is `.old`
instead of `.tmp`), beside the file or folder NAME it becomes: readers see the old version or the new one,
never half of one. A process killed mid-write leaves its temporary behind; `clean` removes those of processes
of this host that are gone, whatever their pid, and leaves the others (a process of another host sharing the
storage may still be writing).
"""

import os
import re
import shutil
import socket
import threading
from pathlib import Path

from pipeline.errors import storage_error

_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)-\d+\.(?:tmp|old)$")  # stem: NAME.HOST (both may hold dots)


def temp_path(final: Path, kind: str = "tmp") -> Path:
    """The temporary name of `final` for this host, process and thread (stages write from worker threads)."""
    return final.with_name(f".{final.name}.{socket.gethostname()}.{os.getpid()}-{threading.get_ident()}.{kind}")


def write_text(path: Path, text: str) -> None:
    """Replace `path` by `text` atomically; a full disk is a UserError naming the file, and no temporary stays."""
    tmp = temp_path(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(path, exc.strerror or str(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(tmp: Path, final: Path) -> None:
    """Put the complete folder `tmp` in place of `final` (which may not exist)."""
    old = temp_path(final, "old")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def clean(directory: Path, name: str | None = None) -> int:
    """Remove the temporaries (files or folders) in `directory` left by processes of this host that are gone;
    with `name`, only those of that file or folder. Returns how many were removed."""
    host = socket.gethostname()
    removed = 0
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or not match["stem"].endswith("." + host) or _alive(int(match["pid"])):
            continue
        if name is not None and match["stem"] != f"{name}.{host}":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
