"""Fail closed: model-written code does not run where bubblewrap is missing unless the config accepts the
weaker sandbox, and never as root without it; the program teacher's own code runs either way. And the host
state a SIGKILLed process leaves behind (cgroups, fallback workdirs) is removed at the next start.

"bwrap missing" is made the way isolation.py finds it: a PATH that holds setpriv and setarch but no bwrap.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import cli, shards
from pipeline.errors import UserError
from pipeline.formats import FORMATS
from pipeline.sample.agent import run_episode
from pipeline.tools import Env, cgroups, isolation, launch, run_action, run_tool
from pipeline.tools.python import code_is_ours
from pipeline.tools.sandbox import detect
from tests.conftest import ROOT
from tests.fake_openai import FakeOpenAI
from tests.helpers import make_task
from tests.test_codeact import CONFIG, TEACHER, ScriptedPolicy, sample_row

CODE = {"code": "import os\nos.getuid()"}


@pytest.fixture
def without_bwrap(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("setpriv", "setarch"):
        if shutil.which(tool):
            (folder / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(folder))
    detect.cache_clear()
    yield folder
    detect.cache_clear()


def test_model_written_code_is_refused_without_bwrap(without_bwrap):
    with Env() as env, pytest.raises(UserError, match=r"not run without bubblewrap \(bwrap is not installed.*allow_weak: true"):
        run_action("code", "python", CODE, env, ["python"])
    with Env() as env, pytest.raises(UserError, match="allow_weak"):
        run_tool("python", CODE, env)


def test_with_allow_weak_model_written_code_runs_in_the_weaker_sandbox(without_bwrap):
    how = detect()
    if os.geteuid() == 0 and "unprivileged_uid" in how.missing:
        pytest.skip(f"here the fallback would run code as root ({'; '.join(how.reasons[1:2])}): the next test covers it")
    with Env(sandbox_limits={"allow_weak": True}) as env:
        result = run_action("code", "python", CODE, env, ["python"])
    assert how.mechanism == "rlimits" and not result.error
    assert result.content == str(isolation.NOBODY if os.geteuid() == 0 else os.getuid())


def test_allow_weak_never_runs_model_written_code_as_root(without_bwrap):
    if os.geteuid() != 0:
        pytest.skip("not root: the fallback runs code as this user")
    (without_bwrap / "setpriv").unlink(missing_ok=True)  # no way to drop to uid 65534
    detect.cache_clear()
    with Env(sandbox_limits={"allow_weak": True}) as env, pytest.raises(UserError, match="never run as root .*setpriv is missing"):
        run_action("code", "python", CODE, env, ["python"])


def test_the_program_teachers_own_code_runs_without_bwrap(without_bwrap):
    row = sample_row(make_task("python_compute", 1))
    assert row["error"] is None and all(s["error"] is None for s in row["steps"])
    assert row["meta"]["sandbox"]["mechanism"] == "rlimits" and row["meta"]["sandbox"]["isolation"] == "weaker"


def test_a_solution_program_an_llm_proposed_counts_as_model_written(without_bwrap):
    task = {**make_task("python_compute", 1), "source": "llm:some-model"}
    assert code_is_ours("program", "program:python_compute") and not code_is_ours("program", task["source"])
    assert not code_is_ours("llm:some-model", "program:python_compute")
    with pytest.raises(UserError, match="not run without bubblewrap"):
        sample_row(task)


def test_an_episode_with_model_written_code_stops_without_bwrap(without_bwrap):
    task = make_task("python_compute", 1)
    with Env(task["environment"], 4000, CONFIG["sample"]["sandbox"]) as env, pytest.raises(UserError):
        asyncio.run(run_episode(task, ScriptedPolicy(["```python\nprint(1)\n```", "Final Answer: 1"]), FORMATS["codeact"], env, 4))


def codeact_solver(path: str, body: dict) -> str:
    last = body["messages"][-1]["content"]
    if last.startswith("Observation: "):
        return f"Thought: done\nFinal Answer: {last.removeprefix('Observation: ')}"
    return "Thought: compute it\n```python\nprint(6 * 7)\n```"


def test_the_cli_refuses_an_llm_teachers_code_without_bwrap_until_allowed(without_bwrap, tmp_path, capsys):
    with FakeOpenAI(responder=codeact_solver) as server:
        config = {"run": {"name": "t", "rows_per_shard": 2},
                  "endpoints": {"fake": {"base_url": server.base_url, "model": "fake-model", "mode": "chat", "max_retries": 1, "timeout_s": 5}},
                  "synthesize": {"generators": [{"name": "arithmetic", "count": 2}]},
                  "sample": {"teachers": [{"name": "teacher", "policy": "llm", "endpoint": "fake", "formats": ["codeact"], "max_steps": 4}]}}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        args = ["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample"]
        assert cli.main(args) == 2
        refused = capsys.readouterr().err
        assert "error: model-written code is not run without bubblewrap" in refused and "--allow-weak-sandbox" in refused
        assert not list((tmp_path / "run" / "trajectories").glob("part-*.parquet"))
        allowed = cli.main([*args, "--allow-weak-sandbox"])
    if detect().refusal(trusted=False, allow_weak=True):  # root, and uid 65534 cannot reach this interpreter
        assert allowed == 2 and "never run as root" in capsys.readouterr().err
    else:
        assert allowed == 0
        written = [r for p in (tmp_path / "run" / "trajectories").glob("part-*.parquet") for r in shards.read_shard(p, "trajectory")]
        assert len(written) == 2 and all(r["final_answer"] == "42" and r["meta"]["sandbox"]["mechanism"] == "rlimits" for r in written)


# -- host state left by a killed process ----------------------------------------------------------------------

HOLDER = """import sys
from pipeline.tools import isolation
from pipeline.tools.sandbox import Sandbox
how = isolation.fallback_isolation("held by the test") if sys.argv[1] == "rlimits" else None
box = Sandbox(how=how, pooled=False)
assert box.run("1 + 1").value == "2"
left = [str(d) for d in box.cgroup.dirs] if box.cgroup else []
print(" ".join(left + ([box.process.workdir] if box.process.workdir else [])), flush=True)
sys.stdin.read()
"""


def kill_a_holder(mechanism: str) -> list[Path]:
    """Start a process holding a sandbox, SIGKILL it, and return the host paths it left."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, mechanism], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        left = [Path(p) for p in holder.stdout.readline().split()]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    return left


def start_a_sandbox() -> None:
    subprocess.run([sys.executable, "-c", "from pipeline.tools.sandbox import Sandbox\nassert Sandbox(pooled=False).run('1').value == '1'"],
                   cwd=ROOT, check=True, timeout=60)


@pytest.mark.parametrize("mechanism", ["bwrap", "rlimits"])
def test_what_a_killed_process_left_is_removed_at_the_next_start(mechanism):
    if mechanism == "bwrap" and detect().mechanism != "bwrap":
        pytest.skip("bwrap does not run here")
    if "cgroup_memory" in detect().missing and mechanism == "bwrap":
        pytest.skip("no cgroups here: a bwrap sandbox leaves nothing on the host")
    left = kill_a_holder(mechanism)
    assert left and all(path.exists() for path in left), left  # SIGKILL: nothing of the holder could clean up
    start_a_sandbox()
    assert [path for path in left if path.exists()] == []


def test_the_cgroups_and_workdirs_of_live_processes_are_kept():
    group, _ = cgroups.create(64 << 20, 8)
    if group is None:
        pytest.skip("no cgroups here")
    workdir = Path(launch.tempfile.mkdtemp(prefix=f"{launch.WORKDIR_PREFIX}{os.getpid()}-"))
    try:
        start_a_sandbox()
        assert all(d.exists() for d in group.dirs) and workdir.exists()
    finally:
        group.remove()
        workdir.rmdir()
