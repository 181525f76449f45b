"""Step-wise candidate sampling (SPORT) and adaptive samples per task, through the CLI against a fake teacher
over real HTTP that follows the solution program and slips (a plausible wrong value) on requests with an even
seed: candidate c of a step asks with seed + c, sample k with run.seed + k."""

import shutil

import pytest
import yaml

from pipeline import cli, shards
from pipeline.curate.views import step_pairs
from tests.fake_openai import FakeOpenAI
from tests.step_fakes import even_seed, follower


def run(tmp_path, data: dict, stages: str = "synthesize,sample,verify", *extra) -> int:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", stages, *extra])


def verified(tmp_path) -> list[dict]:
    return [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]


def teacher_config(server, **teacher) -> dict:
    return {"run": {"name": "steps", "rows_per_shard": 3},
            "endpoints": {"fake": {"base_url": server.base_url, "model": "follower", "max_retries": 0}},
            "synthesize": {"generators": [{"name": "arithmetic", "count": 3}]},
            "sample": {"teachers": [{"name": "t", "policy": "llm", "endpoint": "fake", "formats": ["function_calling"],
                                     "temperature": 0.7, **teacher}]},
            "curate": {"validation_fraction": 0.0, "views": ["dpo_step"], "dedup_near": {"enabled": False}}}


@pytest.fixture
def server(tmp_path):
    """The fake teacher; it learns the solutions once synthesize has written the tasks."""
    with FakeOpenAI(models=("follower",)) as fake:
        yield fake


def sample_with(tmp_path, server, broken: bool = False, **teacher) -> list[dict]:
    data = teacher_config(server, **teacher)
    assert run(tmp_path, data, "synthesize") == 0
    server.responder = follower(tmp_path / "run", slips=even_seed, broken=broken)
    assert run(tmp_path, data, "sample,verify") == 0
    return verified(tmp_path)


def test_without_candidates_the_slipping_teacher_fails(tmp_path, server):
    out = sample_with(tmp_path, server)  # sample 0 asks with seed 0: every step slips
    assert len(out) == 3 and not any(r["passed"] for r in out)


def test_sport_with_the_step_check_picks_the_candidate_that_executes_and_answers_right(tmp_path, server):
    server_calls = server.completions
    out = sample_with(tmp_path, server, broken=True, step_candidates={"count": 2, "scorer": "check"})
    assert len(out) == 3 and all(r["passed"] for r in out), [c for r in out for c in r["checks"] if not c["passed"]]
    for row in out:
        records = row["meta"]["step_candidates"]
        assert [r["step"] for r in records] == list(range(len(row["steps"])))
        assert all(r["chosen"] == 1 and [c["score"] for c in r["candidates"]] == [0.0, 1.0] for r in records)
        assert records[0]["candidates"][0]["detail"].startswith("Error")  # the broken call's observation
        assert records[-1]["candidates"][0]["message"]["content"] == "0"  # the slipped answer, kept with its score
    assert len(server_calls) == sum(2 * len(r["steps"]) for r in out)


def test_sport_with_rollouts_picks_the_candidate_whose_continuations_pass(tmp_path, server):
    out = sample_with(tmp_path, server, step_candidates={"count": 2, "scorer": "rollout", "rollouts": 1})
    assert all(r["passed"] for r in out)
    for row in out:
        for record in row["meta"]["step_candidates"]:
            assert record["chosen"] == 1 and [c["score"] for c in record["candidates"]] == [0.0, 1.0]
        pairs = step_pairs.candidate_pairs(row)
        assert len(pairs) == len(row["steps"])  # one rejected candidate per step
        assert all(p["chosen"][0] == row["messages"][row["steps"][i]["message_index"]] for i, p in enumerate(pairs))


def test_a_step_check_cannot_tell_a_plausible_slip_from_the_right_value(tmp_path, server):
    out = sample_with(tmp_path, server, step_candidates={"count": 2, "scorer": "check"})
    assert not any(r["passed"] for r in out)
    tool_steps = [r for row in out for r in row["meta"]["step_candidates"] if r["step"] < len(row["steps"]) - 1]
    assert all(r["chosen"] == 0 and [c["score"] for c in r["candidates"]] == [1.0, 1.0] for r in tool_steps)


def test_adaptive_sampling_stops_once_enough_samples_pass(tmp_path, server):
    data = teacher_config(server, samples_per_task=6, stop_after_passing=2)
    data["sample"]["teachers"].append({"name": "program", "policy": "program", "formats": ["function_calling"]})
    assert run(tmp_path, data, "synthesize") == 0
    server.responder = follower(tmp_path / "run", slips=even_seed)
    assert run(tmp_path, data, "sample,verify") == 0
    out = verified(tmp_path)
    model = [r for r in out if r["source"] == "llm:follower"]
    assert len(model) == 3 * 4  # per task: k=0 fails, k=1 passes, k=2 fails, k=3 passes: stop
    assert sorted({r["meta"]["sample_index"] for r in model}) == [0, 1, 2, 3]
    assert all(r["meta"]["adaptive"] == {"stop_after_passing": 2, "cap": 6, "sampled": 4, "passing": 2} for r in model)
    assert all(r["meta"]["pass_rate"] == {"rate": 0.5, "passed": 2, "samples": 4} for r in out)  # program rows too
    requests = len(server.completions)
    shutil.rmtree(tmp_path / "run" / "trajectories")
    assert run(tmp_path, data, "sample") == 0 and len(server.completions) == requests  # the same samples, from the cache


def test_curate_filters_and_mixes_by_pass_rate_band_and_the_card_shows_the_distribution(tmp_path, server):
    data = teacher_config(server, samples_per_task=6, stop_after_passing=2)
    data["synthesize"]["generators"].append({"name": "units_dates", "count": 3})
    data["sample"]["teachers"][0]["domains"] = ["arithmetic"]
    data["sample"]["teachers"].append({"name": "program", "policy": "program", "formats": ["function_calling"]})
    assert run(tmp_path, data, "synthesize") == 0
    server.responder = follower(tmp_path / "run", slips=even_seed)
    assert run(tmp_path, data, "sample,verify") == 0
    data["curate"]["filters"] = {"pass_rate_bands": ["learnable"]}
    assert run(tmp_path, data, "curate", "--reconfigure") == 0
    kept = [r for p in sorted((tmp_path / "run" / "dataset" / "data").glob("*.parquet")) for r in shards.read_shard(p, "trajectory", validate=False)]
    assert len(kept) == 3 and all(r["domain"] == "arithmetic" for r in kept)  # units_dates tasks have no model samples: unknown
    report = (tmp_path / "run" / "dataset" / "_report.json").read_text()
    assert '"pass rate band": 3' in report  # the three program rows of units_dates tasks
    card = (tmp_path / "run" / "dataset" / "README.md").read_text()
    pass_rates = card.split("## Task pass rates")[1].split("##")[0]
    assert "| learnable | 0.0 < rate < 1.0 | 3 | 3 |" in pass_rates and "| unknown | no model samples | 3 | 0 |" in pass_rates
    assert "| (0.25, 0.5] | 3 |" in pass_rates
    data["curate"]["filters"] = {}
    data["curate"]["mix"] = {"by": ["pass_rate_band"], "ratios": {"learnable": 0.5, "unknown": 0.5}, "total": 6}
    assert run(tmp_path, data, "curate", "--reconfigure") == 0
    mixed = (tmp_path / "run" / "dataset" / "_report.json").read_text()
    assert '"bucket": "learnable"' in mixed and '"selected": 3' in mixed
