"""Parquet shards: atomic writes, done-ness by stage hash, per-shard markers and the stage manifest.

A shard is written to a temporary name and renamed into place when complete. Its stage hash lives in the
Parquet footer, so a finished shard is recognised from the file alone; a marker file written after the
rename carries its row count and checksum, from which `_manifest.json` is regenerated (under a lock, so
several `--shard` processes can share one stage directory).

The footer also says how many transient failures (pipeline/llm/transient.py) the shard holds and which
input it was made from (the input shard's checksum). A shard is *finished* when it carries the stage hash:
the next stage may read it. It is *done*, and skipped by a re-run of its own stage, when moreover it holds
no transient failure and was made from the input that is there now: a shard whose rows wait for a retry is
redone by the next run (finished work comes from the cache), and then every shard made from it is redone too.
"""

import fcntl
import hashlib
import json
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import rows as rowlib
from pipeline import schema
from pipeline.errors import UserError

HASH_KEY = "trajforge.stage_hash"
PENDING_KEY = "trajforge.pending"  # transient failures the shard holds
INPUT_KEY = "trajforge.input"  # sha256 of the input shard it was made from
MANIFEST = "_manifest.json"


def shard_name(k: int) -> str:
    return f"part-{k:05d}.parquet"


def _marker(path: Path) -> Path:
    return path.with_name(f".{path.name}.done.json")


def footer(path: Path) -> dict | None:
    """{stage_hash, pending, input} from a shard's footer, or None when the file is absent or unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = lambda key: meta[key.encode()].decode() if key.encode() in meta else None  # noqa: E731
    return {"stage_hash": value(HASH_KEY), "pending": int(value(PENDING_KEY) or 0), "input": value(INPUT_KEY)}


def stage_hash_of(path: Path) -> str | None:
    """The stage hash stored in a shard's footer, or None when the file is absent or unreadable."""
    found = footer(path)
    return found["stage_hash"] if found else None


def is_finished(path: Path, stage_hash: str) -> bool:
    """Written by this stage config (it may still hold rows waiting for a retry): the next stage may read it."""
    return stage_hash_of(path) == stage_hash


def is_done(path: Path, stage_hash: str, input_fingerprint: str | None = None) -> bool:
    """Finished, with no transient failure, and (when given) made from the input whose fingerprint is given."""
    found = footer(path)
    return (found is not None and found["stage_hash"] == stage_hash and found["pending"] == 0
            and (input_fingerprint is None or found["input"] == input_fingerprint))


def fingerprint(path: Path) -> str:
    """The checksum of a finished shard: from its done-marker when that matches the file, else computed."""
    marker = _marker(path)
    try:
        info = json.loads(marker.read_text())
        if info.get("stage_hash") == stage_hash_of(path) and info.get("sha256"):
            return info["sha256"]
    except (OSError, ValueError):
        pass
    return sha256_file(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temp_name(path: Path) -> Path:
    """A temp name of this host, process and thread (stages write shards from worker threads)."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}-{threading.get_ident()}.tmp")


def _write_text_atomic(path: Path, text: str) -> None:
    """Readers (another thread or process regenerating the manifest) see the old text or the new, never half."""
    tmp = _temp_name(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def invalid_rows(rows: list[dict], kind: str) -> list[str]:
    """Schema violations as 'row N (id=...): field: problem'."""
    found = []
    for i, row in enumerate(rows):
        for problem in schema.errors(kind, row):
            found.append(f"row {i} (id={row.get('id')}): {problem}")
    return found


def write_table_atomic(path: Path, table: pa.Table, **parquet_options) -> None:
    """Write to a temp name, fsync, rename into place: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        pq.write_table(table, tmp, **parquet_options)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk or a quota: finished shards stay, this one is simply not there
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; finished shards are kept: free space and "
                        "re-run the same command to resume") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_shard(path: Path, rows: list[dict], kind: str, stage_hash: str, marker: bool = True, pending: int = 0,
                input_fingerprint: str | None = None) -> None:
    """Validate every row against the `kind` schema, then write the shard atomically with its stage hash, the
    number of transient failures it holds and its input's fingerprint (and, with `marker`, the done-marker the
    stage manifest is built from)."""
    problems = invalid_rows(rows, kind)
    if problems:
        raise RuntimeError(f"refusing to write {path}: {len(problems)} schema violation(s), first: {problems[0]}")
    metadata = {HASH_KEY: stage_hash, PENDING_KEY: str(pending)}
    if input_fingerprint:
        metadata[INPUT_KEY] = input_fingerprint
    write_table_atomic(path, rowlib.to_table(rows, kind, metadata=metadata))
    if marker:
        _write_text_atomic(_marker(path), json.dumps({"rows": len(rows), "sha256": sha256_file(path), "stage_hash": stage_hash,
                                                      "pending": pending}))


def read_table(path: Path, kind: str) -> pa.Table:
    """Read a Parquet file of `kind` rows; an unreadable file or missing columns is a UserError naming the file."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    table = rowlib.conform(table, kind)
    missing = [name for name in rowlib.SCHEMAS[kind].names if name not in table.column_names]
    if missing:
        raise UserError(f"{path}: not a {kind} file: missing column(s) {', '.join(missing)}")
    return table


def read_shard(path: Path, kind: str, validate: bool = True) -> list[dict]:
    """Rows of a shard; with `validate`, a row that breaks the schema is a UserError naming file, row and field."""
    try:
        rows = rowlib.from_table(read_table(path, kind), kind)
    except (pa.ArrowException, ValueError) as exc:
        raise UserError(f"{path}: columns do not have the {kind} types ({exc})") from None
    if validate:
        problems = invalid_rows(rows, kind)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UserError(f"{path}: {problems[0]}{more}")
    return rows


def clean_stale_temps(directory: Path) -> int:
    """Remove temp files left by processes of this host that are gone (killed mid-write)."""
    removed = 0
    host = socket.gethostname()
    for tmp in directory.glob(".*.tmp"):
        stem, owner, _ = tmp.name.rsplit(".", 2)  # .NAME.HOST.PID-THREAD.tmp; HOST may contain dots
        pid = owner.split("-")[0]
        if stem.endswith("." + host) and pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def locked(directory: Path):
    """An exclusive lock on a stage directory's manifest (flock: released if the process dies)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".manifest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_manifest(directory: Path, stage: str, stage_hash: str, num_shards: int) -> dict:
    """Regenerate `_manifest.json` from the shards' footers and markers; returns it."""
    with locked(directory):
        shards = {}
        for k in range(num_shards):
            path = directory / shard_name(k)
            found = footer(path)
            if found is None or found["stage_hash"] is None:
                continue
            marker = _marker(path)
            info = json.loads(marker.read_text()) if marker.exists() else {}
            if info.get("stage_hash") != found["stage_hash"]:
                info = {"rows": pq.read_metadata(path).num_rows, "sha256": sha256_file(path), "stage_hash": found["stage_hash"],
                        "pending": found["pending"]}
                _write_text_atomic(marker, json.dumps(info))
            shards[path.name] = info
        done = [name for name, info in shards.items() if info["stage_hash"] == stage_hash and not info.get("pending")]
        manifest = {
            "stage": stage,
            "stage_hash": stage_hash,
            "num_shards": num_shards,
            "complete": len(done) == num_shards,
            "rows": sum(shards[name]["rows"] for name in done),
            "pending": sum(info.get("pending", 0) for info in shards.values() if info["stage_hash"] == stage_hash),
            "shards": shards,
        }
        _write_text_atomic(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        return manifest
