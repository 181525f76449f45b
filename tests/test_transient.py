"""Transient failures are never final (DESIGN.md, "The stage contract"): a row that failed for a transient
reason is recorded as such, the shard holding it is redone by the next run (finished requests come from the
cache), the shards made from it follow, and such rows never become training or preference data."""

import json
import random

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import cli, shards
from pipeline.curate import views
from pipeline.curate.views import dpo
from tests.fake_openai import FakeOpenAI, Fault, calculator_solver
from tests.helpers import make_trajectory


def config(server) -> dict:
    # no retries: every injected 500 fails its row for good within this run
    endpoint = {"base_url": server.base_url, "model": "teacher", "max_retries": 0, "timeout_s": 5, "max_concurrency": 4}
    return {
        "run": {"rows_per_shard": 3},
        "endpoints": {"teacher": endpoint},
        "synthesize": {"generators": [{"name": "arithmetic", "count": 9}]},
        "sample": {"teachers": [{"name": "t", "policy": "llm", "endpoint": "teacher", "formats": ["react", "function_calling"], "max_steps": 4}]},
        "verify": {"checks": [{"name": "schema"}, {"name": "replay"}, {"name": "answer", "hard": False}]},
        "curate": {"views": ["trl", "dpo"]},
    }


def dataset(run_dir) -> list[tuple]:
    rows = []
    for path in sorted((run_dir / "dataset" / "data").glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "final_answer", "messages"])
        rows += list(zip(*(table[c].to_pylist() for c in table.column_names)))
    return sorted(rows)


def run(path, run_dir, capsys) -> str:
    assert cli.main(["run", str(path), "--run-dir", str(run_dir)]) == 0
    return capsys.readouterr().out


@pytest.fixture
def server():
    with FakeOpenAI(models=("teacher",), responder=calculator_solver) as fake:
        yield fake


def test_a_rerun_retries_the_rows_that_failed_for_a_transient_reason(server, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(server)))
    run(path, tmp_path / "reference", capsys)
    expected, requests = dataset(tmp_path / "reference"), len(server.completions)
    server.completions.clear()

    server.faults += [Fault(500) if random.Random(3).random() < 0.5 else Fault(200) for _ in range(12)]
    failing = sum(f.status == 500 for f in server.faults)
    first = run(path, tmp_path / "run", capsys)
    assert f"{failing} row(s) failed for a transient reason and wait for a retry" in first
    sampled = [r for p in sorted((tmp_path / "run" / "trajectories").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    waiting = [r for r in sampled if r["meta"].get("transient")]
    assert len(waiting) == failing and all(r["meta"]["transient"] == ["server"] for r in waiting)
    assert not any(r["id"] in {w["id"] for w in waiting} for r in _curated(tmp_path / "run"))
    manifest = json.loads((tmp_path / "run" / "trajectories" / shards.MANIFEST).read_text())
    assert manifest["pending"] == failing and not manifest["complete"]

    server.completions.clear()
    second = run(path, tmp_path / "run", capsys)
    assert "wait for a retry" not in second
    assert dataset(tmp_path / "run") == expected
    # the retry asked again only for what had failed: each failed row's requests, none of the finished rows'
    assert 0 < len(server.completions) < requests
    server.completions.clear()
    third = run(path, tmp_path / "run", capsys)
    assert server.completions == [] and "wrote 0" in third


def _curated(run_dir) -> list[dict]:
    return [r for p in sorted((run_dir / "dataset" / "data").glob("*.parquet")) for r in shards.read_shard(p, "trajectory", validate=False)]


def failed(row: dict, **changes) -> dict:
    return {**row, "id": row["id"] + "-failed", "passed": False, "score": 0.0, **changes}


def test_a_row_that_failed_for_a_transient_reason_is_never_a_rejected_side():
    chosen = {**make_trajectory("arithmetic", 1, "react"), "passed": True, "score": 1.0}
    attempt = failed(chosen, final_answer="41")
    timed_out = failed(chosen, messages=chosen["messages"][:2], steps=[], final_answer=None,
                       meta={**chosen["meta"], "transient": ["timeout"]}, id="t")
    no_content = failed(chosen, messages=chosen["messages"][:2] + [{"role": "assistant", "content": "  "}], id="e")
    context = views.Context({chosen["task_id"]: [r for r in (attempt, timed_out, no_content) if dpo.real_attempt(r)]})
    pairs = dpo.trajectory_pairs([chosen], context)
    assert [p["rejected_id"] for p in pairs] == [attempt["id"]]
    assert all(p["chosen"] and p["rejected"] for p in pairs)


def test_a_pair_with_an_empty_side_is_refused():
    chosen = make_trajectory("arithmetic", 1, "react")
    with pytest.raises(ValueError, match="empty side"):
        dpo.pair(chosen["task_id"], chosen, failed(chosen), 2, chosen["messages"][2:], [])
