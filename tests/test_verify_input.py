"""A row that breaks the schema is data for verify, not a reason to refuse its shard: the shard is verified,
the row fails its `schema` check and is stored in a repaired form that keeps the schema."""

import pyarrow.parquet as pq
import pytest

from pipeline import rows as rowlib
from pipeline import schema, shards
from pipeline.schema_repair import repaired
from tests.conftest import run_cli, small_config
from tests.helpers import make_trajectory, rewrite_shard

BREAKS = {
    "negative usage": lambda row: row["usage"].update(llm_calls=-1),
    "unknown format": lambda row: row.update(format="xml"),
    "bad role": lambda row: row["messages"][1].update(role="human"),
    "difficulty out of range": lambda row: row.update(difficulty=0),
    "not an object": lambda row: row.update(meta=["x"]),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_row_is_repaired_into_one_that_keeps_the_schema(name):
    row = make_trajectory("arithmetic", 1, "react")
    BREAKS[name](row)
    problems = schema.errors("trajectory", row)
    fixed = repaired(row)
    assert problems and schema.errors("trajectory", fixed) == []
    assert fixed["passed"] is False and fixed["id"] == row["id"]
    assert fixed["meta"]["schema_repair"]["problems"] == problems
    assert fixed["meta"]["schema_repair"]["original"]  # the replaced fields, as they were


def test_a_valid_row_is_left_as_it_is():
    row = make_trajectory("arithmetic", 1, "react")
    assert repaired(row) is row


def test_verify_writes_a_shard_holding_a_broken_row(tmp_path, write_config):
    data = small_config(arithmetic=4, sql_table=0, units_dates=0, kb_multihop=0, python_compute=0, doc_search=0, store_refunds=0)
    data["synthesize"]["generators"] = [g for g in data["synthesize"]["generators"] if g["count"]]
    config = write_config(data)
    run = tmp_path / "run"
    run_cli("run", config, "--run-dir", run, "--stages", "synthesize,sample", check=True)
    path = run / "trajectories" / shards.shard_name(0)
    table = pq.read_table(path)
    rows = rowlib.from_table(table, "trajectory")
    rows[0]["usage"]["llm_calls"] = -1  # breaks the schema, still fits the Parquet types
    rewrite_shard(path, rowlib.to_table(rows, "trajectory"))

    verified = run_cli("verify", config, "--run-dir", run)
    assert verified.returncode == 0, verified.stderr
    out = shards.read_shard(run / "verified" / shards.shard_name(0), "trajectory")  # validates: every row keeps the schema
    assert len(out) == len(rows)
    broken = next(r for r in out if r["id"] == rows[0]["id"])
    schema_check = next(c for c in broken["checks"] if c["name"] == "schema")
    assert broken["passed"] is False and not schema_check["passed"] and "llm_calls" in schema_check["detail"]
    assert broken["meta"]["schema_repair"]["original"]["usage"]["llm_calls"] == -1
    assert all(r["passed"] for r in out if r["id"] != rows[0]["id"])
    assert "schema 1" in verified.stdout
