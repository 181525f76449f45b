"""Faults during a run: kill -9 at random points of each stage, a full disk, two shard processes at once.
After a re-run the dataset must equal a fault-free run's: nothing lost, nothing duplicated."""

import json
import os
import random
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, TRAJFORGE, limit_file_size, run_cli, small_config, stray_temporaries

STAGE_DIRS = {"synthesize": "tasks", "sample": "trajectories", "verify": "verified"}


def all_ids(run_dir, folder) -> list[str]:
    files = sorted((run_dir / folder).glob("part-*.parquet")) or sorted((run_dir / folder).glob("data/*.parquet"))
    return sorted(i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    import yaml

    folder = tmp_path_factory.mktemp("faults")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(small_config(arithmetic=20, sql_table=20, units_dates=20, kb_multihop=20)))
    run_cli("run", config, "--run-dir", folder / "clean", check=True)
    return config, folder / "clean"


def kill_during(config, run_dir, stage: str, delay: float) -> None:
    """Start a run, wait until `stage` has begun writing, wait `delay` more seconds, then SIGKILL it."""
    proc = subprocess.Popen(TRAJFORGE + ["run", str(config), "--run-dir", str(run_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    marker = run_dir / STAGE_DIRS[stage]
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # polling for the stage to start: the kill point is what this test varies
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("stage", ["synthesize", "sample", "verify"])
def test_kill_at_random_points_then_rerun_gives_the_fault_free_dataset(reference, tmp_path, stage):
    config, clean = reference
    rng = random.Random(stage)
    run_dir = tmp_path / "run"
    for _ in range(3):
        kill_during(config, run_dir, stage, rng.uniform(0.0, 0.6))
    run_cli("run", config, "--run-dir", run_dir, check=True)
    for folder in ("tasks", "trajectories", "verified", "dataset"):
        assert all_ids(run_dir, folder) == all_ids(clean, folder), folder
    assert not stray_temporaries(run_dir)
    assert json.loads((run_dir / "verified" / "_manifest.json").read_text())["complete"] is True


def test_full_disk_is_a_clear_error_and_keeps_finished_shards(reference, tmp_path):
    config, clean = reference
    run_dir = tmp_path / "run"
    run_cli("run", config, "--run-dir", run_dir, "--stages", "synthesize", check=True)
    proc = subprocess.run(TRAJFORGE + ["run", str(config), "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True,
                          preexec_fn=limit_file_size(60_000), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot write" in proc.stderr and "re-run the same command to resume" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not stray_temporaries(run_dir)
    assert all_ids(run_dir, "tasks") == all_ids(clean, "tasks")  # what was finished before is intact
    run_cli("run", config, "--run-dir", run_dir, check=True)
    assert all_ids(run_dir, "dataset") == all_ids(clean, "dataset")


def test_two_shard_processes_of_one_stage_share_the_manifest(reference, tmp_path):
    config, clean = reference
    run_dir = tmp_path / "run"
    procs = [subprocess.Popen(TRAJFORGE + ["run", str(config), "--run-dir", str(run_dir), "--shard", f"{i}/2"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    for folder in ("tasks", "trajectories", "verified"):
        manifest = json.loads((run_dir / folder / "_manifest.json").read_text())
        assert manifest["complete"] is True and len(manifest["shards"]) == manifest["num_shards"], folder
        assert all_ids(run_dir, folder) == all_ids(clean, folder)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_a_kill_or_ctrl_c_during_curate_leaves_no_temporary_folder(reference, tmp_path, signum):
    """The dataset is written into a temporary folder beside dataset/; a Ctrl-C removes it at once, a kill -9
    leaves it for the next run (of curate, whatever its pid) to remove."""
    config, clean = reference
    run_dir = tmp_path / "run"
    run_cli("run", config, "--run-dir", run_dir, "--stages", "synthesize,sample,verify", check=True)
    proc = subprocess.Popen(TRAJFORGE + ["curate", str(config), "--run-dir", str(run_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(run_dir.glob(".dataset*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)  # polling for curate to start writing: the kill must come while its folder is there
    assert proc.poll() is None, "curate ended before the signal"
    os.kill(proc.pid, signum)
    stderr = proc.communicate(timeout=120)[1]
    if signum == signal.SIGINT:
        assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
        assert not stray_temporaries(run_dir)
    else:
        assert stray_temporaries(run_dir)  # what the next run must clean
    run_cli("curate", config, "--run-dir", run_dir, check=True)
    assert not stray_temporaries(run_dir)
    assert all_ids(run_dir, "dataset") == all_ids(clean, "dataset")
