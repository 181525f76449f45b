import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TRAJFORGE = [sys.executable, "-m", "pipeline"]


def small_config(**counts) -> dict:
    """A quickstart-shaped config with small counts (default: 6 tasks per domain, 5 tasks per shard) and the
    program teacher only (the local LLM teacher has its own tests: tests/test_local_teacher.py)."""
    data = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    data["run"]["rows_per_shard"] = 5
    data["sample"]["teachers"] = [t for t in data["sample"]["teachers"] if t["policy"] == "program"]
    data.pop("endpoints", None)
    for gen in data["synthesize"]["generators"]:
        gen["count"] = counts.get(gen["name"], 6)
    return data


@pytest.fixture
def write_config(tmp_path):
    def write(data: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def run_cli(*args, cwd=None, check=False, timeout=600) -> subprocess.CompletedProcess:
    """Run `trajforge ARGS` in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(TRAJFORGE + [str(a) for a in args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"trajforge {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def limit_file_size(limit: int):
    """A preexec_fn: files of the child may not grow past `limit` bytes (a write past it fails with EFBIG, as a
    full disk fails with ENOSPC)."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def stray_temporaries(folder) -> list:
    """Temporary files and folders trajforge writes (.NAME.HOST.PID-THREAD.tmp or .old) anywhere under `folder`."""
    import re

    pattern = re.compile(r"^\..+\.\d+-\d+\.(tmp|old)$|^\..*\.(tmp|old)(\.\d+)?$|\.part$")
    return [p for p in Path(folder).rglob("*") if pattern.match(p.name)]
