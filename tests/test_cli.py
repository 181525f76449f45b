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


def test_a_command_that_cannot_run_writes_nothing(tmp_path, write_config, monkeypatch):
    from tests.conftest import small_config

    data = small_config(python_compute=0, doc_search=0, store_refunds=0)
    data["endpoints"] = {"gpt": {"base_url": "http://127.0.0.1:9/v1", "model": "gpt-x", "api_key_env": "TRAJFORGE_TEST_UNSET_KEY"}}
    data["sample"]["teachers"].append({"name": "gpt", "policy": "llm", "endpoint": "gpt", "formats": ["react"]})
    config = write_config(data)
    run_dir = tmp_path / "run"
    monkeypatch.delenv("TRAJFORGE_TEST_UNSET_KEY", raising=False)
    proc = run_cli("run", config, "--run-dir", run_dir)
    assert proc.returncode == 2 and "endpoints.gpt.api_key_env: environment variable TRAJFORGE_TEST_UNSET_KEY is not set" in proc.stderr
    proc = run_cli("synthesize", config, "--run-dir", run_dir, "--shard", "5/4")
    assert proc.returncode == 2 and "--shard '5/4': need 0 <= I < N" in proc.stderr
    assert not run_dir.exists()
    data["sample"]["teachers"].pop()  # the user fixes the config: the run goes ahead, nothing refuses it
    proc = run_cli("run", write_config(data), "--run-dir", run_dir, "--stages", "synthesize")
    assert proc.returncode == 0, proc.stderr


def test_publish_runs_as_the_last_stage_of_run(tmp_path, write_config):
    from datasets import load_dataset

    from tests.conftest import small_config

    config = write_config(small_config(arithmetic=3, sql_table=3, units_dates=0, kb_multihop=0, python_compute=0, doc_search=0,
                                       store_refunds=0))
    proc = run_cli("run", config, "--run-dir", tmp_path / "run", "--stages", "synthesize,sample,verify,curate,publish")
    assert proc.returncode == 2 and "no publish.repo_id" in proc.stderr and not (tmp_path / "run").exists()
    out = tmp_path / "hub"
    proc = run_cli("run", config, "--run-dir", tmp_path / "run", "--stages", "publish,curate,verify,sample,synthesize", "--dry-run", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"publish: dry run: wrote" in proc.stdout and f"to {out} (nothing uploaded)" in proc.stdout
    assert proc.stdout.index("curate:") < proc.stdout.index("publish:")  # stages run in pipeline order
    assert len(load_dataset(str(out), "default", split="train")) > 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert "publish" in report["stages"]


def test_help_and_list_import_no_stage(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys; from pipeline import cli; cli.build_parser().format_help(); "
            "print(sorted(m for m in sys.modules if m.startswith(('pyarrow', 'openai', 'pipeline.sample', 'pandas', 'datasets'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
