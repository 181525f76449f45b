"""A damaged run directory gets a clear answer, never a traceback: a finished shard with bytes changed in the
middle (its footer intact), done-markers and manifests edited by hand, invalid JSON (a damaged response cache: tests/test_faults_llm.py).
Where the stage can redo the work it does (the dataset then equals a clean run's); where it cannot, one line
names the file."""

import json
import shutil
import socket
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import run_cli, small_config, stray_temporaries


def ids(run_dir, folder) -> list[str]:
    files = sorted((run_dir / folder).glob("part-*.parquet")) or sorted((run_dir / folder).glob("data/*.parquet"))
    return sorted(i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist())


def flip_middle(path) -> None:
    """Change bytes in the middle of a file's largest column chunk, leaving its size and footer as they were."""
    group = pq.read_metadata(path).row_group(0)
    chunk = max((group.column(i) for i in range(group.num_columns)), key=lambda c: c.total_compressed_size)
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(small_config(arithmetic=10, sql_table=10, units_dates=5, kb_multihop=5)))
    run_cli("run", config, "--run-dir", folder / "clean", check=True)
    return config, folder / "clean"


@pytest.fixture
def run(clean, tmp_path):
    config, reference = clean
    return config, shutil.copytree(reference, tmp_path / "run")


def assert_same_dataset(run_dir, reference) -> None:
    for folder in ("tasks", "trajectories", "verified", "dataset"):
        assert ids(run_dir, folder) == ids(reference, folder), folder
    assert not stray_temporaries(run_dir)


@pytest.mark.parametrize("folder", ["tasks", "trajectories", "verified"])
def test_bytes_changed_in_a_finished_shard_are_named_and_the_shard_is_redone(run, clean, folder):
    config, run_dir = run
    shard = run_dir / folder / "part-00001.parquet"
    flip_middle(shard)
    assert pq.read_metadata(shard).num_rows  # the footer still reads: only the checksum can tell
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"{shard}: its bytes changed since it was written" in proc.stderr and "redoing it" in proc.stderr
    assert_same_dataset(run_dir, clean[1])


def test_a_truncated_shard_is_named_and_redone(run, clean):
    config, run_dir = run
    shard = run_dir / "trajectories" / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and f"{shard}: " in proc.stderr and "when it was written (truncated or changed)" in proc.stderr
    assert_same_dataset(run_dir, clean[1])


def test_a_damaged_input_of_a_stage_run_alone_is_one_line_naming_it(run):
    config, run_dir = run
    flip_middle(run_dir / "tasks" / "part-00002.parquet")
    (run_dir / "trajectories" / "part-00002.parquet").unlink()  # sample must read that task shard again
    proc = run_cli("sample", config, "--run-dir", run_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "part-00002.parquet (its bytes changed since it was written" in proc.stderr
    assert "run `trajforge synthesize` first" in proc.stderr


def test_a_hand_edited_marker_is_not_copied_into_the_manifest(run, clean):
    config, run_dir = run
    marker = run_dir / "verified" / ".part-00000.parquet.done.json"
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "rows": info["rows"] + 100, "sha256": "0" * 64}))
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and "its done-marker says" in proc.stderr
    manifest = json.loads((run_dir / "verified" / "_manifest.json").read_text())
    assert manifest["rows"] == len(ids(run_dir, "verified")) == len(ids(clean[1], "verified"))
    for name, entry in manifest["shards"].items():
        path = run_dir / "verified" / name
        assert entry["rows"] == pq.read_metadata(path).num_rows and entry["size"] == path.stat().st_size


def test_a_deleted_marker_makes_its_shard_redone(run, clean):
    config, run_dir = run
    (run_dir / "trajectories" / ".part-00003.parquet.done.json").unlink()
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and "part-00003.parquet: no done-marker" in proc.stderr
    assert_same_dataset(run_dir, clean[1])


def test_invalid_json_in_the_dataset_manifest_curates_again(run, clean):
    config, run_dir = run
    manifest = run_dir / "dataset" / "_manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert f"{manifest}: not valid JSON" in proc.stderr and "curating again" in proc.stderr
    assert json.loads(manifest.read_text())["splits"] == json.loads((clean[1] / "dataset" / "_manifest.json").read_text())["splits"]
    assert_same_dataset(run_dir, clean[1])


def test_raised_split_counts_in_the_dataset_manifest_are_not_reported(run, clean):
    config, run_dir = run
    path = run_dir / "dataset" / "_manifest.json"
    manifest = json.loads(path.read_text())
    manifest["splits"]["train"] += 10
    path.write_text(json.dumps(manifest))
    proc = run_cli("curate", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and "says" in proc.stderr and "curating again" in proc.stderr
    kept = len(ids(run_dir, "dataset"))
    assert f"{kept} out" in proc.stdout
    assert sum(json.loads(path.read_text())["splits"].values()) == kept


def test_a_damaged_dataset_file_is_curated_again_and_never_published(run, clean, tmp_path):
    config, run_dir = run
    data = sorted((run_dir / "dataset" / "data").glob("*.parquet"))[0]
    flip_middle(data)
    proc = run_cli("publish", run_dir, "--dry-run", "--out", tmp_path / "hub")
    assert proc.returncode == 2 and f"{data}: changed since curate wrote it" in proc.stderr and not (tmp_path / "hub").exists()
    proc = run_cli("export", run_dir, "--view", "trl", "--out", tmp_path / "trl")
    assert proc.returncode == 2 and "changed since curate wrote it" in proc.stderr
    proc = run_cli("curate", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and "curating again" in proc.stderr
    assert_same_dataset(run_dir, clean[1])
    assert run_cli("publish", run_dir, "--dry-run", "--out", tmp_path / "hub").returncode == 0


def test_a_file_added_to_the_dataset_is_not_published(run, tmp_path):
    config, run_dir = run
    data = sorted((run_dir / "dataset" / "data").glob("*.parquet"))[0]
    shutil.copy(data, data.with_name("train-00009-of-00010.parquet"))
    proc = run_cli("publish", run_dir, "--dry-run", "--out", tmp_path / "hub")
    assert proc.returncode == 2 and "train-00009-of-00010.parquet: not written by curate" in proc.stderr


def test_an_unreadable_saved_config_is_one_line(run):
    config, run_dir = run
    (run_dir / "config.yaml").write_text("run: [unclosed\n")
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{run_dir / 'config.yaml'}: not the config this run was made with" in proc.stderr and "--reconfigure" in proc.stderr


def test_a_damaged_report_json_is_rewritten(run):
    config, run_dir = run
    (run_dir / "report.json").write_text("{ half")
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert set(json.loads((run_dir / "report.json").read_text())["stages"]) >= {"synthesize", "sample", "verify", "curate"}


def test_a_run_removes_what_killed_processes_of_every_stage_left(run):
    config, run_dir = run
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = socket.gethostname()
    left = [run_dir / f".config.yaml.{host}.{dead}-1.tmp", run_dir / f".report.json.{host}.{dead}-1.tmp",
            run_dir / "verified" / f".part-00000.parquet.{host}.{dead}-7.tmp", run_dir / "tasks" / f"._manifest.json.{host}.{dead}-7.tmp"]
    for path in left:
        path.write_text("half")
    for folder in (run_dir / f".dataset.{host}.{dead}-1.tmp", run_dir / f".dataset.{host}.{dead}-1.old"):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"half")
    proc = run_cli("run", config, "--run-dir", run_dir, check=True)
    assert "reused" in proc.stdout
    assert not stray_temporaries(run_dir)


def test_a_dataset_manifest_that_is_not_even_text_curates_again(run, clean):
    config, run_dir = run
    manifest = run_dir / "dataset" / "_manifest.json"
    manifest.write_bytes(b"\xd4\xff" + manifest.read_bytes())
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "curating again" in proc.stderr
    assert_same_dataset(run_dir, clean[1])
