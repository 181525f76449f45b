"""`trajforge slurm` against a real single-node Slurm cluster started by scripts/slurm_local.sh."""

import os
import shutil
import socket
import subprocess

import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, TRAJFORGE, run_cli, small_config

needs_slurm = pytest.mark.skipif(shutil.which("slurmctld") is None or os.geteuid() != 0,
                                 reason="needs Debian's slurm-wlm and munge, and root (scripts/test.sh installs them)")


def free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        with socket.socket() as b:
            try:
                b.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_PORT": str(free_port_pair())}
    started = subprocess.run([ROOT / "scripts" / "slurm_local.sh", "start", folder], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    yield {"SLURM_CONF": str(folder / "slurm.conf")}
    subprocess.run([ROOT / "scripts" / "slurm_local.sh", "stop", folder], env=env, timeout=60)


def test_scripts_chain_row_stages_task_by_task_and_curate_after_all(tmp_path, write_config):
    config = write_config(small_config())
    proc = run_cli("slurm", config, "--run-dir", tmp_path / "run", "--array", "3", "--sbatch-arg=--partition=cpu")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "run" / "slurm"
    sample = (folder / "sample.sbatch").read_text()
    assert "#SBATCH --array=0-2" in sample and "#SBATCH --partition=cpu" in sample
    assert "sample" in sample and "--shard ${SLURM_ARRAY_TASK_ID}/3" in sample
    submit = (folder / "submit.sh").read_text()
    assert "--dependency=aftercorr:$job_synthesize sample.sbatch" in submit
    assert "--dependency=afterok:$job_verify" in submit and "curate.sbatch" in submit
    assert "--array" not in (folder / "curate.sbatch").read_text()


def test_array_is_capped_at_the_number_of_shards(tmp_path, write_config):
    config = write_config(small_config(arithmetic=3, sql_table=0, units_dates=0, kb_multihop=0, python_compute=0, doc_search=0,
                                       store_refunds=0))  # 1 shard
    run_cli("slurm", config, "--run-dir", tmp_path / "run", "--array", "8", check=True)
    assert "#SBATCH --array=0-0" in (tmp_path / "run" / "slurm" / "verify.sbatch").read_text()


def test_unreachable_cluster_is_a_clear_error_before_anything_is_submitted(tmp_path, write_config):
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"ClusterName=nowhere\nSlurmctldHost=127.0.0.1\nSlurmctldPort={free_port_pair()}\nAuthType=auth/none\n"
                    "NodeName=x CPUs=1\nPartitionName=p Nodes=x\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    proc = subprocess.run([*TRAJFORGE, "slurm", str(write_config(small_config())), "--run-dir", str(tmp_path / "run"), "--array", "2", "--submit"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Slurm is not reachable" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "run").glob("tasks/part-*"))


@needs_slurm
def test_real_slurm_array_run_gives_the_same_dataset_as_a_local_run(slurm_cluster, tmp_path, write_config):
    config = write_config(small_config(arithmetic=6, sql_table=6, units_dates=0, kb_multihop=6))
    run_cli("run", config, "--run-dir", tmp_path / "local", check=True)
    env = {**os.environ, **slurm_cluster}
    proc = subprocess.run([*TRAJFORGE, "slurm", str(config), "--run-dir", str(tmp_path / "slurm"),
                           "--array", "2", "--submit", "--wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "submitted curate" in proc.stdout
    logs = sorted(p.name for p in (tmp_path / "slurm" / "logs").iterdir())
    assert sum(name.startswith("sample-") for name in logs) == 2 and sum(name.startswith("curate-") for name in logs) == 1
    for split in ("train", "validation"):
        local = pq.read_table(next((tmp_path / "local" / "dataset" / "data").glob(f"{split}-*")), columns=["id"])["id"].to_pylist()
        remote = pq.read_table(next((tmp_path / "slurm" / "dataset" / "data").glob(f"{split}-*")), columns=["id"])["id"].to_pylist()
        assert local == remote
