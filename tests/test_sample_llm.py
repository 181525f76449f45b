"""The sample stage with an LLM teacher, end to end through the CLI, against a fake OpenAI-compatible server
over real HTTP: every format, resume from the cache, budget stop, the Batch API path, malformed replies and
bad endpoint settings."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import cli, schema, shards
from pipeline.formats import FORMATS
from pipeline.sample.agent import start_episode
from pipeline.sample.stage import SampleStage
from pipeline.tools import TOOLS, Env
from tests.conftest import ROOT
from tests.fake_openai import FakeOpenAI, Fault, calculator_solver

FORMAT_MODES = [("react", "completion"), ("react", "chat"), ("cota", "chat"), ("function_calling", "chat")]


@pytest.fixture
def server():
    with FakeOpenAI(responder=calculator_solver) as fake:
        yield fake


def llm_config(server, fmt="react", mode="completion", tasks=4, rows_per_shard=2, **endpoint) -> dict:
    return {
        "run": {"name": "t", "rows_per_shard": rows_per_shard},
        "endpoints": {"fake": {"base_url": server.base_url, "model": "fake-model", "mode": mode, "max_retries": 1,
                               "timeout_s": 5, "batch_poll_s": 0.01, **endpoint}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": tasks}]},
        "sample": {"teachers": [{"name": "teacher", "policy": "llm", "endpoint": "fake", "formats": [fmt], "max_steps": 4}]},
    }


def run(tmp_path, config: dict, *extra) -> int:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify", *extra])


def rows(tmp_path, stage="verified") -> list[dict]:
    return [r for p in sorted((tmp_path / "run" / stage).glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]


def check(row: dict, name: str) -> dict:
    """The verify stage's result for check `name` on a verified row."""
    return next(c for c in row["checks"] if c["name"] == name)


def replayed(row: dict, step: dict) -> str:
    with Env(row["environment"]) as env:
        return TOOLS[step["tool_name"]].run(json.loads(step["tool_arguments"]), env).content


@pytest.mark.parametrize("fmt, mode", FORMAT_MODES)
def test_llm_teacher_rows_are_valid_and_observations_come_from_the_tools(tmp_path, server, fmt, mode):
    assert run(tmp_path, llm_config(server, fmt, mode)) == 0
    out = rows(tmp_path)
    assert len(out) == 4
    for row in out:
        assert schema.errors("trajectory", row) == [] and row["error"] is None
        assert check(row, "messages_steps")["passed"], check(row, "messages_steps")["detail"]
        tool_steps = [s for s in row["steps"] if s["tool_name"]]
        assert tool_steps and all(s["observation"] == replayed(row, s) for s in tool_steps)
        assert row["final_answer"] == "42" and row["usage"]["llm_calls"] == 2 and row["teacher"]["mode"] == mode
    if fmt == "function_calling":
        call = out[0]["messages"][2]["tool_calls"][0]
        assert call["function"]["arguments"] == {"expression": "6 * 7"} and out[0]["tools"]
        assert out[0]["messages"][3] == {"role": "tool", "tool_call_id": call["id"], "content": "42"}


def test_rerun_of_finished_work_makes_zero_requests(tmp_path, server):
    assert run(tmp_path, llm_config(server)) == 0
    sent = len(server.completions)
    assert run(tmp_path, llm_config(server)) == 0
    for path in (tmp_path / "run" / "trajectories").glob("part-*"):  # lost shards: redone from the cache
        path.unlink()
    assert run(tmp_path, llm_config(server)) == 0
    assert len(server.completions) == sent == 8
    assert len(rows(tmp_path)) == 4


def test_budget_stop_leaves_unfinished_shards_for_a_later_run(tmp_path, server, capsys):
    prices = {"price_input_per_mtok": 50.0, "price_output_per_mtok": 50.0, "max_concurrency": 1}  # $0.001 a request
    assert run(tmp_path, llm_config(server, tasks=6, budget_usd=0.0035, **prices), "--go-on") == 3  # past the plan's refusal
    assert "budget_usd=0.0035 reached" in capsys.readouterr().err
    assert len(server.completions) == 4
    written = rows(tmp_path, "trajectories")
    assert all(r["error"] is None for r in written) and len(written) < 6
    assert run(tmp_path, llm_config(server, tasks=6, budget_usd=1.0, **prices)) == 0
    assert len(rows(tmp_path)) == 6 and len(server.completions) == 12  # nothing asked twice


def test_batch_path_advances_one_step_per_round(tmp_path, server):
    assert run(tmp_path, llm_config(server, "function_calling", "chat"), "--batch") == 0
    assert len(server.completions) == 0 and len(server.batches) == 2  # tool call, then final answer
    assert [len(b["lines"]) for b in server.batches.values()] == [4, 4]
    for row in rows(tmp_path):
        assert row["error"] is None and row["final_answer"] == "42"
        assert all(s["observation"] == replayed(row, s) for s in row["steps"] if s["tool_name"])


def test_a_batch_round_over_the_job_limits_is_split_into_several_jobs(tmp_path, server):
    assert run(tmp_path, llm_config(server, "function_calling", "chat", batch_max_requests=3), "--batch") == 0
    assert len(server.completions) == 0 and [len(b["lines"]) for b in server.batches.values()] == [3, 1, 3, 1]
    assert all(r["error"] is None and r["final_answer"] == "42" for r in rows(tmp_path))
    one_line = max(len(json.dumps(line)) for b in server.batches.values() for line in b["lines"])
    server.batches.clear()
    assert run(tmp_path / "bytes", llm_config(server, "function_calling", "chat", batch_max_bytes=2 * one_line + 200), "--batch") == 0
    assert len(server.batches) > 2 and all(1 <= len(b["lines"]) <= 2 for b in server.batches.values())


def test_batch_job_survives_a_restart_between_rounds(tmp_path, server):
    server.hold_batches = True
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(llm_config(server)))
    args = [sys.executable, "-m", "pipeline", "run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample", "--batch"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert server.batch_polled.wait(60), "the first batch was never polled"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    server.hold_batches = False
    assert run(tmp_path, llm_config(server), "--batch") == 0
    assert len(server.batches) == 2 and sum(len(b["lines"]) for b in server.batches.values()) == 8
    assert all(r["final_answer"] == "42" for r in rows(tmp_path))


MALFORMED = {
    "react": ["I think the answer might be something.", "Thought: x\nAction: calculator\nAction Input: {oops"],
    "cota": ['{"thought": "x", "tool": "calculator", "arguments": {"expression": "1"', "[1, 2]"],
    "function_calling": [{"content": None, "tool_calls": [{"name": "calculator", "arguments": '{"expression": '}]},
                         {"content": None, "tool_calls": [{"name": "calculator", "arguments": "{}"}, {"name": "calculator", "arguments": "[1, 2]"}]},
                         {"content": ""}],
}


@pytest.mark.parametrize("fmt", sorted(MALFORMED))
def test_malformed_replies_are_recorded_on_their_rows(tmp_path, fmt):
    replies = iter(MALFORMED[fmt])
    with FakeOpenAI(responder=lambda path, body: next(replies)) as server:
        assert run(tmp_path, llm_config(server, fmt, "chat", tasks=len(MALFORMED[fmt]), max_concurrency=1)) == 0
    out = rows(tmp_path)
    assert len(out) == len(MALFORMED[fmt])
    for row in out:
        assert row["error"].startswith("step 0: unparseable reply"), row["error"]
        assert row["steps"][0]["raw_action"] is not None and row["passed"] is False
        assert check(row, "messages_steps")["passed"]


def test_request_that_fails_for_good_is_recorded_on_its_row(tmp_path, server):
    server.faults.append(Fault(400, code="context_length_exceeded"))
    assert run(tmp_path, llm_config(server, tasks=2, max_concurrency=1)) == 0
    errors = sorted(r["error"] or "" for r in rows(tmp_path))
    assert errors[0] == "" and errors[1].startswith("step 0: LLM request failed: context_length (HTTP 400)")


def closed_port_url() -> str:
    from pipeline.llm.local import free_port

    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.mark.parametrize("change, field", [
    ({"base_url": None}, "endpoints.fake.base_url: cannot reach"),
    ({"api_key_env": "TRAJFORGE_TEST_MISSING_KEY"}, "endpoints.fake.api_key_env: environment variable TRAJFORGE_TEST_MISSING_KEY is not set"),
    ({"model": "gpt-unserved"}, "endpoints.fake.model: "),
])
def test_bad_endpoint_settings_fail_before_any_work(tmp_path, server, capsys, change, field):
    config = llm_config(server)
    config["endpoints"]["fake"].update({k: v or closed_port_url() for k, v in change.items()})
    assert run(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}") and err.count("\n") == 1
    assert not list((tmp_path / "run" / "trajectories").glob("part-*")) and server.completions == []
    if "model" in change:
        assert "does not serve 'gpt-unserved' (it serves: fake-model)" in err


def test_function_calling_with_a_completion_endpoint_is_a_config_error(tmp_path, server, capsys):
    assert run(tmp_path, llm_config(server, "function_calling", "completion")) == 2
    assert "sample.teachers[0].formats[0]: function_calling needs a chat endpoint" in capsys.readouterr().err


def test_sample_summary_counts_requests_and_cache_hits(tmp_path, server):
    assert run(tmp_path, llm_config(server)) == 0
    report = json.loads(Path(tmp_path / "run" / "report.json").read_text())["stages"]
    assert report["sample"]["requests"] == 8 and report["sample"]["cache_hits"] == 0
    assert report["verify"]["funnel"] == {"llm:fake-model": {"rows": 4, "no_error": 4, "passed": report["verify"]["passed"]}}


def test_worker_processes_make_the_same_rows_as_one_process(tmp_path, server):
    config = llm_config(server, tasks=6, rows_per_shard=1)
    assert run(tmp_path / "one", config) == 0
    config["run"]["workers"] = 3
    assert run(tmp_path / "three", config) == 0
    ids = [sorted(r["id"] for r in rows(tmp_path / d)) for d in ("one", "three")]
    assert ids[0] == ids[1] and len(ids[0]) == 6
    assert len(server.completions) == 2 * 12


def test_budget_is_shared_by_worker_processes(tmp_path, server, capsys):
    prices = {"price_input_per_mtok": 50.0, "price_output_per_mtok": 50.0, "max_concurrency": 2}  # $0.001 a request
    config = llm_config(server, tasks=8, rows_per_shard=1, budget_usd=0.0035, **prices)
    config["run"]["workers"] = 2
    assert run(tmp_path, config, "--go-on") == 3
    assert "budget_usd=0.0035 reached" in capsys.readouterr().err
    assert 4 <= len(server.completions) <= 5  # each worker stops once the shared spend reaches the budget


def test_prompt_id_names_the_prompt_the_teacher_saw_not_the_task():
    def episode(instruction, tools):
        return start_episode({"instruction": instruction, "tools": tools}, FORMATS["react"])

    ids = {mode: SampleStage.prompt_id("react", mode, episode("What is 2+2?", ["calculator"])) for mode in ("chat", "completion")}
    assert ids["chat"] != ids["completion"]  # the few-shot completion prompt is another prompt than the chat system prompt
    for mode, expected in ids.items():
        assert SampleStage.prompt_id("react", mode, episode("What is 7*6?", ["calculator"])) == expected
        assert SampleStage.prompt_id("react", mode, episode("What is 2+2?", ["calculator", "sql"])) != expected
