"""The dataset card says what the data is and under which terms: the licence the user chose (none is never
apache-2.0 in disguise; publishing needs one), the terms of the models whose text the rows hold, the language,
how each teacher fared in verification, and only plots that show something."""

import shutil

import pytest
import yaml

from tests.conftest import run_cli, small_config
from tests.fake_openai import FakeOpenAI


def front_matter(dataset) -> dict:
    return yaml.safe_load((dataset / "README.md").read_text().split("---")[1])


@pytest.fixture(scope="module")
def gemma_run(tmp_path_factory):
    """A program teacher plus an LLM teacher served under a Gemma model name (a fake endpoint over HTTP whose
    answers fail the answer check), and no licence chosen."""
    folder = tmp_path_factory.mktemp("card")
    with FakeOpenAI(models=("gemma-3-270m",), responder=lambda path, body: "Thought: easy.\nFinal Answer: 41") as server:
        data = small_config(arithmetic=6, sql_table=3, units_dates=3, kb_multihop=3)
        data["endpoints"] = {"teacher": {"base_url": server.base_url, "model": "gemma-3-270m", "max_retries": 2}}
        data["sample"]["teachers"].append({"name": "gemma", "policy": "llm", "endpoint": "teacher", "formats": ["react"],
                                           "domains": ["arithmetic"], "max_steps": 2})
        data["curate"]["card"].pop("license", None)
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump(data))
        proc = run_cli("run", config, "--run-dir", folder / "run", check=True)
    return config, folder / "run", proc


def test_no_licence_chosen_gives_a_card_without_one_and_a_warning(gemma_run):
    _, run, proc = gemma_run
    meta = front_matter(run / "dataset")
    assert "license" not in meta and meta["language"] == ["en"]
    assert "No licence was chosen for this dataset" in (run / "dataset" / "README.md").read_text()
    assert "the card names no licence, and publishing it will be refused" in proc.stderr


def test_publishing_without_a_licence_is_refused_before_any_request(gemma_run, monkeypatch):
    _, run, _ = gemma_run
    monkeypatch.setenv("HF_TOKEN", "hf_unused")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a request would fail differently
    proc = run_cli("publish", run, "--repo-id", "someone/data")
    assert proc.returncode == 2 and "the card names no licence: set curate.card.license" in proc.stderr


def test_a_dry_run_without_a_licence_writes_the_folder_and_warns(gemma_run, tmp_path):
    _, run, _ = gemma_run
    proc = run_cli("publish", run, "--dry-run", "--out", tmp_path / "hub", check=True)
    assert (tmp_path / "hub" / "README.md").exists() and "publishing it would be refused" in proc.stderr


def test_run_with_publish_and_no_licence_fails_before_any_work(gemma_run, tmp_path, monkeypatch):
    config, _, _ = gemma_run
    monkeypatch.setenv("HF_TOKEN", "hf_unused")
    proc = run_cli("run", config, "--run-dir", tmp_path / "new", "--stages", "synthesize,publish", "--set", "publish.repo_id=someone/data")
    assert proc.returncode == 2 and "the config chooses no licence" in proc.stderr and not (tmp_path / "new").exists()


def test_the_card_names_the_terms_of_the_teacher_model(gemma_run):
    _, run, _ = gemma_run
    card = (run / "dataset" / "README.md").read_text()
    assert "`gemma-3-270m` (endpoint `teacher`): the Gemma Terms of Use (https://ai.google.dev/gemma/terms)" in card


def test_the_card_says_how_each_teacher_fared(gemma_run):
    _, run, _ = gemma_run
    card = (run / "dataset" / "README.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith("| llm:gemma-3-270m |"))
    verified, passed, rate = [cell.strip() for cell in row.strip("|").split("|")[1:]]
    assert int(verified) > 0 and passed == "0" and rate == "0.0%"


def test_no_completion_token_plot_when_the_kept_rows_counted_none(gemma_run):
    _, run, _ = gemma_run
    plots = sorted(p.name for p in (run / "dataset" / "plots").glob("*.png"))
    assert plots and "completion_tokens.png" not in plots
    assert "completion_tokens.png" not in (run / "dataset" / "README.md").read_text()


def test_licence_other_is_written_with_a_warning(gemma_run, tmp_path):
    config, run, _ = gemma_run
    run = shutil.copytree(run, tmp_path / "run")
    proc = run_cli("curate", config, "--run-dir", run, "--reconfigure", "--set", "curate.card.license=other", check=True)
    assert front_matter(run / "dataset")["license"] == "other" and "curate.card.license is `other`" in proc.stderr
    proc = run_cli("publish", run, "--dry-run", "--out", tmp_path / "hub", check=True)
    assert "the card's licence is `other`" in proc.stderr
