"""Exact and near-duplicate removal over the scan catalog; in both, the best-scoring member of a group stays.

`rank` orders rows best first (score descending, id ascending). Exact duplicates share an exact key (format,
normalized instruction, actions, normalized final answer). Near duplicates: rows of one format whose MinHash
signatures agree on a whole LSH band are candidates; a candidate pair counts when its estimated Jaccard
similarity reaches the threshold; groups are the connected components of those pairs.
"""

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.curate import textsig


def rank_rows(catalog: pa.Table) -> np.ndarray:
    """Position of each row in best-first order (score descending, then id ascending)."""
    score = pc.fill_null(catalog.column("score"), -np.inf)
    score = pc.if_else(pc.is_nan(score), -np.inf, score)
    order = pc.sort_indices(pa.table({"score": score, "id": catalog.column("id")}),
                            sort_keys=[("score", "descending"), ("id", "ascending")]).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def best_first(rows: np.ndarray, rank: np.ndarray) -> np.ndarray:
    return rows[np.argsort(rank[rows], kind="stable")]


def exact_duplicates(candidates: np.ndarray, keys: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Rows (among candidates) whose exact key a better-ranked candidate already has."""
    ordered = best_first(candidates, rank)
    _, first = np.unique(keys[ordered], return_index=True)
    keep = np.zeros(len(ordered), dtype=bool)
    keep[first] = True
    return ordered[~keep]


def _false_positive(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(0, threshold, 200)
    return float(np.trapezoid(1 - (1 - s ** rows) ** bands, s))


def _false_negative(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(threshold, 1, 200)
    return float(np.trapezoid(1 - (1 - (1 - s ** rows) ** bands), s))


# Candidates are checked against the threshold afterwards, so a false positive costs only a comparison while a
# false negative is a duplicate kept: the band choice weighs misses 9 to 1.
FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


@lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimizing the weighted false positive and negative probability mass around the
    threshold (the parameter choice of datasketch's MinHashLSH, with weights)."""
    best, choice = float("inf"), (1, num_perm)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            error = (FALSE_POSITIVE_WEIGHT * _false_positive(threshold, bands, rows)
                     + FALSE_NEGATIVE_WEIGHT * _false_negative(threshold, bands, rows))
            if error < best:
                best, choice = error, (bands, rows)
    return choice


def _band_keys(columns: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """One 64-bit key per row for a band's signature values (and the row's group, here its format)."""
    multipliers = textsig.multipliers(columns.shape[1] + 1)
    key = groups * multipliers[0]
    for j in range(columns.shape[1]):
        key = key + columns[:, j].astype(np.uint64) * multipliers[j + 1]
    return textsig.fmix64(key)


def _candidate_pairs(ordered: np.ndarray, signatures: np.ndarray, groups: np.ndarray, bands: int, rows: int):
    """(member, head) position pairs: rows sharing a band value with a better-ranked row (the group's head)."""
    found = []
    for band in range(bands):
        key = _band_keys(signatures[ordered, band * rows:(band + 1) * rows], groups)
        order = np.argsort(key, kind="stable")  # stable: within a band value, best-ranked first
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        head_of = np.repeat(order[starts], np.diff(np.r_[starts, len(order)]))
        is_member = head_of != order
        found.append(order[is_member].astype(np.int64) * len(ordered) + head_of[is_member])
    pairs = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    return pairs // len(ordered), pairs % len(ordered)


def _similar(signatures: np.ndarray, a: np.ndarray, b: np.ndarray, threshold: float, chunk: int = 65536) -> np.ndarray:
    out = np.zeros(len(a), dtype=bool)
    for start in range(0, len(a), chunk):
        sa, sb = signatures[a[start:start + chunk]], signatures[b[start:start + chunk]]
        out[start:start + chunk] = (sa == sb).mean(axis=1) >= threshold
    return out


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest position in each position's connected component (label propagation with pointer jumping)."""
    labels = np.arange(n)
    while True:
        low = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        labels = labels[labels]
        if np.array_equal(labels, before):
            return labels


def near_duplicates(candidates: np.ndarray, signatures: np.ndarray, formats: np.ndarray, rank: np.ndarray,
                    threshold: float) -> np.ndarray:
    """Rows (among candidates) in a near-duplicate group whose best-ranked member is another row."""
    if len(candidates) < 2:
        return np.zeros(0, dtype=np.int64)
    ordered = best_first(candidates, rank)
    bands, rows = lsh_bands(threshold, signatures.shape[1])
    member, head = _candidate_pairs(ordered, signatures, formats[ordered], bands, rows)
    keep = _similar(signatures, ordered[member], ordered[head], threshold)
    labels = _components(len(ordered), member[keep], head[keep])
    return ordered[labels != np.arange(len(ordered))]
