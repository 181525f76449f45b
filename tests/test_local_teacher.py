"""The embedded default teacher for real: llama.cpp serving Gemma 3 270M on 127.0.0.1, started and stopped
by trajforge. Slow-ish (the model runs on the CPU), so a few tasks only."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import yaml

from pipeline import cli, schema, shards
from pipeline.tools import TOOLS, Env
from tests.conftest import ROOT


def local_config(tasks: int = 2) -> dict:
    return {
        "run": {"name": "local", "rows_per_shard": 1},
        "endpoints": {"local": {"base_url": "local", "model": "gemma-3-270m", "mode": "completion", "max_concurrency": 1, "timeout_s": 300}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": tasks}]},
        "sample": {"teachers": [{"name": "gemma", "policy": "llm", "endpoint": "local", "formats": ["react"], "max_steps": 3, "max_tokens": 64}]},
    }


def check(row: dict, name: str) -> dict:
    """The verify stage's result for check `name` on a verified row."""
    return next(c for c in row["checks"] if c["name"] == name)


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_local_teacher_samples_tasks_end_to_end(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(local_config()))
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify"]) == 0
    rows = [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    assert len(rows) == 2
    tool_steps = 0
    for row in rows:
        assert schema.errors("trajectory", row) == []
        assert row["source"] == "llm:gemma-3-270m" and row["teacher"]["mode"] == "completion" and row["usage"]["llm_calls"] >= 1
        assert check(row, "messages_steps")["passed"]
        assert all(m["content"].startswith("Thought:") for m in row["messages"] if m["role"] == "assistant")
        for step in row["steps"]:
            if step["tool_name"] in TOOLS and step["observation"] is not None:
                with Env(row["environment"]) as env:
                    assert TOOLS[step["tool_name"]].run(json.loads(step["tool_arguments"]), env).content == step["observation"]
                tool_steps += 1
    assert tool_steps >= 1, "the model called no tool at all"
    assert not [pid for pid in children(os.getpid()) if "llama_cpp" in open(f"/proc/{pid}/cmdline").read()]


def test_ctrl_c_while_the_model_loads_stops_the_server(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(local_config(1)))
    args = [sys.executable, "-m", "pipeline", "run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        match = re.search(r"starting the local teacher.*\(pid (\d+),", line)
        if match:
            break
    assert match, "the local teacher was never started"
    server_pid = int(match.group(1))
    proc.send_signal(signal.SIGINT)
    proc.stdout.read()
    assert proc.wait(60) == 130
    assert not os.path.exists(f"/proc/{server_pid}")


def test_local_teacher_commands_start_report_and_stop_a_server(tmp_path, monkeypatch):
    from tests.conftest import run_cli

    monkeypatch.setenv("TRAJFORGE_HOME", str(tmp_path))
    try:
        started = run_cli("local-teacher", "start", check=True).stdout
        url = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", started).group(1)
        assert url in run_cli("local-teacher", "status", check=True).stdout
        with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
            assert json.load(response)["data"][0]["id"] == "gemma-3-270m"
    finally:
        stopped = run_cli("local-teacher", "stop", check=True).stdout
    assert "stopped" in stopped
    assert "not running" in run_cli("local-teacher", "status", check=True).stdout


def test_judges_on_the_real_local_server_return_schema_valid_verdicts(tmp_path):
    """llama.cpp enforces the verdict's JSON schema with a grammar: every vote is a valid verdict or, if the
    model ran out of tokens, an explicit abstention."""
    data = {
        "run": {"rows_per_shard": 2},
        "endpoints": {"local": {"base_url": "local", "model": "gemma-3-270m", "mode": "completion", "max_concurrency": 1, "timeout_s": 300}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": 2}]},
        "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["react"]}]},
        "verify": {"judges": [{"name": "correct", "endpoint": "local", "rubric": "correctness", "max_tokens": 200},
                              {"name": "faithful", "endpoint": "local", "rubric": "faithfulness", "max_tokens": 200}],
                   "committee": {"rule": "mean_score", "threshold": 3}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify"]) == 0
    rows = [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    votes = [j for row in rows for j in row["judgments"]]
    assert len(votes) == 4 and {j["model"] for j in votes} == {"gemma-3-270m"}
    valid = [j for j in votes if j["passed"] is not None]
    assert valid, [j["rationale"] for j in votes]
    for j in valid:
        assert isinstance(j["passed"], bool) and 1 <= j["score"] <= 5 and isinstance(j["rationale"], str)
    for j in votes:
        if j["passed"] is None:
            assert j["rationale"].startswith("abstained:")
    assert all(any(c["name"] == "committee" for c in row["checks"]) for row in rows)


def _start_run(tmp_path, tasks: int, stages: str) -> tuple[subprocess.Popen, int]:
    """`trajforge run` in a subprocess on the local teacher; returns it and the server's pid once it started."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(local_config(tasks)))
    args = [sys.executable, "-m", "pipeline", "run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", stages]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        match = re.search(r"starting the local teacher.*\(pid (\d+),", line)
        if match:
            return proc, int(match.group(1))
    raise AssertionError("the local teacher was never started: " + proc.stderr.read())


def _first_shard(folder, proc, timeout=600) -> None:
    """Wait until the stage has written a shard (any: shards run concurrently)."""
    import time

    deadline = time.monotonic() + timeout
    while not list(folder.glob("part-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(folder.glob("part-*.parquet")) and proc.poll() is None, "no shard was written while the stage ran"


def test_a_local_server_that_dies_mid_stage_stops_it_with_how_it_died(tmp_path):
    proc, server_pid = _start_run(tmp_path, 6, "synthesize,sample")
    _first_shard(tmp_path / "run" / "trajectories", proc)
    os.kill(server_pid, signal.SIGSEGV)  # what the AMX build did on its first completion
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, out + err
    log = tmp_path / "run" / "local-teacher.log"
    assert f"error: endpoints.local: the local teacher (llama.cpp) died with SIGSEGV; end of {log}: " in err
    assert "Traceback" not in err
    trajectories = tmp_path / "run" / "trajectories"
    stage_hash = json.loads((trajectories / "_manifest.json").read_text())["stage_hash"]
    done = [k for k in range(6) if shards.is_done(trajectories / shards.shard_name(k), stage_hash)]
    assert 1 <= len(done) < 6  # finished shards kept, the rest not marked done


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    proc, server_pid = _start_run(tmp_path, 6, "synthesize,sample")
    _first_shard(tmp_path / "run" / "trajectories", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert "terminated (SIGTERM): finished shards are kept; re-run the same command to resume" in err
    assert "Traceback" not in err
    assert not os.path.exists(f"/proc/{server_pid}")
    assert not [pid for pid in children(os.getpid()) if "llama_cpp" in open(f"/proc/{pid}/cmdline").read()]
    assert list((tmp_path / "run" / "trajectories").glob("part-*.parquet"))
