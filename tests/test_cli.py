import json

import pyarrow.parquet as pq

from pipeline import rows as rowlib
from tests.conftest import run_cli
from tests.helpers import make_task, make_trajectory


def test_validate_accepts_good_parquet(tmp_path):
    path = tmp_path / "good.parquet"
    pq.write_table(rowlib.to_table([make_trajectory(), make_trajectory("sql_table", 2, "react")], "trajectory"), path)
    proc = run_cli("validate", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 row(s), all valid against the trajectory schema" in proc.stdout


def test_validate_reports_row_and_field_of_each_violation_in_jsonl(tmp_path):
    good, bad = make_task(), make_task("kb_multihop", 3)
    bad["difficulty"] = 0
    del bad["instruction"]
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    proc = run_cli("validate", path)
    assert proc.returncode == 1
    assert f"{path}: row 1 (id={bad['id']}): difficulty: 0 is less than the minimum of 1" in proc.stdout
    assert f"{path}: row 1 (id={bad['id']}): instruction: missing required field" in proc.stdout
    assert "row 0" not in proc.stdout


def test_validate_names_the_line_of_broken_json(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(make_task()) + "\n{not json\n")
    proc = run_cli("validate", path)
    assert proc.returncode == 2 and f"{path}: line 2: not valid JSON" in proc.stderr


def test_show_renders_thought_action_observation_and_checks(tmp_path, write_config):
    from tests.conftest import small_config

    run_dir = tmp_path / "run"
    run_cli("run", write_config(small_config(arithmetic=2, sql_table=0, units_dates=0, kb_multihop=0)), "--run-dir", run_dir,
            "--stages", "synthesize,sample,verify", check=True)
    proc = run_cli("show", run_dir, "--limit", "1")
    assert proc.returncode == 0
    out = proc.stdout
    for label in ("instruction", "thought", "action", "observation", "answer", "ok   answer:", "PASSED"):
        assert label in out, label
    assert out.count("━━ traj-") == 1


def test_shard_option_processes_only_its_shards(tmp_path, write_config):
    from tests.conftest import small_config

    config = write_config(small_config(python_compute=0, doc_search=0, store_refunds=0))  # 24 tasks, 5 per shard -> 5 shards
    run_cli("synthesize", config, "--run-dir", tmp_path / "run", "--shard", "1/2", check=True)
    written = sorted(p.name for p in (tmp_path / "run" / "tasks").glob("part-*.parquet"))
    assert written == ["part-00001.parquet", "part-00003.parquet"]
    manifest = json.loads((tmp_path / "run" / "tasks" / "_manifest.json").read_text())
    assert manifest["complete"] is False and sorted(manifest["shards"]) == written
    proc = run_cli("sample", config, "--run-dir", tmp_path / "run", "--shard", "0/2")
    assert proc.returncode == 2 and "part-00000.parquet" in proc.stderr and "run `trajforge synthesize` first" in proc.stderr


def test_curate_refuses_to_run_on_an_incomplete_stage(tmp_path, write_config):
    from tests.conftest import small_config

    config = write_config(small_config())
    run_cli("run", config, "--run-dir", tmp_path / "run", "--shard", "0/2", check=True)
    proc = run_cli("curate", config, "--run-dir", tmp_path / "run")
    assert proc.returncode == 2 and "curate needs every verified shard" in proc.stderr
