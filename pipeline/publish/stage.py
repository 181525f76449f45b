"""The publish stage: the curated dataset folder -> a Hugging Face Hub dataset repo in one commit, or with
--dry-run a local folder holding exactly what would be uploaded.

The commit mirrors the folder: files that changed are uploaded, remote files the folder no longer has are
deleted (`.gitattributes` stays), unchanged files are skipped, so publishing the same data again makes no commit.
The token comes from HF_TOKEN; the endpoint from HF_ENDPOINT (huggingface_hub's own setting).
"""

import logging
import os
import re
import shutil
from pathlib import Path

from pipeline import atomic
from pipeline.curate import manifest
from pipeline.publish import card
from pipeline.errors import UserError, storage_error

log = logging.getLogger("trajforge")

REPO_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")


def check_repo_id(repo_id: str | None) -> str:
    if not repo_id:
        raise UserError("publish: no repo id: pass --repo-id USER/NAME or set publish.repo_id in the config")
    if not REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise UserError(f"--repo-id {repo_id!r}: expected USER/NAME (letters, digits, '.', '_', '-'; no '--' or '..'; "
                        "not starting or ending with '.', '_' or '-')")
    return repo_id


def upload_files(dataset_dir: Path) -> list[Path]:
    """What goes to the Hub: the card, data, views and plots; bookkeeping (manifests, hidden files) stays local.
    A dataset that is not what curate wrote (a file damaged, edited or added) is refused."""
    if not (dataset_dir / "README.md").exists():
        raise UserError(f"{dataset_dir}: no curated dataset here (run `trajforge curate` first)")
    damaged = manifest.read(dataset_dir)[1]
    if damaged:
        raise UserError(f"{damaged}: run `trajforge curate` to rebuild the dataset before publishing it")
    files = []
    for path in sorted(dataset_dir.rglob("*")):
        rel = path.relative_to(dataset_dir)
        if path.is_file() and not any(part.startswith((".", "_")) for part in rel.parts):
            files.append(rel)
    return files


def check_license(dataset_dir: Path, upload: bool) -> None:
    """An upload needs the licence the user chose in the card; a dry run only warns. `other` warns."""
    chosen = card.chosen_license(dataset_dir / "README.md")
    if chosen is None and upload:
        raise UserError(f"{dataset_dir / 'README.md'}: the card names no licence: {card.LICENSE_HELP}, then re-run `trajforge curate`")
    if chosen is None:
        log.warning(f"publish: the card names no licence, so publishing it would be refused: {card.LICENSE_HELP}, then re-run `trajforge curate`")
    elif chosen == "other":
        log.warning("publish: the card's licence is `other`: readers on the Hub see no terms for it")


def dry_run(dataset_dir: Path, out: Path) -> list[Path]:
    """Write exactly the files an upload would send into `out` (replacing an earlier dry run there)."""
    files = upload_files(dataset_dir)
    check_license(dataset_dir, upload=False)
    if out.exists() and (not out.is_dir() or any(out.iterdir()) and not (out / "README.md").exists()):
        raise UserError(f"--out {out}: exists and is not an earlier dry run (no README.md); choose an empty or new folder")
    atomic.clean(out.parent, out.name)
    tmp = atomic.temp_path(out)
    try:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dataset_dir / rel, tmp / rel)
        atomic.replace_dir(tmp, out)
    except OSError as exc:
        raise storage_error(out, exc.strerror or str(exc), f"{out} is left as it was") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files


def _operations(api, repo_id: str, dataset_dir: Path, files: list[Path]) -> list:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    local = {rel.as_posix() for rel in files}
    remote = set(api.list_repo_files(repo_id, repo_type="dataset"))
    stale = sorted(remote - local - {".gitattributes"})
    return [CommitOperationDelete(path_in_repo=p) for p in stale] + [
        CommitOperationAdd(path_in_repo=rel.as_posix(), path_or_fileobj=str(dataset_dir / rel)) for rel in files]


def publish(dataset_dir: Path, repo_id: str, private: bool, commit_message: str, rerun: str) -> tuple[str, bool]:
    """Upload the folder in one commit; returns (commit url, whether anything changed)."""
    check_repo_id(repo_id)
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise UserError("HF_TOKEN is not set: create a write token at https://huggingface.co/settings/tokens and export it")
    files = upload_files(dataset_dir)
    check_license(dataset_dir, upload=True)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        before = api.repo_info(repo_id, repo_type="dataset").sha
        commit = api.create_commit(repo_id, _operations(api, repo_id, dataset_dir, files), repo_type="dataset",
                                   commit_message=commit_message)
    except Exception as exc:  # whatever the Hub or the network did, nothing local was touched
        detail = " ".join(str(exc).split())[:300]
        raise UserError(f"upload to {repo_id} failed: {type(exc).__name__}: {detail}. The local dataset in {dataset_dir} "
                        f"is intact and the commit is all-or-nothing; re-run `{rerun}`") from None
    return commit.commit_url, commit.oid != before


def check_target(config, out: Path | None) -> None:
    """Before any work: publish as a stage of `trajforge run` needs --dry-run --out DIR, or publish.repo_id and
    HF_TOKEN."""
    if out is not None:
        return
    if not config["publish"]["repo_id"]:
        raise UserError("publish is among the stages but the config has no publish.repo_id: set it (and HF_TOKEN), "
                        "or pass --dry-run --out DIR to write the folder that would be uploaded")
    check_repo_id(config["publish"]["repo_id"])
    if not config["curate"]["card"]["license"]:
        raise UserError(f"publish is among the stages but the config chooses no licence: {card.LICENSE_HELP}")
    if not os.environ.get("HF_TOKEN"):
        raise UserError("publish is among the stages but HF_TOKEN is not set: export a write token, or pass --dry-run --out DIR")


def run_stage(config, run_dir: Path, out: Path | None) -> dict:
    """publish as the last stage of `trajforge run`: a dry run into `out`, or one commit to publish.repo_id."""
    dataset_dir = run_dir / "dataset"
    if out is not None:
        files = dry_run(dataset_dir, out)
        return {"stage": "publish", "published": f"dry run: wrote {len(files)} file(s) to {out} (nothing uploaded)"}
    section = config["publish"]
    url, changed = publish(dataset_dir, section["repo_id"], section["private"], section["commit_message"],
                           f"trajforge publish {run_dir} --repo-id {section['repo_id']}")
    return {"stage": "publish", "published": f"published: {url}" if changed else f"already up to date: {url}"}
