"""Curate's first pass: read only the columns curate decides on, one verified shard at a time, into a catalog
(one small entry per row: where it lives, its bucket fields, score, filter verdict, exact-duplicate key) plus
MinHash signatures for near-duplicate search and the statistics the card reports. JSON columns are never
decoded: steps, checks and judgments are read as Arrow leaf columns and worked on with pyarrow.compute/numpy.
"""

import array
import itertools
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import rensa

from pipeline.curate import decontam, textsig
from pipeline.errors import UserError

# A row's fate: 0 = kept, i = REASONS[i - 1]. The funnel in the report counts rows per reason.
REASONS = ("not passed", "score below min", "failed required check", "steps out of range", "length out of range",
           "pass rate band", "contaminated", "exact duplicate", "near duplicate", "domain cap", "not selected by mix")
CODE = {reason: i + 1 for i, reason in enumerate(REASONS)}

SCALARS = ["id", "task_id", "domain", "source", "format", "difficulty", "instruction", "final_answer", "passed", "score", "meta"]
LEAVES = ["steps.list.element.action_type", "steps.list.element.thought", "steps.list.element.tool_name",
          "steps.list.element.tool_arguments", "checks.list.element.name", "checks.list.element.passed",
          "judgments.list.element.judge", "judgments.list.element.passed", "usage.prompt_tokens",
          "usage.completion_tokens", "usage.cost_usd", "teacher.model", "teacher.prompt_id"]
CATALOG_STRINGS = ("id", "task_id", "domain", "source", "format", "teacher_model", "prompt_id", "pass_rate_band")
MINHASH_SEED = 1
# verify writes meta.pass_rate = {passed, rate, samples}; meta is canonical JSON (sorted keys, no spaces), so the
# rate is read with one vectorized regex instead of decoding every row's meta.
PASS_RATE = r'"pass_rate":\{"passed":\d+,"rate":(?P<rate>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)'
BANDS = ("too_hard", "learnable", "too_easy", "unknown")
RATE_BINS = ("0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "1")


@dataclass
class Stats:
    """Aggregates over every verified row (not only the kept ones) for the card."""

    verified: int = 0
    passed: int = 0
    sources: Counter = field(default_factory=Counter)  # rows per source (program, llm:<model>, ...)
    sources_passed: Counter = field(default_factory=Counter)
    checks: Counter = field(default_factory=Counter)
    checks_passed: Counter = field(default_factory=Counter)
    judges: Counter = field(default_factory=Counter)
    judges_passed: Counter = field(default_factory=Counter)
    judged_rows: int = 0
    agreeing_rows: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    task_bands: Counter = field(default_factory=Counter)  # tasks per pass-rate band
    task_rate_bins: Counter = field(default_factory=Counter)  # tasks per pass-rate bin (tasks with a rate)

    def add(self, other: "Stats") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class ShardScan:
    """What one verified shard contributes: its catalog columns, stats, contaminated rows and signatures."""

    part: dict
    stats: Stats
    contaminated: list[dict]
    signed_rows: np.ndarray
    signatures: np.ndarray | None


@dataclass
class Scan:
    catalog: pa.Table
    signatures: np.ndarray | None  # (rows, num_perm) uint32; a row without shingles has has_signature False
    stats: Stats
    contaminated: list[dict]
    input_bytes: int
    input_uncompressed_bytes: int


def read_columns(path: Path, names: list[str]) -> pa.Table:
    """Selected top-level columns and nested leaves (e.g. steps.list.element.thought) of a Parquet file: a list
    of structs comes back holding only the chosen fields, so unneeded text is never decompressed."""
    try:
        parquet = pq.ParquetFile(path)
        paths = [parquet.schema.column(i).path for i in range(parquet.metadata.num_columns)]
        missing = [name for name in names if name not in paths]
        if missing:
            raise UserError(f"{path}: not a trajectory shard: no column {missing[0]}")
        return parquet.reader.read_all(column_indices=[paths.index(name) for name in names])
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None


def _per_row(values: np.ndarray, parents: np.ndarray, rows: int) -> np.ndarray:
    return np.bincount(parents, weights=values, minlength=rows)


def _list_parts(table: pa.Table, column: str) -> tuple[pa.StructArray, np.ndarray]:
    """(flattened struct values, parent row of each) of a list<struct> column."""
    lists = table.column(column).combine_chunks()
    return pc.list_flatten(lists), pc.list_parent_indices(lists).to_numpy()


def _bool(array) -> np.ndarray:
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)


def _counts(names: pa.Array, ok: np.ndarray) -> tuple[Counter, Counter]:
    """Rows and passes per name."""
    if len(names) == 0:
        return Counter(), Counter()
    grouped = pa.table({"name": names, "ok": pa.array(ok)}).group_by("name").aggregate([("ok", "count"), ("ok", "sum")])
    named = grouped.column("name").to_pylist()
    return (Counter(dict(zip(named, grouped.column("ok_count").to_pylist()))),
            Counter(dict(zip(named, grouped.column("ok_sum").to_pylist()))))


def pass_rates(table: pa.Table) -> np.ndarray:
    """Each row's task pass rate (meta.pass_rate.rate), NaN where there is none."""
    meta = table.column("meta").combine_chunks()
    text = meta.storage if isinstance(meta, pa.ExtensionArray) else meta
    found = pc.struct_field(pc.extract_regex(pc.fill_null(text, ""), PASS_RATE), "rate")  # null where no match
    return pc.fill_null(pc.cast(found, pa.float64()), np.nan).to_numpy(zero_copy_only=False)


def rate_bands(rates: np.ndarray, bands: dict) -> np.ndarray:
    """too_hard: rate <= too_hard_max; too_easy: rate >= too_easy_min; learnable between; unknown: no rate."""
    known = ~np.isnan(rates)
    with np.errstate(invalid="ignore"):
        hard, easy = known & (rates <= bands["too_hard_max"]), known & (rates >= bands["too_easy_min"])
    return np.select([~known, hard, easy], ["unknown", "too_hard", "too_easy"], "learnable")


def rate_bins(rates: np.ndarray) -> np.ndarray:
    """RATE_BINS labels of known rates."""
    index = np.where(rates <= 0, 0, np.where(rates >= 1, 5, np.ceil(rates * 4).astype(int)))
    return np.array(RATE_BINS)[index]


def task_counts(task_ids: pa.ChunkedArray, rates: np.ndarray, band: np.ndarray) -> tuple[Counter, Counter]:
    """(tasks per band, tasks per rate bin): a task's rows all carry its rate, so its first row stands for it."""
    _, first = np.unique(np.asarray(task_ids.to_pylist(), dtype=object), return_index=True)
    known = first[~np.isnan(rates[first])]
    return Counter(band[first].tolist()), Counter(rate_bins(rates[known]).tolist())


def shard_stats(table: pa.Table, passed: np.ndarray) -> Stats:
    stats = Stats(verified=table.num_rows, passed=int(passed.sum()))
    stats.sources, stats.sources_passed = _counts(table.column("source"), passed)
    checks, _ = _list_parts(table, "checks")
    stats.checks, stats.checks_passed = _counts(checks.field("name"), _bool(checks.field("passed")))
    judgments, parents = _list_parts(table, "judgments")
    verdicts = judgments.field("passed")
    decided = pc.is_valid(verdicts).to_numpy(zero_copy_only=False)
    stats.judges, stats.judges_passed = _counts(judgments.field("judge").filter(pa.array(decided)), _bool(verdicts)[decided])
    votes = _per_row(decided.astype(float), parents, table.num_rows)
    yes = _per_row((_bool(verdicts) & decided).astype(float), parents, table.num_rows)
    judged = votes >= 2
    stats.judged_rows = int(judged.sum())
    stats.agreeing_rows = int((judged & ((yes == 0) | (yes == votes))).sum())
    usage = table.column("usage").combine_chunks()
    stats.prompt_tokens = int(pc.sum(usage.field("prompt_tokens")).as_py() or 0)
    stats.completion_tokens = int(pc.sum(usage.field("completion_tokens")).as_py() or 0)
    stats.cost_usd = float(pc.sum(usage.field("cost_usd")).as_py() or 0.0)
    return stats


def _filter_reasons(table: pa.Table, section: dict, steps_lengths: np.ndarray, chars: np.ndarray | None, band: np.ndarray) -> np.ndarray:
    """The first filter each row fails (a REASONS code), 0 where it passes them all."""
    filters = section["filters"]
    reason = np.zeros(table.num_rows, dtype=np.int8)

    def fail(mask, name):
        reason[(reason == 0) & mask] = CODE[name]

    if section["require_passed"]:
        fail(~_bool(table.column("passed")), "not passed")
    if filters["min_score"] is not None:
        score = pc.fill_null(table.column("score"), -np.inf).to_numpy()
        fail(score < filters["min_score"], "score below min")
    required = filters["required_checks"]
    if required:
        checks, parents = _list_parts(table, "checks")
        wanted = pc.is_in(checks.field("name"), pa.array(required)).to_numpy(zero_copy_only=False)
        good = wanted & _bool(checks.field("passed"))
        fail(_per_row(good.astype(float), parents, table.num_rows) < len(set(required)), "failed required check")
    low, high = filters["min_steps"], filters["max_steps"]
    if low is not None or high is not None:
        fail((steps_lengths < (low or 0)) | (steps_lengths > (high if high is not None else np.inf)), "steps out of range")
    if chars is not None:
        low, high = filters["min_chars"], filters["max_chars"]
        fail((chars < (low or 0)) | (chars > (high if high is not None else np.inf)), "length out of range")
    if filters["pass_rate_bands"]:
        fail(~np.isin(band, filters["pass_rate_bands"]), "pass rate band")
    return reason


def _message_chars(path: Path, rows: int) -> np.ndarray:
    messages = read_columns(path, ["messages.list.element"]).column("messages").combine_chunks()
    flat = pc.list_flatten(messages)
    lengths = pc.binary_length(flat.storage if isinstance(flat, pa.ExtensionArray) else flat)
    return _per_row(pc.fill_null(lengths, 0).to_numpy().astype(float), pc.list_parent_indices(messages).to_numpy(), rows)


def _per_step_to_rows(tokens: textsig.Tokens, step_offsets: np.ndarray) -> textsig.Tokens:
    """Tokens of each step -> tokens of each row (a row's steps are consecutive)."""
    return textsig.Tokens(tokens.hashes, tokens.offsets[step_offsets])


def fingerprints(table: pa.Table, near: dict | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(exact keys, MinHash signatures or None, whether each row has a signature). Each text field is tokenized
    once: the exact key is format + normalized instruction (lowercase, whitespace collapsed) + actions (tool
    name and arguments, exact) + normalized final answer; the near-duplicate text is instruction, thoughts,
    actions and final answer, shingled by words."""
    steps = table.column("steps").combine_chunks()
    step_offsets = textsig.list_offsets(steps)
    flat = pc.list_flatten(steps)
    is_action = pc.not_equal(pc.fill_null(flat.field("action_type"), ""), "final_answer")
    actions = pc.if_else(is_action, pc.binary_join_element_wise(
        pc.fill_null(flat.field("tool_name"), ""), pc.fill_null(flat.field("tool_arguments"), ""), " "), "")
    action_hashes = textsig.hash_strings(actions)
    keep = is_action.to_numpy(zero_copy_only=False)
    step_rows = np.repeat(np.arange(table.num_rows), np.diff(step_offsets))
    per_row = np.concatenate([[0], np.cumsum(np.bincount(step_rows[keep], minlength=table.num_rows))])
    instruction = textsig.tokenize(table.column("instruction"))
    final = textsig.tokenize(table.column("final_answer"))
    keys = textsig.combine(textsig.hash_strings(table.column("format")), textsig.sequence_hashes(instruction),
                           textsig.sequence_hashes(textsig.Tokens(action_hashes[keep], per_row.astype(np.int64))),
                           textsig.sequence_hashes(final))
    if near is None:
        return keys, None, np.zeros(table.num_rows, dtype=bool)
    thoughts = _per_step_to_rows(textsig.tokenize(flat.field("thought")), step_offsets)
    action_words = _per_step_to_rows(textsig.tokenize(actions), step_offsets)
    words = textsig.concat_rows(instruction, thoughts, action_words, final)
    shingled = textsig.shingles(words, near["shingle_words"])
    return keys, minhash(shingled, near["num_perm"]), shingled.lengths > 0


def minhash(shingled: textsig.Tokens, num_perm: int) -> np.ndarray:
    """(rows, num_perm) uint32 R-MinHash signatures of each row's shingle hashes, computed by rensa in one call."""
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        shingled.hashes, shingled.offsets.astype(np.uint64), num_perm, MINHASH_SEED)
    # rensa hands the matrix over as Python lists: the one per-row cost left at the Python boundary
    flat = np.frombuffer(array.array("I", itertools.chain.from_iterable(matrix.to_rows())), dtype=np.uint32)
    return flat.reshape(len(shingled.offsets) - 1, num_perm)


def scan_shard(job: tuple[Path, int, dict, list]) -> ShardScan:
    """One verified shard -> its catalog part (a dict of columns), stats and the signatures of its candidates."""
    path, shard, section, references = job
    table = read_columns(path, SCALARS + LEAVES)
    n = table.num_rows
    passed = _bool(table.column("passed"))
    stats, contaminated = shard_stats(table, passed), []
    steps_lengths = pc.fill_null(pc.list_value_length(table.column("steps")), 0).to_numpy(zero_copy_only=False)
    filters = section["filters"]
    chars = _message_chars(path, n) if filters["min_chars"] is not None or filters["max_chars"] is not None else None
    rates = pass_rates(table)
    band = rate_bands(rates, section["pass_rate_bands"])
    stats.task_bands, stats.task_rate_bins = task_counts(table.column("task_id"), rates, band)
    reason = _filter_reasons(table, section, steps_lengths, chars, band)
    candidates = np.flatnonzero(reason == 0)
    sub = table.take(candidates)
    decon = section["decontam"]
    if references and len(candidates):
        fields = [sub.column(name) for name in decon["fields"]]
        text = fields[0] if len(fields) == 1 else pc.binary_join_element_wise(*[pc.fill_null(f, "") for f in fields], " ")
        hit = decontam.contaminated_by(text.combine_chunks(), references, decon["ngram"])
        for i in np.flatnonzero(hit >= 0):
            row = sub.slice(int(i), 1).to_pylist()[0]
            contaminated.append({"id": row["id"], "task_id": row["task_id"], "reference": references[hit[i]].name,
                                 "instruction": row["instruction"][:200]})
        reason[candidates[hit >= 0]] = CODE["contaminated"]
    keys = np.zeros(n, dtype=np.uint64)
    has_signature = np.zeros(n, dtype=bool)
    sigs = None
    if len(candidates):
        keys[candidates], sigs, has = fingerprints(sub, section["dedup_near"] if section["dedup_near"]["enabled"] else None)
        if sigs is not None:
            has_signature[candidates] = has
    usage, teacher = table.column("usage").combine_chunks(), table.column("teacher").combine_chunks()
    part = {
        "shard": np.full(n, shard, dtype=np.int32), "row": np.arange(n, dtype=np.int32),
        **{name: table.column(name) for name in ("id", "task_id", "domain", "source", "format")},
        "difficulty": pc.fill_null(table.column("difficulty"), 0).to_numpy(), "passed": passed,
        "score": pc.fill_null(table.column("score"), np.nan).to_numpy(), "steps": steps_lengths.astype(np.int32),
        "chars": chars.astype(np.int64) if chars is not None else np.full(n, -1, dtype=np.int64),
        "prompt_tokens": pc.fill_null(usage.field("prompt_tokens"), 0).to_numpy(),
        "completion_tokens": pc.fill_null(usage.field("completion_tokens"), 0).to_numpy(),
        "cost_usd": pc.fill_null(usage.field("cost_usd"), 0.0).to_numpy(),
        "teacher_model": teacher.field("model"), "prompt_id": teacher.field("prompt_id"),
        "pass_rate": rates, "pass_rate_band": pa.array(band, pa.string()),
        "reason": reason, "exact_key": keys, "has_signature": has_signature,
    }
    return ShardScan(part, stats, contaminated, candidates, sigs)


def scan(paths: list[Path], section: dict, references: list, progress) -> Scan:
    """Every verified shard in order -> one catalog (row i of shard k at a fixed position) and signatures.
    Shards are scanned by `curate.workers` processes (results are put together in shard order)."""
    total = sum(pq.read_metadata(p).num_rows for p in paths)
    near = section["dedup_near"]
    # np.zeros maps untouched pages lazily, so rows never signed cost no memory.
    sigs = np.zeros((total, near["num_perm"]), dtype=np.uint32) if near["enabled"] else None
    stats, contaminated, parts, start = Stats(), [], [], 0
    jobs = [(path, k, section, references) for k, path in enumerate(paths)]
    workers = min(section["workers"], len(jobs))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else nullcontext() as pool:
        for result in (pool.map(scan_shard, jobs) if pool else map(scan_shard, jobs)):
            if result.signatures is not None:
                sigs[start + result.signed_rows] = result.signatures
            stats.add(result.stats)
            contaminated += result.contaminated
            parts.append(result.part)
            start += len(result.part["row"])
            progress(len(result.part["row"]))
    columns = {}
    for name in parts[0] if parts else []:
        values = [p[name] for p in parts]
        if name in CATALOG_STRINGS:
            chunks = [c for v in values for c in (v.chunks if isinstance(v, pa.ChunkedArray) else [v])]
            columns[name] = pa.chunked_array(chunks, pa.string()).combine_chunks()
        else:
            columns[name] = pa.array(np.concatenate(values))
    metas = [pq.read_metadata(p) for p in paths]
    return Scan(pa.table(columns), sigs, stats, contaminated, sum(p.stat().st_size for p in paths),
                sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups)))
