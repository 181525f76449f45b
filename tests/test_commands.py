"""A careless command gets a clear answer: validate, export and show on the inputs a newcomer tries, curate's
progress bar and the message for a run directory made by another config."""

import json
import re
import shutil

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import config as configlib
from tests.conftest import run_cli, small_config
from tests.curate_run import curate, run_dir, template_run  # noqa: F401 (fixtures)
from tests.helpers import make_trajectory


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory):
    """A run of the program teacher alone: every trajectory passes, so there are no preference pairs."""
    folder = tmp_path_factory.mktemp("passing")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(small_config(arithmetic=6, sql_table=6, units_dates=3, kb_multihop=3)))
    proc = run_cli("run", config, "--run-dir", folder / "run", check=True)
    return config, folder / "run", proc


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_validate_counts_each_file_on_its_own(tmp_path):
    bad, good = make_trajectory(), make_trajectory("sql_table", 2)
    bad["difficulty"] = "hard"
    write_jsonl(tmp_path / "bad.jsonl", [bad, make_trajectory("arithmetic", 3)])
    write_jsonl(tmp_path / "good.jsonl", [good] * 4)
    proc = run_cli("validate", tmp_path / "bad.jsonl", tmp_path / "good.jsonl")
    assert proc.returncode == 1
    assert f"{tmp_path / 'bad.jsonl'}: 2 row(s), 1 invalid" in proc.stdout
    assert f"{tmp_path / 'good.jsonl'}: 4 row(s), all valid" in proc.stdout


def test_validate_goes_on_after_a_missing_file(tmp_path):
    write_jsonl(tmp_path / "good.jsonl", [make_trajectory()])
    proc = run_cli("validate", tmp_path / "missing.jsonl", tmp_path / "good.jsonl")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'missing.jsonl'}: cannot read" in proc.stderr
    assert f"{tmp_path / 'good.jsonl'}: 1 row(s), all valid" in proc.stdout


def test_validate_says_which_types_a_field_takes(tmp_path):
    row = make_trajectory()
    row["tools"] = json.dumps([{"type": "function", "function": {"name": "calculator"}}])  # a JSON string, not a list
    write_jsonl(tmp_path / "rows.jsonl", [row])
    proc = run_cli("validate", tmp_path / "rows.jsonl")
    assert proc.returncode == 1 and "tools: must be null or a list, got " in proc.stdout and "must be null," not in proc.stdout


def exported_rows(folder) -> int:
    return sum(pq.read_metadata(p).num_rows for p in folder.glob("*.parquet"))


def test_export_replaces_an_earlier_export_whole(run_dir, tmp_path):  # noqa: F811
    out = tmp_path / "trl"
    curate(run_dir, "curate.rows_per_shard=4")
    run_cli("export", run_dir, "--view", "trl", "--out", out, check=True)
    many = sorted(p.name for p in out.glob("*.parquet"))
    curate(run_dir, "curate.rows_per_shard=1000")
    run_cli("export", run_dir, "--view", "trl", "--out", out, check=True)
    files = sorted(p.name for p in out.glob("*.parquet"))
    assert len(files) < len(many) and files == sorted(p.name for p in (run_dir / "dataset" / "data").glob("*.parquet"))
    loaded = datasets.load_dataset(str(out))
    assert sum(len(split) for split in loaded.values()) == exported_rows(run_dir / "dataset" / "data")


def test_export_refuses_a_folder_that_is_not_an_earlier_export(run_dir, tmp_path):  # noqa: F811
    curate(run_dir)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = run_cli("export", run_dir, "--view", "trl", "--out", out)
    assert proc.returncode == 2 and "notes.txt, which is not an earlier export" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_export_of_a_view_without_rows_says_why_and_writes_nothing(passing_run, tmp_path):
    _, run, _ = passing_run
    proc = run_cli("export", run, "--view", "dpo_step", "--out", tmp_path / "steps")
    assert proc.returncode == 2 and "export dpo_step: the view has no rows in this run" in proc.stderr
    assert "step judged bad" in proc.stderr and not (tmp_path / "steps").exists()


def test_show_on_a_folder_that_is_not_a_run_says_so(tmp_path):
    proc = run_cli("show", tmp_path)
    assert proc.returncode == 2 and f"{tmp_path}: not a run directory (no config.yaml)" in proc.stderr


def test_show_names_only_the_stages_it_takes(passing_run, tmp_path):
    config, _, _ = passing_run
    run_cli("run", config, "--run-dir", tmp_path / "run", "--stages", "synthesize", check=True)
    proc = run_cli("show", tmp_path / "run")
    assert proc.returncode == 2 and "--stage is one of sample, verify, curate)" in proc.stderr and "synthesize" not in proc.stderr
    assert run_cli("show", tmp_path / "run", "--stage", "synthesize").returncode == 2  # argparse: not a choice


def test_show_failed_on_a_run_without_failures_is_an_answer(passing_run):
    _, run, _ = passing_run
    proc = run_cli("show", run, "--failed")
    assert proc.returncode == 0 and f"{run / 'verified'}: no trajectory failed verification" in proc.stdout


def final_count(stderr: str, desc: str) -> tuple[int, int]:
    """The last n/total tqdm printed for the bar `desc`."""
    found = re.findall(rf"{re.escape(desc)}: +\d+%\|[^|]*\| (\d+)/(\d+)", stderr)
    assert found, f"no {desc!r} bar in:\n{stderr[-2000:]}"
    return tuple(map(int, found[-1]))


def test_curate_progress_counts_each_pass_once(passing_run, tmp_path):
    config, run, _ = passing_run
    copy = shutil.copytree(run, tmp_path / "run")
    proc = run_cli("curate", config, "--run-dir", copy, "--reconfigure", "--set", "curate.validation_fraction=0.2", check=True)
    summary = re.search(r"curate: (\d+) rows in -> (\d+) out", proc.stdout)
    rows_in, rows_out = int(summary[1]), int(summary[2])
    assert final_count(proc.stderr, "curate: scan") == (rows_in, rows_in)
    assert final_count(proc.stderr, "curate: write") == (rows_out, rows_out)


def test_a_different_config_is_named_key_by_key(passing_run, tmp_path):
    config, run, _ = passing_run
    data = yaml.safe_load(config.read_text())
    data["endpoints"] = {"local": {"base_url": "local", "model": "gemma-3-270m", "mode": "completion"}}
    data["run"]["seed"] = 5
    for k, gen in enumerate(data["synthesize"]["generators"]):
        gen["count"] += k + 1
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data))
    proc = run_cli("run", other, "--run-dir", shutil.copytree(run, tmp_path / "run"))
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "endpoints: {}" not in line and "'(unset)'" not in line and "...." not in line
    assert re.search(r"\(and \d+ more\)\. This changes the output of", line)


def test_differences_say_a_new_section_by_its_keys():
    old, new = {"endpoints": {}}, {"endpoints": {"local": {"model": "m", "mode": "chat"}}}
    assert configlib.differences(old, new) == ["endpoints.local.mode: (unset) -> 'chat'", "endpoints.local.model: (unset) -> 'm'"]


def test_validate_names_a_file_that_is_not_text(tmp_path):
    (tmp_path / "binary.jsonl").write_bytes(b'{"id": "\xff\xfe"}\n')
    proc = run_cli("validate", tmp_path / "binary.jsonl")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "binary.jsonl: not UTF-8 text" in proc.stderr
