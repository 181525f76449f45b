"""How a sandbox can be isolated on this machine, the command that starts one, and what may run in it.

Preferred: bubblewrap (`bwrap`) started with an empty environment, making new pid, network, ipc and uts
namespaces, a root file system holding only read-only binds of /usr and the Python installation, a new /proc,
a minimal /dev, a small private /tmp and a private workdir (both tmpfs), and a seccomp filter; inside it
`setpriv` drops to uid/gid 65534 with no capabilities and no_new_privs, and `setarch -R` turns address
randomisation off so object addresses in reprs replay identically. Where bwrap is missing or cannot run, the
fallback runs the interpreter with rlimits, a private workdir and (as root) the nobody uid, and says loudly,
in the log and in each row's metadata, what it does not block. Model-written code does not run in the
fallback unless the config allows it (`Isolation.refusal`). Which of the two this machine gets is decided by
starting a real sandbox: `sandbox.detect()`.
"""

import logging
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.tools import cgroups, seccomp

log = logging.getLogger("trajforge.sandbox")

NOBODY = 65534
WORKDIR = "/workspace"
SERVER_SOURCE = (Path(__file__).with_name("sandbox_server.py")).read_text()
# What a fallback sandbox cannot do, by name (the names go into row metadata).
FALLBACK_MISSING = ("filesystem_view", "network", "pid_namespace", "seccomp")
ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


@dataclass(frozen=True)
class Isolation:
    """The mechanism sandboxes use here and what, compared with the full design, they lack."""

    mechanism: str  # "bwrap" or "rlimits"
    missing: tuple[str, ...] = ()
    reasons: tuple[str, ...] = field(default=(), compare=False)

    @property
    def weaker(self) -> bool:
        return bool(self.missing)

    def report(self) -> dict:
        """For row metadata."""
        return {"mechanism": self.mechanism, "isolation": "weaker" if self.weaker else "full", "missing": list(self.missing)}

    def refusal(self, trusted: bool, allow_weak: bool) -> str | None:
        """Why code may not run in this sandbox, or None. Code trajforge wrote itself (`trusted`: the program
        teacher's solution programs) always may; model-written code needs bubblewrap, or `allow_weak`, and
        never runs as root without it."""
        if trusted or self.mechanism == "bwrap":
            return None
        why = "; ".join(self.reasons[:1])
        if not allow_weak:
            return (f"model-written code is not run without bubblewrap ({why}). Install it (scripts/setup.sh does), or "
                    "accept the weaker sandbox with sample.sandbox.allow_weak: true or --allow-weak-sandbox (docs/tools.md)")
        if _is_root() and "unprivileged_uid" in self.missing:
            return (f"model-written code is never run as root without bubblewrap, not even with sample.sandbox.allow_weak "
                    f"({'; '.join(self.reasons)}): install bubblewrap, or run trajforge as a normal user")
        return None


def _is_root() -> bool:
    return os.geteuid() == 0


def _interpreter_paths() -> list[str]:
    """Directories the interpreter needs: its installation, the virtual environment, their real locations."""
    paths = []
    for path in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        for candidate in (path, os.path.realpath(path)):
            if not candidate.startswith("/usr/") and not any(candidate == p or candidate.startswith(p + "/") for p in paths):
                paths.append(candidate)
    return paths


def site_packages() -> list[str]:
    return sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def python_command() -> list[str]:
    flags = ["-s", "-S"] + (["-P"] if sys.version_info >= (3, 11) else [])
    return [sys.executable, *flags, "-c", SERVER_SOURCE]


def drop_privileges() -> list[str]:
    setpriv = shutil.which("setpriv")
    if not _is_root() or not setpriv:
        return []
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all"]


def no_aslr() -> list[str]:
    setarch = shutil.which("setarch")
    return [setarch, "-R"] if setarch else []


def bwrap_command(seccomp_fd: int | None, tmp_bytes: int, work_bytes: int) -> list[str]:
    """bwrap and its arguments up to (not including) the command it runs."""
    args = [shutil.which("bwrap") or "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    if not _is_root():
        args += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime"):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # The private /tmp and workdir come before the interpreter's binds: mounted after, they would hide a
    # virtual environment or checkout that lives under /tmp (a CI clone) and the sandbox would not start.
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
             "--perms", "0777", "--size", str(work_bytes), "--tmpfs", WORKDIR]
    made = {"/tmp", WORKDIR}
    for path in _interpreter_paths():
        # bwrap makes missing parents mode 0700, which uid 65534 could not traverse.
        for parent in reversed(Path(path).parents):
            if str(parent) != "/" and str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", path, path]
        made.add(path)
    args += ["--chdir", WORKDIR]
    for key, value in {**ENVIRONMENT, "HOME": WORKDIR, "TMPDIR": "/tmp"}.items():
        args += ["--setenv", key, value]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args + ["--"]


def cgroup_missing() -> tuple[list[str], list[str]]:
    """Which cgroup limits sandboxes cannot have here (names for row metadata), and why."""
    group, problems = cgroups.create(64 << 20, 8)
    if group is not None:
        group.remove()
    return [f"cgroup_{c}" for c in sorted(problems)], [f"cgroup {c}: {why}" for c, why in sorted(problems.items())]


def fallback_isolation(reason: str) -> Isolation:
    missing, reasons = list(FALLBACK_MISSING), [reason]
    if not _is_root() or not shutil.which("setpriv"):
        missing.append("unprivileged_uid")
        reasons.append("not root: the code runs as this user" if not _is_root() else "setpriv is missing")
    elif not _nobody_can_run_python():
        missing.append("unprivileged_uid")
        reasons.append(f"uid {NOBODY} cannot reach {sys.executable}: the code runs as root")
    cgroup_gaps, cgroup_reasons = cgroup_missing()
    return Isolation("rlimits", tuple(missing + cgroup_gaps), tuple(reasons + cgroup_reasons))


def _nobody_can_run_python() -> bool:
    """Whether every directory above the interpreter is searchable by others (a pyenv under /root is not)."""
    return all(os.stat(p).st_mode & 0o001 for path in _interpreter_paths() for p in [path, *Path(path).parents])


def announce(isolation: Isolation) -> None:
    if isolation.weaker:
        log.warning("SANDBOX IS WEAKER THAN DESIGNED (%s): it lacks %s. Reasons: %s",
                    isolation.mechanism, ", ".join(isolation.missing), "; ".join(isolation.reasons))


def seccomp_program() -> bytes | None:
    return seccomp.program() if seccomp.supported() else None
