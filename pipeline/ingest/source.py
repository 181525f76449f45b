"""Where imported trajectories come from: a file (.jsonl, .json, .parquet), a folder of such files, or a
dataset `datasets.load_dataset` loads (a Hub name). Each record keeps where it was found (`file:line`, or the
row number) so an unmappable one can be reported; a line that is not JSON is a record that failed to parse,
not an error of the whole file."""

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.errors import UserError

SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Record:
    where: str  # "logs.jsonl:12", "a.parquet row 3", "row 7"
    raw: object  # the parsed record, or a ParseFailure
    problem: str | None = None  # why it could not even be read


def _jsonl(path: Path, label: str) -> list[Record]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Record(f"{label}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            out.append(Record(f"{label}:{number}", None, f"not valid JSON ({exc.msg})"))
    return out


def _json(path: Path, label: str) -> list[Record]:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        return [Record(label, None, f"not valid JSON ({exc.msg} at line {exc.lineno})")]
    if isinstance(data, list):
        return [Record(f"{label}[{i}]", item) for i, item in enumerate(data)]
    return [Record(label, data)]


def _parquet(path: Path, label: str) -> list[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    return [Record(f"{label} row {i}", row) for i, row in enumerate(rows)]


def _file(path: Path, label: str) -> list[Record]:
    reader = {".jsonl": _jsonl, ".json": _json, ".parquet": _parquet}[path.suffix]
    return reader(path, label)


def files_of(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not found:
        raise UserError(f"{path}: no {', '.join(SUFFIXES)} files to import")
    return found


@lru_cache(maxsize=8)
def _read(path: str, split: str, stamp: tuple) -> tuple[Record, ...]:
    source = Path(path)
    if source.exists():
        files = files_of(source)
        return tuple(r for f in files for r in _file(f, str(f.relative_to(source)) if source.is_dir() else f.name))
    try:
        import datasets

        rows = datasets.load_dataset(path, split=split)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file, folder or dataset to import") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot load it as a dataset ({str(exc).splitlines()[0]})") from None
    return tuple(Record(f"row {i}", row) for i, row in enumerate(rows))


def _stamp(path: str) -> tuple:
    """What changes when a local source changes (size and mtime of every file), to key the cache."""
    source = Path(path)
    if not source.exists():
        return ()
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files_of(source))


def records(spec: dict) -> tuple[Record, ...]:
    """The records of an `import` config section (cached per process: every shard reads the same source)."""
    found = _read(spec["path"], spec["split"], _stamp(spec["path"]))
    return found[: spec["limit"]] if spec.get("limit") else found


@lru_cache(maxsize=8)
def _fingerprint(path: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(Path(name).name.encode() + b"\0")
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def fingerprint(spec: dict) -> str:
    """The content hash of a local source (files' bytes), or, for a dataset name, the name itself: the sample
    stage hash covers it, so changed input re-runs the import and everything after it."""
    path = spec.get("path", "")
    if not os.path.exists(path):
        return f"dataset:{path}"
    return _fingerprint(path, _stamp(path))
