"""The publish stage: the curated dataset folder -> a Hugging Face Hub dataset repo, or with --dry-run a
local folder laid out exactly as it would be uploaded."""

import os
import re
import shutil
from pathlib import Path

from pipeline.errors import UserError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def upload_files(dataset_dir: Path) -> list[Path]:
    """What goes to the Hub: the card and data files; bookkeeping (manifests, hidden files) stays local."""
    if not (dataset_dir / "README.md").exists():
        raise UserError(f"{dataset_dir}: no curated dataset here (run `trajforge curate` first)")
    files = []
    for path in sorted(dataset_dir.rglob("*")):
        rel = path.relative_to(dataset_dir)
        if path.is_file() and not any(part.startswith((".", "_")) for part in rel.parts):
            files.append(rel)
    return files


def dry_run(dataset_dir: Path, out: Path) -> list[Path]:
    files = upload_files(dataset_dir)
    shutil.rmtree(out, ignore_errors=True)
    for rel in files:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dataset_dir / rel, out / rel)
    return files


def publish(dataset_dir: Path, repo_id: str, private: bool) -> str:
    if not REPO_ID.match(repo_id or ""):
        raise UserError(f"--repo-id {repo_id!r}: expected USER/NAME (letters, digits, '.', '_', '-')")
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise UserError("HF_TOKEN is not set: create a write token at https://huggingface.co/settings/tokens and export it")
    from huggingface_hub import HfApi

    files = upload_files(dataset_dir)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=dataset_dir, repo_id=repo_id, repo_type="dataset",
                               allow_patterns=[str(f) for f in files], commit_message="Publish dataset with trajforge")
    return getattr(commit, "commit_url", str(commit))
