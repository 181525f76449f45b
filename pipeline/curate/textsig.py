"""Vectorized text fingerprints for curate: token hashes, word shingles and per-row sequence hashes.

Arrow splits text into tokens and dictionary-encodes them; each distinct string is hashed once, with numpy over
its UTF-8 bytes: fmix64(sum of byte_i * M_i), M_i fixed random odd multipliers by position, mixed with the length.
No Python object is made per token and hashes are the same on every run and machine, which is what lets curate
fingerprint a million trajectories in seconds.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

U64 = np.uint64
_GOLDEN = U64(0x9E3779B97F4A7C15)


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: spreads every input bit over the output (vectorized, wraps mod 2**64)."""
    h = h ^ (h >> U64(33))
    h = h * U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> U64(33))
    h = h * U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> U64(33))


@lru_cache(maxsize=8)
def _multipliers(size: int) -> np.ndarray:
    return fmix64((np.arange(1, size + 1, dtype=U64)) * _GOLDEN) | U64(1)


def multipliers(size: int) -> np.ndarray:
    """Position multipliers for at least `size` bytes (grown in powers of two, so cached tables are reused)."""
    return _multipliers(1 << max(int(size) - 1, 1).bit_length())


def string_bytes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets from 0) of a string column; nulls are empty strings."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.cast(pc.fill_null(values, ""), pa.large_string())
    if len(values) == 0:
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int64)[values.offset:values.offset + len(values) + 1]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return data[offsets[0]:offsets[-1]], offsets - offsets[0]


def hash_spans(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """One 64-bit hash per byte span [start, end) of data (spans must not overlap and must be in order)."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return fmix64(lengths.astype(U64) * _GOLDEN)
    byte_index = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
    position = byte_index - np.repeat(starts, lengths)
    weighted = (data[byte_index].astype(U64) + U64(1)) * multipliers(int(lengths.max()))[position]
    cumulative = np.concatenate([np.zeros(1, U64), np.cumsum(weighted, dtype=U64)])
    ends_in_flat = np.cumsum(lengths)
    sums = cumulative[ends_in_flat] - cumulative[ends_in_flat - lengths]
    return fmix64(sums ^ (lengths.astype(U64) * _GOLDEN))


def hash_strings(values: pa.Array) -> np.ndarray:
    """A stable 64-bit hash per string (a null hashes like the empty string); each distinct string is hashed once."""
    encoded = pc.dictionary_encode(pc.fill_null(values, ""))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    data, offsets = string_bytes(encoded.dictionary)
    return hash_spans(data, offsets[:-1], offsets[1:])[encoded.indices.to_numpy()]


@dataclass
class Tokens:
    """Token (or shingle) hashes of many rows, flat, with row boundaries: row r is hashes[offsets[r]:offsets[r+1]]."""

    hashes: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row_of_each(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), self.lengths)


def list_offsets(lists: pa.ListArray) -> np.ndarray:
    """A ListArray's offsets, rebased to start at 0 (slices keep their parent's offsets)."""
    offsets = lists.offsets.to_numpy().astype(np.int64)
    return offsets - offsets[0]


def tokenize(texts: pa.Array, strip_punctuation: bool = False) -> Tokens:
    """Lowercase, optionally turn non-word characters into spaces, split on whitespace, hash each token."""
    lowered = pc.utf8_lower(pc.fill_null(texts, ""))
    if strip_punctuation:
        lowered = pc.replace_substring_regex(lowered, r"[^\w]+", " ")
    lists = pc.utf8_split_whitespace(lowered)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    flat, offsets = pc.list_flatten(lists), list_offsets(lists)
    nonempty = pc.greater(pc.binary_length(flat), 0)
    if pc.all(nonempty).as_py() is False:  # "" and leading/trailing spaces split into empty tokens
        keep = nonempty.to_numpy(zero_copy_only=False)
        rows = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        flat = flat.filter(nonempty)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=len(offsets) - 1))]).astype(np.int64)
    return Tokens(hash_strings(flat), offsets)


def concat_rows(*parts: Tokens) -> Tokens:
    """Row r of the result is row r of each part, one after another (as if their texts were joined)."""
    lengths = sum(part.lengths for part in parts)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out = np.empty(offsets[-1], dtype=U64)
    before = offsets[:-1].copy()
    for part in parts:
        n = part.lengths
        out[np.repeat(before - part.offsets[:-1], n) + np.arange(len(part.hashes))] = part.hashes
        before += n
    return Tokens(out, offsets)


def _row_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of each row's values mod 2**64 (empty rows sum to 0)."""
    cumulative = np.concatenate([np.zeros(1, dtype=U64), np.cumsum(values, dtype=U64)])
    return cumulative[offsets[1:]] - cumulative[offsets[:-1]]


def _salt(j: int) -> np.uint64:
    return fmix64(np.array([j + 1], dtype=U64) * _GOLDEN)[0]


def shingles(tokens: Tokens, k: int) -> Tokens:
    """Hashes of every k consecutive tokens of a row (order-sensitive). A row with fewer than k tokens (but at
    least one) gives one shingle of all its tokens, so short texts still match short texts."""
    h, offsets = tokens.hashes, tokens.offsets
    lengths = tokens.lengths
    if k <= 1:
        return tokens
    n = len(h)
    windows = np.zeros(max(n - k + 1, 0), dtype=U64)
    for j in range(k if n >= k else 0):  # fewer tokens than k in all: no window (and a negative slice end would wrap)
        windows += fmix64(h[j:n - k + 1 + j] ^ _salt(j))
    rows = tokens.row_of_each()[: len(windows)]
    position = np.arange(len(windows)) - offsets[:-1][rows]
    valid = position <= lengths[rows] - k
    short = (lengths > 0) & (lengths < k)
    per_row = np.where(short, 1, np.maximum(lengths - k + 1, 0))
    out_offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
    out = np.empty(out_offsets[-1], dtype=U64)
    short_slot = np.zeros(len(out), dtype=bool)
    short_slot[out_offsets[:-1][short]] = True
    out[~short_slot] = fmix64(windows[valid])
    if short.any():
        mixed = fmix64(h ^ _salt_by_position(tokens))
        out[short_slot] = fmix64(_row_sums(mixed, offsets)[short])
    return Tokens(out, out_offsets)


def _salt_by_position(tokens: Tokens) -> np.ndarray:
    position = np.arange(len(tokens.hashes)) - tokens.offsets[:-1][tokens.row_of_each()]
    return fmix64((position.astype(U64) + U64(1)) * _GOLDEN)


def sequence_hashes(tokens: Tokens) -> np.ndarray:
    """One order-sensitive 64-bit hash per row of its whole token sequence (equal sequences, equal hashes)."""
    mixed = fmix64(tokens.hashes ^ _salt_by_position(tokens))
    return fmix64(_row_sums(mixed, tokens.offsets) + tokens.lengths.astype(U64) * _GOLDEN)


def combine(*columns: np.ndarray) -> np.ndarray:
    """An order-sensitive hash of several per-row hash columns."""
    out = np.zeros(len(columns[0]), dtype=U64)
    for j, column in enumerate(columns):
        out = fmix64(out ^ fmix64(column.astype(U64) ^ _salt(j)))
    return out
