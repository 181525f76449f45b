"""Curate's building blocks on small inputs: fingerprints, dedup choices, mix quotas."""

import numpy as np
import pyarrow as pa
import pytest

from pipeline.curate import dedup, mix, scan, textsig
from pipeline.errors import UserError

BASE = ("the agent reads the table of orders then sums the totals per customer and reports the largest total "
        "found in march together with the customer name and the number of orders placed that month")


def test_tokens_ignore_case_and_whitespace_but_not_punctuation():
    tokens = textsig.tokenize(pa.array(["Sum  the\tTOTALS", "sum the totals", "sum the totals!", "", None]))
    hashes = textsig.sequence_hashes(tokens)
    assert hashes[0] == hashes[1] != hashes[2]
    assert list(tokens.lengths) == [3, 3, 3, 0, 0] and hashes[3] == hashes[4]


def test_short_texts_make_one_shingle_and_match_only_themselves():
    shingled = textsig.shingles(textsig.tokenize(pa.array(["a b", "a b", "a b c d"])), 3)
    assert list(shingled.lengths) == [1, 1, 2]
    assert shingled.hashes[0] == shingled.hashes[1] and shingled.hashes[0] not in shingled.hashes[2:]


def test_texts_all_shorter_than_k_make_one_shingle_each():
    """Fewer tokens than k in the whole batch (one short benchmark question): no window at all, no crash."""
    shingled = textsig.shingles(textsig.tokenize(pa.array(["what is the area of a circle of radius 3"])), 13)
    assert list(shingled.lengths) == [1]
    alone = textsig.shingles(textsig.tokenize(pa.array(["what is the area of a circle of radius 3", "x y"])), 13)
    assert alone.hashes[0] == shingled.hashes[0]


def test_hashes_are_stable_across_runs():
    assert int(textsig.hash_strings(pa.array(["react"]))[0]) == int(textsig.hash_strings(pa.array(["x", "react"]))[1])
    assert textsig.hash_strings(pa.array(["abc"]))[0] != textsig.hash_strings(pa.array(["acb"]))[0]


def signatures(texts: list[str]) -> np.ndarray:
    return scan.minhash(textsig.shingles(textsig.tokenize(pa.array(texts)), 3), 128)


@pytest.mark.parametrize("scores, removed", [([1.0, 0.5, 1.0], [1]), ([0.5, 1.0, 1.0], [0])])
def test_near_duplicates_keep_the_best_scoring_member(scores, removed):
    texts = [BASE, BASE + " again", "a completely different trajectory about converting dates between calendars and time zones"]
    sigs = signatures(texts)
    catalog = pa.table({"score": scores, "id": ["a", "b", "c"]})
    rank = dedup.rank_rows(catalog)
    formats = np.zeros(3, dtype=np.uint64)
    assert sorted(dedup.near_duplicates(np.arange(3), sigs, formats, rank, 0.8)) == removed


def test_rows_of_different_formats_are_never_near_duplicates():
    sigs = signatures([BASE, BASE])
    rank = dedup.rank_rows(pa.table({"score": [1.0, 0.5], "id": ["a", "b"]}))
    assert len(dedup.near_duplicates(np.arange(2), sigs, np.array([1, 2], dtype=np.uint64), rank, 0.8)) == 0
    assert list(dedup.near_duplicates(np.arange(2), sigs, np.array([1, 1], dtype=np.uint64), rank, 0.8)) == [1]


def test_exact_duplicates_keep_the_best_ranked_and_ties_go_to_the_smaller_id():
    rank = dedup.rank_rows(pa.table({"score": [0.5, 1.0, 1.0, None], "id": ["d", "c", "b", "a"]}))
    keys = np.array([7, 7, 7, 7], dtype=np.uint64)
    assert sorted(dedup.exact_duplicates(np.arange(4), keys, rank)) == [0, 1, 3]


def test_quotas_add_up_and_fill_a_short_bucket_from_the_others():
    assert mix.quotas({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, {"a": 50, "b": 50, "c": 50}, 10, "fill") == {"a": 4, "b": 3, "c": 3}
    assert mix.quotas({"a": 0.5, "b": 0.5}, {"a": 2, "b": 100}, 10, "fill") == {"a": 2, "b": 8}
    assert mix.quotas({"a": 0.5, "b": 0.25, "c": 0.25}, {"a": 10, "b": 1, "c": 100}, None, "fill") == {"a": 2, "b": 1, "c": 1}


def test_short_bucket_fails_naming_it():
    with pytest.raises(UserError, match="a has 2 row\\(s\\), needs 5"):
        mix.quotas({"a": 0.5, "b": 0.5}, {"a": 2, "b": 100}, 10, "fail")


def test_lsh_bands_favour_recall_near_the_threshold():
    bands, rows = dedup.lsh_bands(0.85, 128)
    assert bands * rows <= 128 and 1 - (1 - 0.9 ** rows) ** bands > 0.95
