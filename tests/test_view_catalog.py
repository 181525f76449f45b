"""The viewer's query layer on a real run: every filter and every count against a plain reading of the shards
(rows as Python dicts, predicates written out), paging, whole-row reads and rebuilding when a shard changes."""

import re
import shutil
from collections import Counter
from urllib.parse import parse_qsl

import pyarrow as pa
import pytest

from pipeline import facets, rundir, shards
from pipeline.view.catalog import FACETS, Catalog, Catalogs, Filters
from tests import view_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return view_run.build(tmp_path_factory.mktemp("view"))


def rows_of(run_dir, stage: str) -> list[dict]:
    return [r for p in rundir.stage_files(run_dir, stage) for r in shards.read_shard(p, "trajectory", validate=False)]


def error_kinds(row: dict) -> set[str]:
    kinds = set()
    if row["error"]:
        bare = re.sub(r"^step \d+: ", "", row["error"])
        llm = re.match(r"LLM request failed: \w+", bare)
        kinds.add(llm.group(0) if llm else re.split(r"[:=(]", bare)[0].rstrip())
    if any(s["error"] and s["tool_name"] for s in row["steps"]):
        kinds.add(facets.TOOL_ERROR)
    return kinds


def verdict(row: dict) -> str:
    committee = next((c for c in row["checks"] or [] if c["name"] == "committee"), None)
    if committee is None:
        return "not judged"
    return "no quorum" if (committee["detail"] or "").startswith("no quorum") else ("pass" if committee["passed"] else "fail")


def kind(row: dict) -> str:
    return "reflection" if "reflection" in row["meta"] else "feedback" if "feedback_round" in row["meta"] else "sampled"


# each filter written out over a Python row: the values it takes, and whether a row has a given value
PLAIN = {
    "source": lambda r: {r["source"]},
    "domain": lambda r: {r["domain"]},
    "format": lambda r: {r["format"]},
    "outcome": lambda r: {"not verified" if r["passed"] is None else "passed" if r["passed"] else "failed"},
    "check": lambda r: {c["name"] for c in r["checks"] or [] if not c["passed"]},
    "error": error_kinds,
    "verdict": lambda r: {verdict(r)},
    "kind": lambda r: {kind(r)},
    "split": lambda r: {r["split"]} - {None},
}


def plain_counts(rows: list[dict], facet: str) -> Counter:
    return Counter(value for row in rows for value in PLAIN[facet](row))


def test_each_filter_value_selects_the_rows_a_plain_reading_selects(run_dir):
    rows = rows_of(run_dir, "verify")
    catalog = Catalogs(run_dir).get("verify")
    checked = 0
    for facet in FACETS:
        for value, n in plain_counts(rows, facet).items():
            page = catalog.select(Filters(**{facet: value}), page_size=1000)
            assert page.total == n, (facet, value)
            assert [r["id"] for r in page.rows] == [r["id"] for r in rows if value in PLAIN[facet](r)]
            checked += 1
    assert checked >= 15  # the run has failures of several checks, errors of two kinds, reflections, verdicts


def test_the_run_has_what_the_filters_are_for(run_dir):
    counts = {facet: plain_counts(rows_of(run_dir, "verify"), facet) for facet in PLAIN}
    assert {"passed", "failed"} <= set(counts["outcome"]) and {"limits", "answer", "committee"} <= set(counts["check"])
    assert {"no final answer within max_steps", facets.TOOL_ERROR} <= set(counts["error"])
    assert {"pass", "fail"} <= set(counts["verdict"]) and {"sampled", "reflection"} <= set(counts["kind"])
    assert {"program", "llm:teacher"} <= set(counts["source"])


def test_counts_per_value_are_taken_under_the_other_filters(run_dir):
    rows = rows_of(run_dir, "verify")
    failed = [r for r in rows if r["passed"] is False]
    page = Catalogs(run_dir).get("verify").select(Filters(outcome="failed", domain="arithmetic"))
    arithmetic_failed = [r for r in failed if r["domain"] == "arithmetic"]
    assert dict(page.facets["check"]) == plain_counts(arithmetic_failed, "check")
    assert dict(page.facets["domain"]) == plain_counts(failed, "domain")  # its own filter left out: every domain shows
    assert dict(page.facets["outcome"]) == plain_counts([r for r in rows if r["domain"] == "arithmetic"], "outcome")
    assert page.total == len(arithmetic_failed)


def test_text_search_ignores_case_and_combines_with_filters(run_dir):
    rows = rows_of(run_dir, "verify")
    page = Catalogs(run_dir).get("verify").select(Filters(q="DATABASE", format="react"), page_size=1000)
    expected = [r["id"] for r in rows if "database" in r["instruction"].lower() and r["format"] == "react"]
    assert expected and [r["id"] for r in page.rows] == expected


def test_pages_cover_every_matching_row_once_in_shard_order(run_dir):
    catalog = Catalogs(run_dir).get("verify")
    first = catalog.select(Filters(outcome="failed"), page_size=7)
    seen = [r["id"] for page in range(1, first.pages + 1) for r in catalog.select(Filters(outcome="failed", page=page), page_size=7).rows]
    assert first.pages == -(-first.total // 7) > 1
    assert seen == [r["id"] for r in rows_of(run_dir, "verify") if r["passed"] is False]
    assert catalog.select(Filters(outcome="failed", page=999), page_size=7).page == first.pages  # past the end: the last page


def test_a_value_not_in_the_run_matches_nothing_and_bad_pages_read_as_one(run_dir):
    catalog = Catalogs(run_dir).get("verify")
    assert catalog.select(Filters(check="no-such-check")).total == 0
    assert catalog.select(Filters(split="train")).total == 0  # verified rows have no split yet
    assert Filters.from_query({"page": "-3", "outcome": "failed", "q": ""}) == Filters(outcome="failed")


def test_filters_round_trip_through_their_query_string():
    filters = Filters(outcome="failed", check="answer", q="refund & more", page=3)
    parsed = Filters.from_query(dict(parse_qsl(filters.query(page=3))))
    assert parsed == filters
    assert "page" not in filters.link("check", "limits") and "check=limits" in filters.link("check", "limits")
    assert "check" not in filters.link("check", None)


def test_read_row_returns_the_whole_row_of_its_shard(run_dir):
    rows = {r["id"]: r for r in rows_of(run_dir, "verify")}
    catalog = Catalogs(run_dir).get("verify")
    for entry in catalog.select(Filters(kind="reflection"), page_size=3).rows:
        assert catalog.read_row(entry["id"]) == rows[entry["id"]]
        assert entry["parent_id"] == rows[entry["id"]]["meta"]["reflection"]["parent_id"]
    assert catalog.read_row("traj-missing") is None


def test_curated_rows_carry_their_split_and_tasks_their_own_facets(run_dir):
    curated = rows_of(run_dir, "curate")
    page = Catalogs(run_dir).get("curate").select(Filters())
    assert dict(page.facets["split"]) == Counter(r["split"] for r in curated) and page.total == len(curated)
    tasks = Catalogs(run_dir).get("synthesize")
    assert set(tasks.select(Filters()).facets) == {"source", "domain"}
    assert tasks.select(Filters(domain="sql")).total == 4


def test_a_rewritten_shard_rebuilds_the_catalog(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    catalogs = Catalogs(copy)
    before = catalogs.get("verify").num_rows
    path = copy / "verified" / shards.shard_name(0)
    table = shards.read_table(path, "trajectory")
    shards.write_table_atomic(path, table.slice(0, 1))
    assert catalogs.get("verify").num_rows == before - table.num_rows + 1
    assert catalogs.get("verify") is catalogs.get("verify")  # unchanged files: the same catalog, not a rebuild


def test_error_kind_drops_the_particulars():
    errors = pa.array(["step 2: unparseable reply: Expecting ',' delimiter: line 1", "step 0: LLM request failed: timeout: no response in time",
                       "no final answer within max_steps=4", None])
    assert facets.error_kind(errors).to_pylist() == ["unparseable reply", "LLM request failed: timeout", "no final answer within max_steps", None]


def test_a_stage_without_checks_has_no_verdicts_yet(run_dir):
    catalog = Catalog.build(run_dir, "sample")
    page = catalog.select(Filters())
    assert dict(page.facets["outcome"]) == {"not verified": catalog.num_rows}
    assert dict(page.facets["check"]) == {} and dict(page.facets["verdict"]) == {"not judged": catalog.num_rows}
