"""dataset/_manifest.json: what curate wrote (splits, files, views, the inputs and references it was made from)
and the size and sha256 of every file beside it, so that a later run tells an intact dataset from one that is
damaged or edited by hand (then curate runs again, and publish refuses to upload it)."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import shards

NAME = shards.MANIFEST


def checksums(folder: Path) -> dict[str, dict]:
    """{relative path: {size, sha256}} of every file under `folder`."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        out[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": shards.sha256_file(path)}
    return out


def write(folder: Path, manifest: dict) -> None:
    """The manifest of the complete dataset folder `folder` (not yet in place: a plain write is atomic enough)."""
    (folder / NAME).write_text(json.dumps({**manifest, "checksums": checksums(folder)}, indent=2))


def read(folder: Path) -> tuple[dict | None, str | None]:
    """(manifest, None) when the dataset in `folder` is what curate wrote; (None, why) when it is not (invalid
    JSON, a file changed, missing or added to a count by hand); (None, None) when there is none."""
    path = folder / NAME
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path}: unreadable ({exc.strerror})"
    except ValueError as exc:  # not JSON, or not even UTF-8
        return None, f"{path}: not valid JSON ({exc})"
    try:
        problem = _damage(folder, manifest)
    except (AttributeError, KeyError, TypeError, ValueError, OSError, pa.ArrowException) as exc:
        problem = f"{path}: not a manifest curate wrote ({type(exc).__name__}: {exc})"
    return (None, problem) if problem else (manifest, None)


def _damage(folder: Path, manifest: dict) -> str | None:
    path = folder / NAME
    recorded = manifest.get("checksums")
    if not isinstance(recorded, dict):
        return f"{path}: records no checksums (written by an older trajforge, or edited)"
    for rel, info in sorted(recorded.items()):
        file = folder / rel
        if not file.is_file():
            return f"{file}: missing"
        if file.stat().st_size != info["size"] or shards.sha256_file(file) != info["sha256"]:
            return f"{file}: changed since curate wrote it"
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder)
        if file.is_file() and rel.as_posix() not in recorded and not any(part.startswith((".", "_")) for part in rel.parts):
            return f"{file}: not written by curate"
    for config, counts in {"data": manifest["splits"], **manifest["views"]}.items():
        files = sorted((folder / config).glob("*.parquet"))
        for split in sorted(set(counts) | {file.name.split("-")[0] for file in files}):
            rows = sum(pq.read_metadata(file).num_rows for file in files if file.name.startswith(f"{split}-"))
            if rows != counts.get(split, 0):
                return f"{path}: says {counts.get(split, 0)} {split} rows in {config}/, which holds {rows}"
    return None
