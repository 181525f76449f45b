"""One cgroup per sandbox, for the limits rlimits cannot give: memory for all its processes together
(RLIMIT_AS is per process) and a process count of its own (RLIMIT_NPROC counts every process of a uid, so
concurrent sandboxes would share it).

Works with cgroup v2 (one unified hierarchy) and v1 (separate `memory` and `pids` hierarchies). Each sandbox
group is made as a child of the cgroup this process is in, so it stays inside whatever limits the machine
already puts on us. Where a controller cannot be used, `create` says which, and the sandbox reports itself
weaker.

A group is named after the process that made it (`trajforge-<pid>-<n>`), so one left behind by a process that
was SIGKILLed (nothing of it could clean up) is recognised and removed when a later process makes its first.
"""

import errno
import itertools
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
log = logging.getLogger("trajforge.sandbox")
_counter = itertools.count()
_NAME = re.compile(r"trajforge-(\d+)-\d+")
_swept = threading.Lock()  # held for good once this process has removed the stale groups


def _own_paths() -> dict[str, str]:
    """Controller ('' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


@dataclass
class Cgroup:
    dirs: list[Path]
    version: int

    @property
    def controllers(self) -> set[str]:
        return {"memory", "pids"} if self.version == 2 else {d.relative_to(ROOT).parts[0] for d in self.dirs}

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found = set()
        for path in self.procs_files:
            try:
                found |= {int(p) for p in Path(path).read_text().split()}
            except FileNotFoundError:
                pass
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this group for exceeding its memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for d in self.dirs:
            path = d / name
            if path.exists():
                for line in path.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False

    def kill(self, spare: frozenset[int] = frozenset(), timeout: float = 5.0) -> bool:
        """SIGKILL every process in the group (but those in `spare`) and wait until they are gone (or are
        zombies, which only their parent can collect); False on timeout."""
        kill_file = self.dirs[0] / "cgroup.kill"
        if not spare and self.version == 2 and kill_file.exists():
            kill_file.write_text("1")
        deadline = time.monotonic() + timeout
        while True:
            remaining = {pid for pid in self.pids() - spare if not _zombie(pid)}
            if not remaining:
                return True
            if time.monotonic() > deadline:
                return False
            for pid in remaining:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)  # killed processes leave the group when the kernel has torn them down

    def remove(self) -> None:
        """Remove the group; one that still holds a process (it would not die) is left, with a warning."""
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.warning("could not remove cgroup %s: %s", d, exc.strerror)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True  # gone already


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_stale(parents: list[Path], version: int) -> list[Path]:
    """Remove the groups under `parents` whose maker is gone, killing what still runs in them; the removed."""
    removed = []
    for parent in parents:
        try:
            entries = [e for e in os.scandir(parent) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for entry in entries:
            match = _NAME.fullmatch(entry.name)
            if match and int(match.group(1)) != os.getpid() and not alive(int(match.group(1))):
                group = Cgroup([Path(entry.path)], version)
                group.kill()
                group.remove()
                if not os.path.exists(entry.path):
                    removed.append(Path(entry.path))
    if removed:
        log.info("removed %d cgroup(s) left behind by killed processes", len(removed))
    return removed


def _v2_parent_path() -> Path:
    return ROOT / _own_paths().get("", "/").lstrip("/")


def _v2_parent() -> tuple[Path | None, str]:
    parent = _v2_parent_path()
    control = parent / "cgroup.subtree_control"
    try:
        enabled = set(control.read_text().split())
        missing = {"memory", "pids"} - enabled
        if missing:
            control.write_text(" ".join(f"+{c}" for c in sorted(missing)))
    except OSError as exc:
        return None, f"cannot enable memory and pids controllers in {parent} ({exc.strerror})"
    return parent, ""


def _make(parent: Path, name: str, settings: dict[str, int]) -> Path:
    group = parent / name
    group.mkdir()
    try:
        for key, value in settings.items():
            path = group / key
            if path.exists():
                path.write_text(str(value))
    except OSError:
        group.rmdir()
        raise
    return group


def create(memory_bytes: int, max_processes: int) -> tuple[Cgroup | None, dict[str, str]]:
    """A new group with the limits set (or None), and for each of "memory" and "pids" it cannot limit, why."""
    name = f"trajforge-{os.getpid()}-{next(_counter)}"
    try:
        v2 = (ROOT / "cgroup.controllers").exists()
        if _swept.acquire(blocking=False):
            remove_stale(_parents(v2), 2 if v2 else 1)
        if v2:
            parent, problem = _v2_parent()
            if parent is None:
                return None, {"memory": problem, "pids": problem}
            group = _make(parent, name, {"memory.max": memory_bytes, "memory.swap.max": 0, "pids.max": max_processes})
            return Cgroup([group], 2), {}
        return _create_v1(name, memory_bytes, max_processes)
    except OSError as exc:
        problem = f"{exc.strerror or exc} ({exc.filename or ROOT})"
        return None, {"memory": problem, "pids": problem}


def _parents(v2: bool) -> list[Path]:
    """Where this process makes its groups."""
    if v2:
        return [_v2_parent_path()]
    own = _own_paths()
    return [ROOT / c / own[c].lstrip("/") for c in ("memory", "pids") if c in own]


def _create_v1(name: str, memory_bytes: int, max_processes: int) -> tuple[Cgroup | None, dict[str, str]]:
    own = _own_paths()
    dirs, missing = [], {}
    memory = {"memory.limit_in_bytes": memory_bytes, "memory.memsw.limit_in_bytes": memory_bytes}  # memsw: no swap
    try:
        for controller, settings in (("memory", memory), ("pids", {"pids.max": max_processes})):
            base = ROOT / controller
            if controller not in own or not base.is_dir():
                missing[controller] = "controller not mounted"
                continue
            dirs.append(_make(base / own[controller].lstrip("/"), name, settings))
    except OSError:
        Cgroup(dirs, 1).remove()
        raise
    return (Cgroup(dirs, 1) if dirs else None), missing
