"""The quickstart flow end to end at small counts, through the real CLI, read back with `datasets`."""

import json

import datasets
import pyarrow.parquet as pq
import pytest

from pipeline import schema
from pipeline.synthesize.generators import GENERATORS
from tests.conftest import run_cli, small_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import yaml

    folder = tmp_path_factory.mktemp("e2e")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(small_config()))
    first = run_cli("run", config, "--run-dir", folder / "run", check=True)
    return folder, config, first


def test_dataset_loads_with_datasets_and_has_every_domain(finished_run):
    folder, _, _ = finished_run
    # A private cache: datasets' shared cache can hand back another run's "dataset" folder.
    ds = datasets.load_dataset(str(folder / "run" / "dataset"), cache_dir=str(folder / "hf-cache"))
    assert set(ds) == {"train", "validation"}
    rows = list(ds["train"]) + list(ds["validation"])
    assert len(rows) >= 40
    assert {r["domain"] for r in rows} == {GENERATORS[g["name"]].domain for g in small_config()["synthesize"]["generators"]}
    first = rows[0]
    assert isinstance(first["messages"][0], dict) and first["messages"][0]["role"] == "system"
    assert isinstance(first["ground_truth"], dict)


def test_every_dataset_row_is_valid_and_passed(finished_run):
    folder, _, _ = finished_run
    for path in sorted((folder / "run" / "dataset" / "data").glob("*.parquet")):
        from pipeline import shards

        for row in shards.read_shard(path, "trajectory", validate=False):
            assert schema.errors("trajectory", row) == []
            assert row["passed"] is True and row["split"] in path.name


def test_no_task_is_in_both_splits(finished_run):
    folder, _, _ = finished_run
    data = folder / "run" / "dataset" / "data"
    split_tasks = {split: set(pq.read_table(next(data.glob(f"{split}-*.parquet")), columns=["task_id"])["task_id"].to_pylist())
                   for split in ("train", "validation")}
    assert split_tasks["train"] and split_tasks["validation"]
    assert not split_tasks["train"] & split_tasks["validation"]


def test_rerun_reuses_every_shard_and_says_so(finished_run):
    folder, config, _ = finished_run
    again = run_cli("run", config, "--run-dir", folder / "run", check=True)
    for stage in ("synthesize", "sample", "verify", "curate"):
        line = next(l for l in again.stdout.splitlines() if l.startswith(stage + ":"))
        assert "reused" in line and "wrote 0" in line, line


def test_same_config_in_another_directory_gives_identical_ids(finished_run, tmp_path):
    folder, config, _ = finished_run
    run_cli("run", config, "--run-dir", tmp_path / "again", check=True)
    for name in ("train", "validation"):
        a = pq.read_table(next((folder / "run" / "dataset" / "data").glob(f"{name}-*")), columns=["id"])["id"].to_pylist()
        b = pq.read_table(next((tmp_path / "again" / "dataset" / "data").glob(f"{name}-*")), columns=["id"])["id"].to_pylist()
        assert a == b


def expected_trajectories(config: dict) -> int:
    """Tasks times formats, for each teacher over the domains it is limited to."""
    tasks = [(GENERATORS[g["name"]].domain, g["count"]) for g in config["synthesize"]["generators"]]
    return sum(len(t["formats"]) * count for t in config["sample"]["teachers"] for domain, count in tasks
               if domain in t.get("domains", [domain]))


def test_summary_lines_report_counts(finished_run):
    _, _, first = finished_run
    verify_line = next(l for l in first.stdout.splitlines() if l.startswith("verify:"))
    rows = expected_trajectories(small_config())
    assert f"{rows} rows in -> {rows} out ({rows} passed, 0 with errors)" in verify_line
    report = json.loads((finished_run[0] / "run" / "report.json").read_text())
    assert report["stages"]["sample"]["rows_out"] == rows


def test_changed_config_is_refused_with_the_differing_keys(finished_run):
    folder, config, _ = finished_run
    proc = run_cli("run", config, "--run-dir", folder / "run", "--set", "verify.min_score=0.9")
    assert proc.returncode == 2
    assert "verify.min_score: 0.0 -> 0.9" in proc.stderr and "verify, curate, publish" in proc.stderr
