"""Parquet shards: atomic writes, done-ness by stage hash, per-shard markers and the stage manifest.

A shard is written to a temporary name and renamed into place when complete. Its stage hash lives in the
Parquet footer; a marker file written after the rename records its rows, size and sha256 as written, from
which `_manifest.json` is regenerated (under a lock, so several `--shard` processes can share one stage
directory). A shard counts only once it matches its marker (`examine`): a truncated file, bytes changed in
the middle, a marker edited by hand or missing make it damaged, and its stage redoes it.

The footer also says how many transient failures (pipeline/llm/transient.py) the shard holds and which
input it was made from (the input shard's checksum). A shard is *finished* when it is intact and carries the
stage hash: the next stage may read it. It is *done*, and skipped by a re-run of its own stage, when moreover
it holds no transient failure and was made from the input that is there now: a shard whose rows wait for a
retry is redone by the next run (finished work comes from the cache), and then every shard made from it is
redone too.
"""

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import atomic, schema
from pipeline import rows as rowlib
from pipeline.errors import UserError, storage_error

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
        return _footer_fields(pq.read_schema(path).metadata or {})
    except (OSError, ValueError, pa.ArrowException):  # a damaged footer may not even decode as UTF-8
        return None


def _footer_fields(meta: dict) -> dict:
    value = lambda key: meta[key.encode()].decode() if key.encode() in meta else None  # noqa: E731
    return {"stage_hash": value(HASH_KEY), "pending": int(value(PENDING_KEY) or 0), "input": value(INPUT_KEY)}


def stage_hash_of(path: Path) -> str | None:
    """The stage hash stored in a shard's footer, or None when the file is absent or unreadable."""
    found = footer(path)
    return found["stage_hash"] if found else None


_verified: dict[tuple, dict] = {}  # (shard and marker as stat sees them) -> record: each file is read once a run


def examine(path: Path, checksum: bool = True) -> tuple[dict | None, str | None]:
    """What a shard file is: (record, None) for a finished shard that matches what its done-marker recorded when
    it was written (its size, then its footer's rows and stage hash, then its sha256); (None, why) for one that
    does not (truncated, bytes changed, a hand-edited or missing marker); (None, None) when there is no file.
    record: {rows, size, sha256, stage_hash, pending, input}. A check passed is remembered while neither file
    changes, so the stages of one run hash each shard once. Without `checksum` the bytes are not hashed (for the
    manifest, which every shard process regenerates: the stage that reads or skips a shard checks it whole)."""
    marker = _marker(path)
    try:
        stats = path.stat()
    except FileNotFoundError:
        return None, None
    try:
        mstats = marker.stat()
        info = json.loads(marker.read_text())
    except FileNotFoundError:
        return None, "no done-marker (its writer stopped before finishing it)"
    except (OSError, ValueError):
        return None, f"its done-marker {marker.name} is unreadable"
    key = (str(path), stats.st_size, stats.st_mtime_ns, stats.st_ino, mstats.st_size, mstats.st_mtime_ns, mstats.st_ino)
    if key in _verified:
        return _verified[key], None
    if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or not isinstance(info.get("rows"), int):
        return None, f"its done-marker {marker.name} is not one trajforge wrote"
    if info.get("size", stats.st_size) != stats.st_size:  # markers of older versions have no size
        return None, f"{stats.st_size} bytes, {info['size']} when it was written (truncated or changed)"
    try:
        meta = pq.read_metadata(path)
        fields = _footer_fields(meta.metadata or {})
    except (OSError, ValueError, pa.ArrowException):  # a damaged footer may not even decode as UTF-8
        return None, "its Parquet footer is unreadable"
    if fields["stage_hash"] != info.get("stage_hash"):
        return None, f"its done-marker {marker.name} belongs to another version of the file"
    if meta.num_rows != info["rows"]:
        return None, f"its done-marker says {info['rows']} rows, the file holds {meta.num_rows}"
    record = {"rows": meta.num_rows, "size": stats.st_size, "sha256": info["sha256"], **fields}
    if not checksum:
        return record, None
    if sha256_file(path) != info["sha256"]:
        return None, "its bytes changed since it was written (sha256 differs from its done-marker)"
    _verified[key] = record
    return record, None


def damage(path: Path) -> str | None:
    """Why the shard at `path` cannot be trusted, or None when it is sound or absent."""
    return examine(path)[1]


def is_finished(path: Path, stage_hash: str) -> bool:
    """Written by this stage config and intact (it may still hold rows waiting for a retry): the next stage may
    read it."""
    record, _ = examine(path)
    return record is not None and record["stage_hash"] == stage_hash


def is_done(path: Path, stage_hash: str, input_fingerprint: str | None = None) -> bool:
    """Finished, with no transient failure, and (when given) made from the input whose fingerprint is given."""
    record, _ = examine(path)
    return (record is not None and record["stage_hash"] == stage_hash and record["pending"] == 0
            and (input_fingerprint is None or record["input"] == input_fingerprint))


def fingerprint(path: Path) -> str | None:
    """The checksum of a finished, intact shard (verified against its done-marker); None for any other file."""
    record, _ = examine(path)
    return record["sha256"] if record else None


def rows_of(path: Path) -> int:
    """Rows of a finished, intact shard; 0 for any other file."""
    record, _ = examine(path)
    return record["rows"] if record else 0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def invalid_rows(rows: list[dict], kind: str) -> list[str]:
    """Schema violations as 'row N (id=...): field: problem'."""
    found = []
    for i, row in enumerate(rows):
        for problem in schema.errors(kind, row):
            found.append(f"row {i} (id={row.get('id')}): {problem}")
    return found


def write_table_atomic(path: Path, table: pa.Table, **parquet_options) -> dict:
    """Write to a temp name, fsync, rename into place: readers never see half a file. Returns the {size, sha256}
    of what was written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(path.parent, exc.strerror or str(exc)) from None
    tmp = atomic.temp_path(path)
    try:
        pq.write_table(table, tmp, **parquet_options)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        written = {"size": tmp.stat().st_size, "sha256": sha256_file(tmp)}
        os.replace(tmp, path)
    except OSError as exc:  # a full disk or a quota: finished shards stay, this one is simply not there
        raise storage_error(path, exc.strerror or str(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return written


def write_finished(path: Path, table: pa.Table, stage_hash: str, pending: int = 0, input_fingerprint: str | None = None) -> None:
    """Write `table` as a finished shard: atomically, with its stage hash, the number of transient failures it
    holds and its input's fingerprint in the footer, then its done-marker (rows, size, sha256), from which the
    stage manifest is built and against which the next run checks the file."""
    metadata = {HASH_KEY: stage_hash, PENDING_KEY: str(pending)}
    if input_fingerprint:
        metadata[INPUT_KEY] = input_fingerprint
    written = write_table_atomic(path, table.replace_schema_metadata(metadata))
    atomic.write_text(_marker(path), json.dumps({"rows": table.num_rows, **written, "stage_hash": stage_hash, "pending": pending}))


def write_shard(path: Path, rows: list[dict], kind: str, stage_hash: str, pending: int = 0,
                input_fingerprint: str | None = None) -> None:
    """Validate every row against the `kind` schema, then write it as a finished shard (`write_finished`)."""
    problems = invalid_rows(rows, kind)
    if problems:
        raise RuntimeError(f"refusing to write {path}: {len(problems)} schema violation(s), first: {problems[0]}")
    write_finished(path, rowlib.to_table(rows, kind), stage_hash, pending, input_fingerprint)


def read_parquet(path: Path, **options) -> pa.Table:
    """pq.read_table, with an absent or unreadable file a UserError naming it."""
    try:
        return pq.read_table(path, **options)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None


def read_table(path: Path, kind: str) -> pa.Table:
    """Read a Parquet file of `kind` rows; an unreadable file or missing columns is a UserError naming the file."""
    table = rowlib.conform(read_parquet(path), kind)
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
    """Regenerate `_manifest.json` from the shards that are finished and intact; returns it."""
    with locked(directory):
        shards = {}
        for k in range(num_shards):
            path = directory / shard_name(k)
            record, _ = examine(path, checksum=False)
            if record is not None:
                shards[path.name] = {key: record[key] for key in ("rows", "size", "sha256", "stage_hash", "pending")}
        done = [name for name, info in shards.items() if info["stage_hash"] == stage_hash and not info["pending"]]
        manifest = {
            "stage": stage,
            "stage_hash": stage_hash,
            "num_shards": num_shards,
            "complete": len(done) == num_shards,
            "rows": sum(shards[name]["rows"] for name in done),
            "pending": sum(info["pending"] for info in shards.values() if info["stage_hash"] == stage_hash),
            "shards": shards,
        }
        atomic.write_text(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        return manifest
