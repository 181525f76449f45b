"""Richer synthesis against the real local server (llama.cpp with Gemma 3 270M, started by trajforge): one
blueprint proposal with its reviewer, and a conversation with a simulated user. The model is weak, so the test
asserts that every request, outcome and ending is accounted for, not that the model succeeds. Kept tiny:
a few requests of a few dozen tokens (each takes seconds to tens of seconds on two cores)."""

import json

import yaml

from pipeline import cli, schema, shards
from pipeline.sample.user_sim import ENDINGS


def test_blueprint_synthesis_and_a_simulated_user_on_the_real_local_server(tmp_path):
    local = {"base_url": "local", "model": "gemma-3-270m", "mode": "chat", "max_concurrency": 1, "timeout_s": 300}
    data = {
        "run": {"rows_per_shard": 2},
        "endpoints": {"local": local},
        "synthesize": {"generators": [{"name": "store_refunds", "count": 1}],
                       "llm_tasks": [{"name": "store", "endpoint": "local", "count": 1, "seeds": "store_refunds", "examples": 1,
                                      "max_rounds": 1, "max_tokens": 160, "reviewers": [{"name": "r", "endpoint": "local", "max_tokens": 100}]}]},
        "sample": {"teachers": [{"name": "agent", "policy": "llm", "endpoint": "local", "formats": ["function_calling"], "max_steps": 2,
                                 "max_tokens": 40, "user_simulator": {"endpoint": "local", "max_turns": 1, "max_tokens": 40}}]},
        "verify": {"checks": [{"name": n} for n in ("schema", "messages_steps", "tool_calls", "final_state", "actions")]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify"]) == 0
    stages = json.loads((tmp_path / "run" / "report.json").read_text())["stages"]
    blueprints = stages["synthesize"]["funnels"]["llm_tasks"]
    assert blueprints["proposed"] == 1 and stages["synthesize"]["requests"] >= 1
    assert blueprints["unparseable"] + blueprints["duplicate"] + blueprints["actions_failed"] + blueprints["executed_ok"] + blueprints["endpoint_failed"] == 1
    assert blueprints["kept"] + blueprints["duplicate_in_shard"] + blueprints["gave_up"] + blueprints["endpoint_failed"] == 1
    tasks = [t for p in sorted((tmp_path / "run" / "tasks").glob("part-*.parquet")) for t in shards.read_shard(p, "task")]
    rows = [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    assert len(tasks) == 1 + blueprints["kept"] and len(rows) == len(tasks)
    conversations = stages["sample"]["funnels"]["user_sim"]
    assert conversations["conversations"] == len(rows) == sum(conversations[e] for e in ENDINGS)
    for row in rows:
        assert schema.errors("trajectory", row) == []
        assert row["meta"]["conversation"]["ended_by"] in ENDINGS and row["meta"]["conversation"]["user_turns"] <= 1
        assert next(c for c in row["checks"] if c["name"] == "messages_steps")["passed"]
        assert row["usage"]["llm_calls"] >= 1
