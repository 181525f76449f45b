import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from pipeline import atomic, shards
from pipeline.errors import UserError
from tests.conftest import ROOT, TRAJFORGE, run_cli, small_config
from tests.helpers import make_task


def test_written_shard_carries_its_stage_hash_and_marker(tmp_path):
    path = tmp_path / shards.shard_name(0)
    shards.write_shard(path, [make_task()], "task", "hash-1")
    assert shards.stage_hash_of(path) == "hash-1"
    assert shards.is_done(path, "hash-1") and not shards.is_done(path, "hash-2")
    manifest = shards.write_manifest(tmp_path, "synthesize", "hash-1", 2)
    assert manifest["shards"]["part-00000.parquet"]["rows"] == 1
    assert manifest["shards"]["part-00000.parquet"]["sha256"] == shards.sha256_file(path)
    assert manifest["complete"] is False  # shard 1 of 2 is missing


def test_invalid_row_is_refused_and_nothing_is_written(tmp_path):
    bad = make_task()
    bad["difficulty"] = "hard"
    path = tmp_path / shards.shard_name(0)
    with pytest.raises(RuntimeError, match=r"row 0 .*difficulty: must be an integer"):
        shards.write_shard(path, [bad], "task", "h")
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_unreadable_input_shard_is_a_user_error_naming_the_file(tmp_path):
    path = tmp_path / shards.shard_name(0)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match=str(path)):
        shards.read_shard(path, "task")


def test_schema_violating_input_names_file_row_and_field(tmp_path):
    path = tmp_path / shards.shard_name(0)
    task = make_task()
    task["tools"] = []
    from pipeline import rows as rowlib

    pq.write_table(rowlib.to_table([make_task(), task], "task"), path)
    with pytest.raises(UserError, match=r"part-00000.parquet: row 1 .*tools: .*"):
        shards.read_shard(path, "task")


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    stale = tmp_path / f".part-00000.parquet.{socket.gethostname()}.{dead.stdout.strip()}-140001.tmp"
    live = tmp_path / f".part-00001.parquet.{socket.gethostname()}.{os.getpid()}-140001.tmp"
    other_host = tmp_path / f".part-00002.parquet.node7.cluster.example.{dead.stdout.strip()}-140001.tmp"
    for path in (stale, live, other_host):
        path.write_text("half")
    assert atomic.clean(tmp_path) == 1
    assert not stale.exists() and live.exists() and other_host.exists()  # another host's process may be alive


def test_markers_and_the_manifest_are_never_read_half_written(tmp_path):
    """Threads writing shards while others regenerate the manifest (as `sample` does) never see a partial marker."""
    rows = [make_task("arithmetic", i) for i in range(3)]

    def work(k):
        for _ in range(15):
            shards.write_shard(tmp_path / shards.shard_name(k), rows, "task", "h")
            shards.write_manifest(tmp_path, "synthesize", "h", 4)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    manifest = shards.write_manifest(tmp_path, "synthesize", "h", 4)
    assert manifest["complete"] and manifest["rows"] == 12
    assert not list(tmp_path.glob(".*.tmp"))


def ids(folder):
    return sorted(i for f in sorted(folder.glob("part-*.parquet")) for i in pq.read_table(f, columns=["id"])["id"].to_pylist())


def test_killed_run_resumes_with_the_same_ids_and_no_half_shards(write_config, tmp_path):
    config = write_config(small_config(arithmetic=30, sql_table=30, units_dates=30, kb_multihop=30))
    clean = tmp_path / "clean"
    run_cli("run", config, "--run-dir", clean, "--stages", "synthesize,sample,verify", check=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(TRAJFORGE + ["run", str(config), "--run-dir", str(killed), "--stages", "synthesize,sample,verify"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((killed / "trajectories").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the first finished shard; the kill point is what this test varies
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written_before = len(list((killed / "trajectories").glob("part-*.parquet")))
    assert 0 < written_before, "the run was killed before it wrote a shard"

    rerun = run_cli("run", config, "--run-dir", killed, "--stages", "synthesize,sample,verify", check=True)
    for stage in ("tasks", "trajectories", "verified"):
        assert ids(killed / stage) == ids(clean / stage), stage
        assert not list((killed / stage).glob(".*.tmp")), stage
        assert len(ids(killed / stage)) == len(set(ids(killed / stage))) or stage == "tasks"
    assert "reused" in rerun.stdout


def test_stale_temporary_folders_are_removed_and_live_ones_kept(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = socket.gethostname()
    stale = [tmp_path / f".dataset.{host}.{dead}-1.tmp", tmp_path / f".dataset.{host}.{dead}-1.old"]
    live = tmp_path / f".dataset.{host}.{os.getpid()}-1.tmp"
    for folder in stale + [live]:
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "x.parquet").write_text("half")
    assert atomic.clean(tmp_path, "other") == 0  # only the temporaries of the name asked for
    assert atomic.clean(tmp_path, "dataset") == 2
    assert not any(p.exists() for p in stale) and live.exists()


def test_a_shard_is_finished_only_while_it_matches_its_marker(tmp_path):
    path = tmp_path / shards.shard_name(0)
    shards.write_shard(path, [make_task("arithmetic", i) for i in range(3)], "task", "h")
    assert shards.examine(path)[0]["rows"] == 3 and shards.is_finished(path, "h")
    data = bytearray(path.read_bytes())
    data[len(data) // 4] ^= 0x01
    path.write_bytes(bytes(data))
    assert not shards.is_finished(path, "h") and not shards.is_done(path, "h") and shards.fingerprint(path) is None
    assert "sha256 differs" in shards.damage(path) or "footer" in shards.damage(path)
    assert shards.examine(tmp_path / "absent.parquet") == (None, None)


def test_a_footer_damaged_past_decoding_is_a_damaged_shard(tmp_path):
    path = tmp_path / shards.shard_name(0)
    shards.write_shard(path, [make_task()], "task", "h")
    data = bytearray(path.read_bytes())
    footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")  # the footer ends with its length and PAR1
    at = data.index(b"instruction", footer_start)  # its schema's column name: still parses, no longer decodes as UTF-8
    data[at] = 0x96
    path.write_bytes(bytes(data))
    assert shards.examine(path) == (None, "its Parquet footer is unreadable")
    assert shards.footer(path) is None
