"""Publish: the dry-run folder loads with `datasets` (every config and split); uploads go to a Hub on 127.0.0.1
through the real huggingface_hub client (HF_ENDPOINT), in one commit, and re-publishing the same data is a no-op."""

import datasets
import pytest
import yaml

from pipeline.publish.stage import upload_files
from tests.conftest import run_cli
from tests.curate_run import curate, run_dir, template_run  # noqa: F401 (fixtures)
from tests.hub_server import Hub

TOKEN = "hf_test_token_0123456789"
REPO = "someone/agent-trajectories"


@pytest.fixture
def curated(run_dir):
    curate(run_dir, "curate.views=[trl, sharegpt, react, dpo, dpo_step]")
    return run_dir


@pytest.fixture
def hub(monkeypatch):
    """The local Hub, with the environment a user sets: HF_ENDPOINT pointing at it and HF_TOKEN."""
    with Hub(TOKEN) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield server


def publish(run_dir, hub, *extra):
    return run_cli("publish", run_dir, "--repo-id", REPO, *extra)


def test_dry_run_folder_loads_every_config_and_split(curated, tmp_path):
    out = tmp_path / "hub-folder"
    run_cli("publish", curated, "--dry-run", "--out", out, check=True)
    meta = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    configs = [c["config_name"] for c in meta["configs"]]
    assert configs == ["default", "trl", "sharegpt", "react", "dpo", "dpo_step"]
    for config in meta["configs"]:
        loaded = datasets.load_dataset(str(out), config["config_name"])
        for entry in config["data_files"]:
            assert loaded[entry["split"]].num_rows > 0, (config["config_name"], entry["split"])
    default = datasets.load_dataset(str(out))
    assert isinstance(default["train"][0]["messages"][0], dict)
    assert not list(out.rglob("_*")) and not list(out.rglob(".*"))


def test_dry_run_writes_exactly_the_upload_set(curated, tmp_path):
    out = tmp_path / "hub-folder"
    run_cli("publish", curated, "--dry-run", "--out", out, check=True)
    written = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert written == upload_files(curated / "dataset")


def test_upload_creates_the_repo_in_one_commit_with_every_file(curated, hub):
    proc = publish(curated, hub)
    assert proc.returncode == 0, proc.stderr
    repo = hub.repos[REPO]
    expected = {p.as_posix(): (curated / "dataset" / p).read_bytes() for p in upload_files(curated / "dataset")}
    assert {k: v for k, v in repo.files.items() if k != ".gitattributes"} == expected
    assert len(hub.commit_bodies) == 1 and "published:" in proc.stdout and not repo.private


def test_republishing_the_same_data_makes_no_commit(curated, hub):
    publish(curated, hub)
    proc = publish(curated, hub)
    assert proc.returncode == 0 and "already up to date" in proc.stdout
    assert len(hub.commit_bodies) == 1


def test_changed_data_is_one_commit_that_also_deletes_stale_files(curated, hub):
    publish(curated, hub)
    curate(curated, "curate.views=[trl]", "curate.rows_per_shard=10")
    proc = publish(curated, hub)
    assert proc.returncode == 0, proc.stderr
    files = set(hub.repos[REPO].files)
    assert not any(f.startswith(("dpo/", "sharegpt/")) for f in files) and "data/train-00000-of-00001.parquet" not in files
    assert {p.as_posix() for p in upload_files(curated / "dataset")} | {".gitattributes"} == files
    assert len(hub.commit_bodies) == 2
    assert {item["key"] for item in hub.commit_bodies[1]} == {"header", "file", "deletedFile"}
    sent = {item["value"]["path"] for item in hub.commit_bodies[1] if item["key"] == "file"}
    assert "README.md" in sent and "plots/steps.png" not in sent  # unchanged files are not sent again


def test_private_flag_creates_a_private_repo(curated, hub):
    assert publish(curated, hub, "--private").returncode == 0
    assert hub.repos[REPO].private


def test_failed_upload_keeps_the_local_dataset_and_says_what_to_rerun(curated, hub):
    before = {p: p.read_bytes() for p in (curated / "dataset").rglob("*") if p.is_file()}
    hub.fail_commits = True
    proc = publish(curated, hub)
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert f"upload to {REPO} failed" in message and "intact" in message and f"re-run `trajforge publish {curated} --repo-id {REPO}`" in message
    assert before == {p: p.read_bytes() for p in (curated / "dataset").rglob("*") if p.is_file()}
    hub.fail_commits = False
    assert publish(curated, hub).returncode == 0 and len(hub.commit_bodies) == 1


def test_wrong_token_is_reported_without_the_token(curated, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_secret_value")
    proc = publish(curated, hub)
    assert proc.returncode == 2 and "failed" in proc.stderr and "hf_wrong_secret_value" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("repo_id", ["noslash", "a/b/c", "user/-bad", "user/na..me", "us er/name"])
def test_invalid_repo_id_fails_before_any_request(curated, hub, repo_id):
    proc = run_cli("publish", curated, "--repo-id", repo_id, "--dry-run", "--out", curated / "x")
    assert proc.returncode == 2 and "--repo-id" in proc.stderr and not (curated / "x").exists()


def test_missing_token_is_a_clear_error(curated, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    proc = publish(curated, hub)
    assert proc.returncode == 2 and "HF_TOKEN is not set" in proc.stderr and not hub.repos
