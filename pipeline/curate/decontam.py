"""Decontamination: drop rows that share a word n-gram (default 13) with a benchmark test set.

A reference is a Parquet or JSON-lines file (or a folder of them) with benchmark text in some columns, or a ready
reference built from an installed package's data files (REFERENCE_PACKAGES). Both sides are normalized the same
way: lowercased, non-word characters replaced by spaces, split into words. A text shorter than n words counts as
one n-gram of all its words, so a short benchmark question repeated verbatim is still caught.
"""

import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import shards
from pipeline.curate import textsig
from pipeline.errors import UserError
from pipeline.jsonutil import content_hash

DEFAULT_FIELDS = ("question", "prompt", "instruction", "input", "text", "problem", "query")
SUFFIXES = (".parquet", ".jsonl", ".json")


@dataclass
class Reference:
    name: str
    ngrams: np.ndarray  # sorted unique n-gram hashes
    texts: int


def _strings(value, out: list[str]) -> None:
    """Every string inside a JSON value, except message roles (chat-formatted benchmarks keep text in 'content')."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "role":
                _strings(item, out)


def _json_lines(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    return rows


def texts_from_file(path: Path, fields: list[str] | None) -> list[str]:
    """Benchmark texts of one file: the strings under `fields` (or the first default field names present)."""
    try:
        rows = pq.read_table(path).to_pylist() if path.suffix == ".parquet" else _json_lines(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: cannot read reference file ({exc})") from None
    present = {key for row in rows[:100] if isinstance(row, dict) for key in row}
    chosen = fields or [f for f in DEFAULT_FIELDS if f in present]
    missing = [f for f in chosen if f not in present]
    if not chosen or missing:
        wanted = ", ".join(missing or DEFAULT_FIELDS)
        raise UserError(f"{path}: no column {wanted} (set fields: [...] on this reference; columns: {', '.join(sorted(present)) or 'none'})")
    out: list[str] = []
    for row in rows:
        for field in chosen:
            _strings(row.get(field), out)
    return out


def bfcl_texts() -> list[str]:
    """User turns of the Berkeley Function Calling Leaderboard test sets shipped in the bfcl-eval package."""
    spec = importlib.util.find_spec("bfcl_eval")  # locates the package without importing its heavy dependencies
    if spec is None or not spec.submodule_search_locations:
        raise UserError("decontam reference package 'bfcl' needs bfcl-eval: pip install 'trajforge[bfcl]' "
                        "(or pip install --no-deps bfcl-eval: only its data files are read)")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    out: list[str] = []
    for path in sorted(data.glob("BFCL_*.json")):
        with open(path, encoding="utf-8") as handle:
            if '"question"' not in handle.readline():
                continue  # not a test set (e.g. the format-sensitivity index)
        for row in _json_lines(path):
            _strings(row.get("question"), out)
    if not out:
        raise UserError(f"{data}: found no BFCL test questions in the installed bfcl-eval package")
    return out


REFERENCE_PACKAGES = {"bfcl": bfcl_texts}
REFERENCE_DISTRIBUTIONS = {"bfcl": "bfcl-eval"}


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        if not found:
            raise UserError(f"{path}: no {', '.join(SUFFIXES)} files in this reference folder")
        return found
    if not path.exists():
        raise UserError(f"{path}: decontamination reference file does not exist")
    if path.suffix not in SUFFIXES:
        raise UserError(f"{path}: a reference must be {', '.join(SUFFIXES)} (JSON lines) or a folder of them")
    return [path]


def reference_texts(spec: dict, where: str, base: Path) -> list[str]:
    if "package" in spec:
        if spec["package"] not in REFERENCE_PACKAGES:
            raise UserError(f"{where}.package: unknown reference package {spec['package']!r} (known: {', '.join(REFERENCE_PACKAGES)})")
        return REFERENCE_PACKAGES[spec["package"]]()
    path = Path(spec["path"])
    path = path if path.is_absolute() else base / path
    texts = []
    for file in _files(path):
        texts.extend(texts_from_file(file, spec.get("fields")))
    return texts


def fingerprint(section: dict, base: Path) -> str | None:
    """What the references contain (each file's sha256, an installed package's version), so that a changed
    benchmark file re-runs curate although the config is the same; None without references."""
    if not section["references"]:
        return None
    parts = []
    for spec in section["references"]:
        if "package" in spec:
            parts.append([spec["name"], spec["package"], _package_version(spec["package"])])
            continue
        path = Path(spec["path"])
        path = path if path.is_absolute() else base / path
        parts.append([spec["name"], [[file.as_posix(), shards.sha256_file(file)] for file in _files(path)]])
    return content_hash(parts)


def _package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(REFERENCE_DISTRIBUTIONS[package])
    except (KeyError, importlib.metadata.PackageNotFoundError):
        return None


def ngram_tokens(texts: pa.Array, n: int) -> textsig.Tokens:
    return textsig.shingles(textsig.tokenize(texts, strip_punctuation=True), n)


def load_references(section: dict, base: Path) -> list[Reference]:
    """Every configured reference as a sorted array of n-gram hashes; a missing file fails before any work."""
    references = []
    for i, spec in enumerate(section["references"]):
        texts = reference_texts(spec, f"curate.decontam.references[{i}]", base)
        grams = ngram_tokens(pa.array(texts, pa.string()), section["ngram"]).hashes
        references.append(Reference(spec["name"], np.unique(grams), len(texts)))
    return references


def contaminated_by(texts: pa.Array, references: list[Reference], n: int) -> np.ndarray:
    """Per row: the index of the first reference it shares an n-gram with, or -1."""
    found = np.full(len(texts), -1, dtype=np.int16)
    if not references or len(texts) == 0:
        return found
    grams = ngram_tokens(texts, n)
    rows = grams.row_of_each()
    for index, reference in reversed(list(enumerate(references))):
        hit_rows = rows[np.isin(grams.hashes, reference.ngrams)]
        found[hit_rows] = index
    return found
