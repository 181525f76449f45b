"""--executor ray against a local Ray cluster started by the test (`ray start --head`)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.llm.endpoints import share_endpoint_limits
from tests.conftest import run_cli, small_config

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]' (scripts/test.sh installs it)")
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    port = free_port()
    started = subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    yield f"127.0.0.1:{port}"
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def dataset_ids(run_dir: Path) -> list[str]:
    return sorted(i for f in (run_dir / "dataset" / "data").glob("*.parquet") for i in pq.read_table(f, columns=["id"])["id"].to_pylist())


def test_ray_run_writes_the_same_dataset_as_a_local_run(ray_head, tmp_path, write_config):
    config = write_config(small_config(arithmetic=6, sql_table=6, units_dates=6, kb_multihop=0))
    run_cli("run", config, "--run-dir", tmp_path / "local", check=True)
    proc = run_cli("run", config, "--run-dir", tmp_path / "ray", "--executor", "ray", "--address", ray_head, check=True)
    assert "(ray, 2 workers)" in proc.stderr
    assert dataset_ids(tmp_path / "ray") == dataset_ids(tmp_path / "local")
    again = run_cli("run", config, "--run-dir", tmp_path / "ray", "--executor", "ray", "--address", ray_head, check=True)
    assert "(ray" not in again.stderr and "wrote 0" in again.stdout  # finished shards are not sent to Ray again


def test_unreachable_ray_cluster_fails_before_any_shard(tmp_path, write_config):
    proc = run_cli("run", write_config(small_config()), "--run-dir", tmp_path / "run", "--executor", "ray",
                   "--address", f"127.0.0.1:{free_port()}", timeout=60)
    assert proc.returncode == 2 and "Ray cluster is not reachable" in proc.stderr
    assert not list((tmp_path / "run").glob("*/part-*.parquet"))


def test_endpoint_limits_are_divided_among_workers():
    data = {"endpoints": {"a": {"model": "m", "max_concurrency": 64, "rpm": 600, "tpm": 100000}, "b": {"model": "m", "max_concurrency": 3}}}
    shared = share_endpoint_limits(data, 4)
    assert shared["endpoints"]["a"] == {"model": "m", "max_concurrency": 16, "rpm": 150, "tpm": 25000}
    assert shared["endpoints"]["b"]["max_concurrency"] == 1
    assert data["endpoints"]["a"]["max_concurrency"] == 64  # the caller's config is untouched
