"""Curate end to end through the CLI, on a real verified run with injected failures and duplicates."""

import json

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import rows as rowlib
from tests.curate_run import BFCL_QUESTION, curate, run_dir, template_run  # noqa: F401 (fixtures)


def data_rows(run_dir, split=None) -> list[dict]:
    files = sorted((run_dir / "dataset" / "data").glob(f"{split or '*'}-*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def report(run_dir) -> dict:
    return json.loads((run_dir / "dataset" / "_report.json").read_text())


def test_split_files_are_named_k_of_n_and_keep_the_schema(run_dir):
    curate(run_dir, "curate.rows_per_shard=10")
    files = sorted(p.name for p in (run_dir / "dataset" / "data").glob("*.parquet"))
    train = [f for f in files if f.startswith("train-")]
    assert train == [f"train-{k:05d}-of-{len(train):05d}.parquet" for k in range(len(train))] and len(train) > 1
    for name in files:
        assert pq.read_schema(run_dir / "dataset" / "data" / name).equals(rowlib.TRAJECTORY, check_metadata=False)


def test_no_task_is_in_two_splits_and_split_column_is_set(run_dir):
    curate(run_dir)
    tasks = {split: {r["task_id"] for r in data_rows(run_dir, split)} for split in ("train", "validation")}
    assert tasks["train"] and tasks["validation"] and not tasks["train"] & tasks["validation"]
    assert {r["split"] for r in data_rows(run_dir, "validation")} == {"validation"}


def test_failed_rows_and_lower_scored_duplicates_are_removed_and_counted(run_dir):
    curate(run_dir)
    ids = {r["id"] for r in data_rows(run_dir)}
    assert not any(i.endswith(("-failed1", "-failed2", "-exact", "-near")) for i in ids)
    assert all(r["passed"] for r in data_rows(run_dir))
    failed = sum(not r["passed"] for p in (run_dir / "verified").glob("part-*.parquet") for r in pq.read_table(p, columns=["passed"]).to_pylist())
    removed = report(run_dir)["removed"]
    assert failed >= 10 and removed["not passed"] == failed
    assert removed["exact duplicate"] >= 5 and removed["near duplicate"] >= 5


def test_duplicates_keep_the_best_scoring_member(run_dir):
    curate(run_dir)
    ids = {r["id"] for r in data_rows(run_dir)}
    verified = [r for p in sorted((run_dir / "verified").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    copied = {r["id"].rsplit("-", 1)[0] for r in verified if r["id"].endswith(("-exact", "-near"))}
    assert copied and copied <= ids


def test_near_dedup_can_be_switched_off(run_dir):
    curate(run_dir, "curate.dedup_near.enabled=false")
    ids = {r["id"] for r in data_rows(run_dir)}
    assert any(i.endswith("-near") for i in ids)
    assert "near duplicate" not in report(run_dir)["removed"]


def test_filters_remove_rows_by_reason(run_dir):
    curate(run_dir, "curate.filters.min_steps=3", "curate.filters.max_chars=100000", "curate.filters.required_checks=[answer]")
    rows = data_rows(run_dir)
    assert rows and all(len(r["steps"]) >= 3 for r in rows)
    assert report(run_dir)["removed"]["steps out of range"] > 0


def test_domain_caps_keep_at_most_the_cap(run_dir):
    curate(run_dir, "curate.filters.domain_caps={arithmetic: 3}")
    assert sum(r["domain"] == "arithmetic" for r in data_rows(run_dir)) == 3
    assert report(run_dir)["removed"]["domain cap"] > 0


def test_reference_file_decontaminates_and_lists_removed_rows(run_dir, tmp_path):
    reference = tmp_path / "bench.jsonl"
    lines = [{"question": "Some other benchmark question about rivers and capitals of Europe."},
             {"question": "Context first. " + BFCL_QUESTION.upper() + " Answer in square units."}]
    reference.write_text("".join(json.dumps(line) + "\n" for line in lines))
    curate(run_dir, f"curate.decontam.references=[{{name: mybench, path: {reference}}}]")
    assert BFCL_QUESTION not in {r["instruction"] for r in data_rows(run_dir)}
    listed = report(run_dir)["contaminated"]
    assert [(r["reference"], r["instruction"]) for r in listed] == [("mybench", BFCL_QUESTION)]
    assert report(run_dir)["removed"]["contaminated"] == 1


def test_an_updated_reference_file_curates_again(run_dir, tmp_path):
    reference = tmp_path / "bench.jsonl"
    reference.write_text(json.dumps({"question": "Some other benchmark question about rivers and capitals of Europe."}) + "\n")
    setting = f"curate.decontam.references=[{{name: mybench, path: {reference}}}]"
    curate(run_dir, setting)
    assert BFCL_QUESTION in {r["instruction"] for r in data_rows(run_dir)}
    assert "reused" in curate(run_dir, setting).stdout  # same config, same file: nothing to do
    with open(reference, "a") as handle:  # the benchmark gains the question: same config, new contents
        handle.write(json.dumps({"question": BFCL_QUESTION}) + "\n")
    assert "reused" not in curate(run_dir, setting).stdout
    assert BFCL_QUESTION not in {r["instruction"] for r in data_rows(run_dir)}
    assert report(run_dir)["removed"]["contaminated"] == 1


def test_bfcl_package_reference_catches_a_bfcl_question(run_dir):
    import importlib.util

    if importlib.util.find_spec("bfcl_eval") is None:
        pytest.skip("bfcl-eval is not installed (scripts/setup.sh installs it)")
    curate(run_dir, "curate.decontam.references=[{name: bfcl, package: bfcl}]")
    assert BFCL_QUESTION not in {r["instruction"] for r in data_rows(run_dir)}
    assert [r["reference"] for r in report(run_dir)["contaminated"]] == ["bfcl"]


def test_mix_reaches_the_target_with_the_requested_ratios(run_dir):
    curate(run_dir, "curate.mix.ratios={arithmetic: 0.5, kb_multihop: 0.5}", "curate.mix.total=10")
    rows = data_rows(run_dir)
    assert len(rows) == 10 and sum(r["domain"] == "arithmetic" for r in rows) == 5
    table = {m["bucket"]: m for m in report(run_dir)["mix"]}
    assert table["arithmetic"]["selected"] == 5 and table["kb_multihop"]["share"] == 0.5


def test_mix_is_deterministic_with_the_seed(run_dir):
    ratios = "curate.mix.ratios={arithmetic: 0.5, kb_multihop: 0.5}"
    curate(run_dir, ratios, "curate.mix.total=8")
    first = sorted(r["id"] for r in data_rows(run_dir))
    curate(run_dir, ratios, "curate.mix.total=8", "curate.validation_fraction=0.2")
    assert sorted(r["id"] for r in data_rows(run_dir)) == first


def test_short_bucket_fills_from_the_others_or_fails_naming_it(run_dir):
    short = ["curate.mix.ratios={arithmetic: 0.9, kb_multihop: 0.1}", "curate.mix.total=30"]
    curate(run_dir, *short)
    table = {m["bucket"]: m for m in report(run_dir)["mix"]}
    assert table["arithmetic"]["selected"] == table["arithmetic"]["available"] < 27
    assert table["kb_multihop"]["selected"] > 3
    proc = curate(run_dir, *short, "curate.mix.on_short=fail", check=False)
    assert proc.returncode == 2 and "arithmetic has" in proc.stderr and "needs 27" in proc.stderr


@pytest.mark.parametrize("setting, message", [
    ("curate.mix.ratios={arithmetic: 0.7, kb_multihop: 0.7}", "sum to 1.4"),
    ("curate.mix.ratios={arithmetik: 1.0}", "unknown domain 'arithmetik'"),
    ("curate.filters.domain_caps={nope: 3}", "unknown domain 'nope'"),
    ("curate.filters.required_checks=[judge]", "'judge' is not one of verify.checks"),
    ("curate.decontam.references=[{name: x, path: /nonexistent/bench.jsonl}]", "/nonexistent/bench.jsonl: decontamination reference file does not exist"),
])
def test_bad_curate_config_fails_before_work(run_dir, setting, message):
    proc = curate(run_dir, setting, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (run_dir / "dataset").exists()


def test_card_lists_views_stats_and_provenance(run_dir):
    curate(run_dir, "curate.views=[trl, dpo]")
    text = (run_dir / "dataset" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert configs["trl"]["data_files"] == [{"split": "train", "path": "trl/train-*.parquet"}, {"split": "validation", "path": "trl/validation-*.parquet"}]
    assert set(configs) >= {"default", "trl", "dpo"} and meta["license"] == "apache-2.0" and meta["size_categories"] == ["n<1K"]
    for heading in ("## Rows by domain", "## Verification", "| answer |", "## Curation", "| not passed |", "prompt hashes", "## Distributions"):
        assert heading in text
    assert (run_dir / "dataset" / "plots" / "steps.png").read_bytes()[:4] == b"\x89PNG"
    assert "api_key_env" not in text and "base_url" not in text


def test_curate_output_is_byte_stable_and_independent_of_workers(run_dir):
    """Same config and data -> the same bytes (what makes re-publishing a no-op), with 1 or 2 scan processes."""
    import shutil

    curate(run_dir, "curate.views=[trl]")
    first = {p.relative_to(run_dir): p.read_bytes() for p in (run_dir / "dataset").rglob("*") if p.is_file()}
    shutil.rmtree(run_dir / "dataset")
    curate(run_dir, "curate.views=[trl]", "curate.workers=2")
    second = {p.relative_to(run_dir): p.read_bytes() for p in (run_dir / "dataset").rglob("*") if p.is_file()}
    assert first.keys() == second.keys() and all(first[k] == second[k] for k in first)
