"""The escape suite: each test tries one way out of the sandbox and asserts it is blocked or contained.

Tests that need a protection this machine cannot give (see `detect()`) are skipped naming it; the
sandbox logs and records that it is weaker. scripts/setup.sh installs bubblewrap so that nothing is skipped.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.tools import isolation
from pipeline.tools.limits import Limits
from pipeline.tools.sandbox import Sandbox, detect
from tests.helpers import host_processes_with as _host_processes_with

ROOT = Path(__file__).resolve().parent.parent
LIMITS = Limits(timeout_seconds=5, cpu_seconds=3, memory_mb=256, file_size_mb=4, max_processes=16, workdir_mb=16)
SECRET = "sk-trajforge-test-0123456789abcdef"


def need(*protections: str) -> None:
    missing = set(protections) & set(detect().missing)
    if missing:
        pytest.skip(f"this machine's sandbox lacks {', '.join(sorted(missing))}")


@pytest.fixture
def box():
    with Sandbox(LIMITS) as sandbox:
        yield sandbox


def test_a_normal_snippet_runs_and_its_state_persists(box):
    first = box.run("import math\nx = math.factorial(10)\nprint('x is', x)\nx + 1")
    assert (first.stdout, first.value, first.error, first.failure) == ("x is 3628800\n", "3628801", None, None)
    assert box.run("x // 10").value == "362880"


def test_reading_etc_shadow_is_blocked(box):
    need("filesystem_view")
    result = box.run("try:\n    print(open('/etc/shadow').read())\nexcept OSError as exc:\n    print('blocked', type(exc).__name__)")
    assert result.stdout.startswith("blocked"), result


def test_reading_the_users_home_is_blocked(box):
    need("filesystem_view")
    files = [str(p) for p in Path.home().iterdir() if p.is_file() and os.access(p, os.R_OK)]
    if not files:
        pytest.skip("the home directory has no readable file to try")
    code = (f"read = []\nfor path in {files!r}:\n    try:\n        open(path, 'rb').read(1)\n        read.append(path)\n"
            "    except OSError:\n        pass\nprint('read:', read)")
    assert box.run(code).stdout == "read: []\n"


def test_reading_the_projects_config_with_a_key_is_blocked(box, tmp_path):
    need("filesystem_view")
    config = tmp_path / "run.yaml"
    config.write_text(f"endpoints:\n  teacher:\n    api_key: {SECRET}\n")
    paths = [str(config), str(ROOT / "configs" / "quickstart.yaml"), str(ROOT / "pyproject.toml")]
    code = (f"for path in {paths!r}:\n    try:\n        print('READ', open(path).read())\n    except OSError as exc:\n"
            "        print('blocked', type(exc).__name__)")
    result = box.run(code)
    assert result.stdout.count("blocked") == 3 and SECRET not in result.stdout, result


def test_secret_environment_variables_are_not_reachable():
    """The key is in the launching process's environment from its start, as when a user exports it: neither
    the code's environment nor any /proc/*/environ the code can read may hold it."""
    if {"unprivileged_uid", "pid_namespace"} <= set(detect().missing):
        pytest.skip("without a pid namespace or the nobody uid, /proc/<parent>/environ is readable")
    code = ("import os, glob\nfound = [k for k, v in os.environ.items() if 'sk-trajforge' in v]\nreadable = 0\n"
            "for path in ['/proc/self/environ', '/proc/1/environ', *glob.glob('/proc/[0-9]*/environ')]:\n"
            "    try:\n        data = open(path, 'rb').read()\n        readable += 1\n"
            "        found += [path] if b'sk-trajforge' in data else []\n    except OSError:\n        pass\n"
            "print('readable', readable > 0, 'found', found)")
    launcher = ("import sys\nfrom pipeline.tools.limits import Limits\nfrom pipeline.tools.sandbox import Sandbox\n"
                f"with Sandbox(Limits(**{LIMITS.__dict__!r})) as box:\n    print(box.run(sys.argv[1]).stdout, end='')")
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "TRAJFORGE_TEST_TOKEN": SECRET}
    proc = subprocess.run([sys.executable, "-c", launcher, code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "readable True found []\n", proc.stderr


def test_writing_outside_the_workdir_is_blocked(box, tmp_path):
    need("filesystem_view")
    targets = ["/usr/trajforge-escape", f"{ROOT}/trajforge-escape", f"{tmp_path}/trajforge-escape", "/etc/trajforge-escape"]
    code = (f"for path in {targets!r}:\n    try:\n        open(path, 'w').write('x')\n        print('WROTE', path)\n"
            "    except OSError:\n        print('blocked')\nopen('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())")
    result = box.run(code)
    assert result.stdout == "blocked\n" * 4 + "fine\n", result
    assert not any(os.path.exists(t) for t in targets)


def test_connecting_to_a_listener_on_the_hosts_loopback_is_blocked(box):
    need("network")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('CONNECTED')\n"
                "except OSError as exc:\n    print('blocked', type(exc).__name__)")
        result = box.run(code)
        assert result.stdout.startswith("blocked"), result
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_a_fork_bomb_is_contained_and_leaves_nothing_running(box):
    need("cgroup_pids")
    result = box.run("import os\nwhile True:\n    os.fork()")
    assert result.failure or "BlockingIOError" in (result.error or ""), result
    assert box.run("1 + 1").value == "2"
    assert len(box.cgroup.pids()) <= 3  # the launcher, bwrap's init and the interpreter


def test_one_huge_allocation_fails_with_memory_error(box):
    result = box.run("block = bytearray(2 << 30)")
    assert result.error and result.error.endswith("MemoryError"), result
    assert box.run("'still alive'").value == "'still alive'"


def test_many_processes_together_cannot_exceed_the_memory_limit(box):
    need("cgroup_memory")
    code = """import os, signal
done_r, done_w = os.pipe()
go_r, go_w = os.pipe()
for _ in range(6):
    if os.fork() == 0:
        os.close(done_r); os.close(go_w)
        data = bytearray(150 << 20)
        for i in range(0, len(data), 4096):
            data[i] = 1
        os.write(done_w, b"x"); os.close(done_w)
        os.read(go_r, 1)
        os._exit(0)
os.close(done_w); os.close(go_r)
ready = 0
while os.read(done_r, 1):
    ready += 1
os.close(go_w)
killed = sum(os.WIFSIGNALED(os.wait()[1]) for _ in range(6))
print(ready, killed)"""
    result = box.run(code)
    if result.failure:
        assert "memory" in result.failure, result
    else:
        ready, killed = map(int, result.stdout.split())
        assert ready < 6 and killed >= 1, result


def test_an_infinite_loop_is_stopped_and_the_next_cell_gets_a_fresh_interpreter():
    with Sandbox(Limits(timeout_seconds=1, cpu_seconds=5)) as box:
        box.run("marker = 1")
        result = box.run("while True:\n    pass")
        assert result.failure.startswith("execution timed out after 1 s (wall clock)"), result
        assert box.run("'marker' in globals()").value == "False"


def test_a_cpu_hog_within_the_wall_clock_hits_the_cpu_limit():
    with Sandbox(Limits(timeout_seconds=10, cpu_seconds=1)) as box:
        result = box.run("while True:\n    pass")
    assert result.failure.startswith("the interpreter exceeded its CPU time limit (1 s)"), result


def test_a_huge_file_write_is_capped(box):
    code = ("chunk = b'x' * (1 << 20)\ntry:\n    with open('big.bin', 'wb') as f:\n        for _ in range(1024):\n"
            "            f.write(chunk)\nexcept OSError as exc:\n    print('stopped', type(exc).__name__)\n"
            "import os\nprint(os.path.getsize('big.bin') <= 4 << 20)")
    assert box.run(code).stdout == "stopped OSError\nTrue\n"


def test_a_background_process_does_not_outlive_the_call(box):
    need("pid_namespace")
    marker = f"{os.getpid()}.4321"
    code = (f"import subprocess, os\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
            f"if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '{marker}'])\n'started'")
    assert box.run(code).value == "'started'"
    assert _host_processes_with(marker) == []


def test_flooded_output_is_cut_inside_and_reported(box):
    result = box.run("print('x' * 10_000_000)")
    assert len(result.stdout) == LIMITS.output_bytes and result.stdout_bytes == LIMITS.file_size_mb << 20
    assert result.error.endswith("File too large"), result.error
    assert box.run("print('after'); 1").stdout == "after\n"


@pytest.mark.parametrize("forged", [b"garbage\n", b'{"call": "anything"}\n'])
def test_forging_messages_on_the_control_channel_resets_the_sandbox(box, forged):
    box.run("secret = 1")
    code = f"import os\nfor fd in range(3, 12):\n    try:\n        os.write(fd, {forged!r})\n    except OSError:\n        pass"
    result = box.run(code)
    assert "control channel" in result.failure, result
    assert box.run("'secret' in globals()").value == "False"


def test_seccomp_refuses_new_namespaces_and_inet_sockets(box):
    need("seccomp")
    code = ("import ctypes, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.unshare(0x10000000), ctypes.get_errno())\n"
            "try:\n    socket.socket(socket.AF_INET)\nexcept OSError as exc:\n    print('inet', exc.errno)\n"
            "import os\nr, w = os.pipe()\nprint('pipes fine')")
    assert box.run(code).stdout == "-1 1\ninet 97\npipes fine\n"


def test_code_runs_as_nobody_without_capabilities(box):
    need("unprivileged_uid")
    result = box.run("import os\ncaps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]\n(os.getuid(), caps)")
    assert result.value == "(65534, ['0000000000000000'])"


def test_the_same_code_gives_the_same_observation_in_a_fresh_sandbox():
    code = ("import random, numpy\nprint(random.random(), numpy.random.randint(1000), sorted({'b', 'a'}), list({'x', 'y', 'z'}))\n"
            "object()")
    results = []
    for _ in range(2):
        with Sandbox(LIMITS) as sandbox:
            results.append(sandbox.run(code))
    assert results[0] == results[1] and results[0].error is None


def test_the_fallback_runs_code_and_calls_itself_weaker(caplog):
    how = isolation.fallback_isolation("forced by the test")
    with Sandbox(LIMITS, how) as sandbox:
        assert sandbox.run("6 * 7").value == "42"
    assert how.report()["isolation"] == "weaker" and "network" in how.report()["missing"]
    with caplog.at_level("WARNING", logger="trajforge.sandbox"):
        isolation.announce(how)
    assert "WEAKER" in caplog.text and "network" in caplog.text


def test_without_bwrap_the_detection_falls_back_and_logs_it(monkeypatch, caplog):
    monkeypatch.setenv("PATH", "/nonexistent")
    detect.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="trajforge.sandbox"):
            how = detect()
    finally:
        detect.cache_clear()
    assert how.mechanism == "rlimits" and "bwrap is not installed" in how.reasons[0]
    assert "SANDBOX IS WEAKER THAN DESIGNED (rlimits)" in caplog.text


def test_an_interpreter_under_tmp_stays_reachable_inside(tmp_path, monkeypatch):
    """A checkout or virtual environment under /tmp (a CI clone) is bound after the private /tmp is mounted, so
    the full sandbox still starts (before, the private /tmp hid it and the escape tests were skipped)."""
    if detect().mechanism != "bwrap":
        pytest.skip("bwrap does not run here")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "marker.txt").write_text("here")
    paths = isolation._interpreter_paths()
    monkeypatch.setattr(isolation, "_interpreter_paths", lambda: [*paths, str(venv)])
    with Sandbox(LIMITS, isolation.Isolation("bwrap"), pooled=False) as sandbox:  # not one started before the patch
        result = sandbox.run(f"open({str(venv / 'marker.txt')!r}).read()")
    assert str(venv).startswith("/tmp/") and result.value == "'here'", result.error or result.failure
