"""Faults with an LLM teacher and an LLM judge (a fake OpenAI server over real HTTP): kill -9 during sample
and verify, then re-run; 5xx, 429 and timeouts along the way. The dataset must equal a fault-free run's, and
a reply that was cached before the kill must never be requested again."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import cli
from tests.conftest import ROOT, TRAJFORGE, limit_file_size, stray_temporaries
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


def test_full_disk_while_caching_replies_is_a_clear_error_and_a_rerun_resumes(server, reference, tmp_path):
    """RLIMIT_FSIZE: the cache's WAL cannot grow, so its COMMIT fails ("disk I/O error") after SQLite rolled back."""
    path, expected, _ = reference
    run_dir = tmp_path / "run"
    assert cli.main(["run", str(path), "--run-dir", str(run_dir), "--stages", "synthesize"]) == 0
    proc = subprocess.run(TRAJFORGE + ["run", str(path), "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True,
                          preexec_fn=limit_file_size(40_000), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"cannot write {run_dir / 'cache.sqlite'}" in proc.stderr and "re-run the same command to resume" in proc.stderr
    assert not stray_temporaries(run_dir)
    assert cli.main(["run", str(path), "--run-dir", str(run_dir)]) == 0
    assert dataset(run_dir) == expected


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs at tmp_path/disk (root only), resized with `grow(size)`; unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield disk, lambda size: subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def used_kib(folder) -> int:
    stats = os.statvfs(folder)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize // 1024


def size_kib(folder) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4 for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("first, room", [(None, 80), (None, 300)] + [("synthesize,sample,verify", f) for f in (0.05, 0.5, 0.85)])
def test_full_tmpfs_at_any_stage_is_a_clear_error_and_a_rerun_resumes(server, reference, small_disk, tmp_path, first, room):
    """A real ENOSPC, at whatever write the disk fills: the cache, shards and markers of sample (a fresh run on a
    disk of `room` KiB), or curate's dataset (the row stages done first, then `room` of the dataset's size left)."""
    path, expected, _ = reference
    disk, grow = small_disk
    run_dir = disk / "run"
    grow("64m")
    if first:
        assert cli.main(["run", str(path), "--run-dir", str(run_dir), "--stages", first]) == 0
        room = int(room * size_kib(tmp_path / "reference" / "dataset"))
    grow(f"{used_kib(disk) + room}k")
    proc = subprocess.run(TRAJFORGE + ["run", str(path), "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2 and "cannot write" in proc.stderr, proc.stderr[-2000:]
    assert "re-run the same command to resume" in proc.stderr
    grow("64m")
    assert cli.main(["run", str(path), "--run-dir", str(run_dir)]) == 0
    assert dataset(run_dir) == expected
    assert not stray_temporaries(run_dir)


def test_bytes_changed_in_a_trajectory_shard_are_redone_from_the_cache(server, reference, tmp_path):
    path, expected, _ = reference
    run_dir = shutil.copytree(tmp_path / "reference", tmp_path / "run")
    shard = run_dir / "trajectories" / "part-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    server.completions.clear()
    assert cli.main(["run", str(path), "--run-dir", str(run_dir)]) == 0
    assert server.completions == []  # redone from the cache: no request
    assert dataset(run_dir) == expected


def test_a_damaged_response_cache_is_one_line_naming_it(server, reference, tmp_path):
    path, _, _ = reference
    run_dir = shutil.copytree(tmp_path / "reference", tmp_path / "run")
    for name in ("cache.sqlite-wal", "cache.sqlite-shm"):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / "cache.sqlite").write_bytes(b"not an SQLite database" * 500)
    (run_dir / "trajectories" / "part-00000.parquet").unlink()  # work to redo, so sample opens the cache
    proc = subprocess.run(TRAJFORGE + ["run", str(path), "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{run_dir / 'cache.sqlite'}: the response cache is damaged" in proc.stderr
