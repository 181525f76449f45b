"""Faults with an LLM teacher and an LLM judge (a fake OpenAI server over real HTTP): kill -9 during sample
and verify, then re-run; 5xx, 429 and timeouts along the way. The dataset must equal a fault-free run's, and
a reply that was cached before the kill must never be requested again."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import time

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import cli
from tests.conftest import ROOT, TRAJFORGE
from tests.fake_openai import FakeOpenAI, Fault, calculator_solver


def responder(path, body):
    if body["model"] == "judge":
        return json.dumps({"passed": True, "score": 4, "rationale": "fine"})
    return calculator_solver(path, body)


def config(server) -> dict:
    endpoint = {"base_url": server.base_url, "max_retries": 8, "timeout_s": 0.5, "max_concurrency": 4}
    return {
        "run": {"rows_per_shard": 2},
        "endpoints": {"teacher": {**endpoint, "model": "teacher"}, "judge": {**endpoint, "model": "judge"}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": 10}]},
        "sample": {"teachers": [{"name": "t", "policy": "llm", "endpoint": "teacher", "formats": ["react", "cota"], "max_steps": 4}]},
        "verify": {"judges": [{"name": "j", "endpoint": "judge"}], "committee": {"quorum": 1},
                   "checks": [{"name": "schema"}, {"name": "replay"}, {"name": "answer", "hard": False}]},  # the fake always answers 42
    }


def dataset(run_dir) -> list[tuple]:
    rows = []
    for path in sorted((run_dir / "dataset" / "data").glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "final_answer", "score"])
        rows += list(zip(*(table[c].to_pylist() for c in table.column_names)))
    return sorted(rows)


def cached_replies(run_dir) -> int:
    """Replies in the run's cache; 0 when the kill came before the stage opened it (a loaded machine)."""
    if not (run_dir / "cache.sqlite").exists():
        return 0
    with sqlite3.connect(run_dir / "cache.sqlite") as db:
        if not db.execute("SELECT name FROM sqlite_master WHERE name = 'replies'").fetchone():
            return 0
        return db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]


@pytest.fixture
def server():
    with FakeOpenAI(models=("teacher", "judge"), responder=responder, latency=0.1) as fake:
        yield fake


@pytest.fixture
def reference(server, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(server)))
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "reference")]) == 0
    requests = len(server.completions)
    server.completions.clear()
    return path, dataset(tmp_path / "reference"), requests


@pytest.mark.parametrize("stage_dir", ["trajectories", "verified"])
def test_kill_during_llm_stage_then_rerun_requests_only_unfinished_work(server, reference, tmp_path, stage_dir):
    path, expected, total_requests = reference
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(TRAJFORGE + ["run", str(path), "--run-dir", str(run_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / stage_dir).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # polling for the stage to start: the kill point is what this test varies
    time.sleep(random.Random(stage_dir).uniform(0.05, 0.3))
    assert proc.poll() is None, "the run ended before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cached = cached_replies(run_dir)
    server.completions.clear()
    assert cli.main(["run", str(path), "--run-dir", str(run_dir)]) == 0
    assert len(server.completions) == total_requests - cached  # nothing cached before the kill was asked again
    assert dataset(run_dir) == expected


def test_5xx_429_and_timeouts_during_sample_and_verify_change_nothing(server, reference, tmp_path):
    path, expected, total_requests = reference
    rng = random.Random(7)
    kinds = [Fault(500), Fault(503), Fault(429, {"Retry-After": "0"}), Fault(200, delay=1.0), Fault(200, body='{"choices": [')]
    faults = [rng.choice(kinds) for _ in range(total_requests // 3)]
    server.faults += faults
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run")]) == 0
    assert not server.faults  # every injected fault was served (they are spread over sample and verify)
    assert dataset(tmp_path / "run") == expected
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["stages"]["sample"]["retries"] + report["stages"]["verify"]["retries"] == len(faults)
