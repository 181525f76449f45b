"""The run report: stage figures counted over every shard whichever command wrote it, the history of commands
(summed per stage hash), failures by check and by kind with examples, and a page with rounded numbers.
The report in a real browser is tested in tests/test_view_browser.py."""

import json
import re

import pyarrow.parquet as pq
import pytest

from pipeline import cli, rundir
from tests import view_run
from tests.conftest import small_config


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory):
    return view_run.build(tmp_path_factory.mktemp("report"))


def load(run_dir) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def stage(report: dict, name: str) -> dict:
    return next(s for s in report["stats"]["stages"] if s["stage"] == name)


def rows_in(run_dir, name: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in rundir.stage_files(run_dir, name))


def test_sharded_commands_are_all_counted_not_only_the_last(tmp_path, write_config):
    config, run = write_config(small_config()), tmp_path / "run"
    assert cli.main(["synthesize", str(config), "--run-dir", str(run)]) == 0
    for i in range(3):
        assert cli.main(["sample", str(config), "--run-dir", str(run), "--shard", f"{i}/3"]) == 0
    report = load(run)
    sample = stage(report, "sample")
    assert sample["rows_out"] == rows_in(run, "sample") > report["stages"]["sample"]["rows_out"]  # the last command saw a third
    assert sample["rows_in"] == rows_in(run, "synthesize") and sample["shards_done"] == sample["shards"]
    assert sample["commands"] == 3
    commands = [c for c in report["invocations"] if c["stage"] == "sample"]
    assert sample["seconds"] == pytest.approx(sum(c["seconds"] for c in commands))
    assert sample["written"] == sample["shards"]  # each shard written once, by one of the three commands


def test_a_reconfigured_stage_counts_only_the_commands_of_its_new_config(tmp_path, write_config):
    data = small_config(arithmetic=3, sql_table=3, units_dates=0, kb_multihop=0, python_compute=0, doc_search=0, store_refunds=0)
    config, run = write_config(data), tmp_path / "run"
    assert cli.main(["run", str(config), "--run-dir", str(run), "--stages", "synthesize,sample"]) == 0
    assert cli.main(["sample", str(config), "--run-dir", str(run)]) == 0  # a re-run: reuses every shard
    assert stage(load(run), "sample")["commands"] == 2
    data["sample"]["teachers"][0]["formats"] = ["react"]
    config = write_config(data)
    assert cli.main(["sample", str(config), "--run-dir", str(run), "--reconfigure"]) == 0
    report = load(run)
    assert stage(report, "sample")["commands"] == 1 and stage(report, "synthesize")["commands"] == 1
    assert stage(report, "sample")["rows_out"] == rows_in(run, "sample")


def test_stages_are_listed_in_pipeline_order_with_rows_passed_and_errors(judged_run):
    report = load(judged_run)
    stages = report["stats"]["stages"]
    assert [s["stage"] for s in stages] == ["synthesize", "sample", "verify", "curate"]
    verified = [r for p in rundir.stage_files(judged_run, "verify") for r in pq.read_table(p, columns=["passed", "error"]).to_pylist()]
    verify = stage(report, "verify")
    assert verify["passed"] == sum(r["passed"] for r in verified) and verify["errors"] == sum(r["error"] is not None for r in verified)
    assert verify["requests"] > 0 and stage(report, "sample")["retries"] == 2  # the two 500s the fake server sent
    assert stage(report, "curate")["rows_out"] == rows_in(judged_run, "curate")


def test_failures_by_check_and_by_kind_name_an_example_that_has_them(judged_run):
    failures = load(judged_run)["stats"]["failures"]
    rows = {r["id"]: r for p in rundir.stage_files(judged_run, "verify")
            for r in pq.read_table(p, columns=["id", "checks", "error", "steps"]).to_pylist()}
    assert {c["name"] for c in failures["checks"]} >= {"limits", "answer", "committee"}
    for check in failures["checks"]:
        failing = [r for r in rows.values() if any(c["name"] == check["name"] and not c["passed"] for c in r["checks"])]
        assert check["rows"] == len(failing) and check["example"]["id"] == failing[0]["id"]
    kinds = {e["kind"]: e for e in failures["errors"]}
    tool_error = rows[kinds["tool error"]["example"]["id"]]
    assert any(s["error"] == kinds["tool error"]["example"]["detail"] and s["tool_name"] for s in tool_error["steps"])
    assert kinds["no final answer within max_steps"]["example"]["detail"].startswith("no final answer within max_steps=")


def test_cost_per_kept_row_and_the_funnel_per_source(judged_run):
    stats = load(judged_run)["stats"]
    kept = rows_in(judged_run, "curate")
    assert stats["funnel"]["total"]["kept"] == kept
    teacher = stats["funnel"]["by_source"]["llm:teacher"]
    assert teacher["sampled"] >= teacher["ended without error"] >= teacher["passed verify"] >= teacher["kept"]
    total = stats["cost"]["total"]
    assert total["cost_usd"] > 0 and total["cost_per_kept_usd"] == pytest.approx(total["cost_usd"] / kept)
    assert set(stats["cost"]["llm_spend_by_stage_usd"]) == {"sample", "verify"}  # the judges' spend is counted too
    assert stats["curate"]["removed"] == [{"reason": "not passed", "rows": stats["curate"]["verified"] - kept,
                                           "share": round((stats["curate"]["verified"] - kept) / stats["curate"]["verified"], 4)}]


def test_the_page_rounds_numbers_and_reads_judge_agreement_as_a_table(judged_run):
    page = (judged_run / "report.html").read_text()
    body = re.sub(r'<div class="detail">.*?</div>', " ", page.split("</style>")[1])  # examples quote rows' text verbatim
    text = re.sub(r"<[^>]+>|data:image/png;base64,[A-Za-z0-9+/=]+", " ", body)
    assert not re.findall(r"\d\.0*[1-9]\d{3,}", text)  # three significant digits at most: no 0.9629537462462462
    assert "{" not in text  # no raw dicts
    assert "judge-lenient and judge-pass" in text and "of the rows both voted on" in text
    assert re.search(r"Fleiss' kappa -?\d\.\d{1,3}\s+\(\w+ agreement", text)
    assert page.count("data:image/png;base64,") == 3  # charts embedded: the file stands alone
    assert not (judged_run / ".view.json").exists() and "<code>traj-" in page  # no viewer running: ids as text


def test_a_run_with_only_tasks_gets_a_report(tmp_path, write_config):
    config, run = write_config(small_config()), tmp_path / "run"
    assert cli.main(["synthesize", str(config), "--run-dir", str(run)]) == 0
    report = load(run)
    assert [s["stage"] for s in report["stats"]["stages"]] == ["synthesize"]
    assert "Failures by check" in (run / "report.html").read_text()
