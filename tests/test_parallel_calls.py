"""Parallel tool calls in function_calling: an assistant turn with several tool calls, each executed (at once
when every tool allows it, in order otherwise), answered by its own tool message, one step per call, checked,
and rendered through real chat templates (Qwen2.5's in tests/data, Qwen3's from the trl wheel)."""

import copy
import importlib.util
import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import cli, shards
from pipeline import rows as rowlib
from pipeline.curate import views
from pipeline.curate.views import trl
from pipeline.formats import FORMATS
from pipeline.verify.agreement import disagreement
from tests.fake_openai import FakeOpenAI
from tests.test_consumer import render

MODULE = '''
import threading

BARRIER = threading.Barrier(2, timeout=10)  # passes only when two calls run at the same time
LOG = []


def probe(name: str) -> str:
    """Look at a sensor (read-only)."""
    BARRIER.wait()
    return f"{name}: ok"


def record(entry: str) -> str:
    """Append to the log; says the entry's position."""
    LOG.append(entry)
    return f"{entry} is entry {len(LOG)}"


TOOLS = [{"function": probe, "read_only": True}, record]
'''


def calls(turn: str, *pairs) -> list[dict]:
    return [{"id": f"{turn}_{i}", "name": name, "arguments": json.dumps(arguments)} for i, (name, arguments) in enumerate(pairs)]


def parallel_agent(path: str, body: dict):
    """Two probes at once, then two log entries at once, then the first probe's result as the answer."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"content": "I probe both sensors at once.", "tool_calls": calls("probe", ("lab__probe", {"name": "north"}), ("lab__probe", {"name": "south"}))}
    if len(results) == 2:
        return {"content": None, "tool_calls": calls("record", ("lab__record", {"entry": "first"}), ("lab__record", {"entry": "second"}))}
    return {"content": results[0]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("parallel")
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "lab_tools.py").write_text(MODULE)
    task = {"domain": "lab", "instruction": "Probe the north and south sensors, then log two entries.", "tools": ["lab.probe", "lab.record"],
            "environment": {}, "ground_truth": {"answer": "north: ok"}, "solution": None, "difficulty": 2, "meta": {}}
    (tmp_path / "task.jsonl").write_text(json.dumps(task) + "\n")
    with FakeOpenAI(responder=parallel_agent) as server:
        data = {"run": {"name": "parallel"},
                "endpoints": {"fake": {"base_url": server.base_url, "model": "fake-model", "mode": "chat", "max_retries": 0}},
                "environments": {"lab": {"python": {"module": "lab_tools", "path": str(tmp_path / "mods")}}},
                "synthesize": {"seeds": [{"name": "lab", "path": str(tmp_path / "task.jsonl")}]},
                "sample": {"teachers": [{"name": "agent", "policy": "llm", "endpoint": "fake", "formats": ["function_calling"], "max_steps": 4}]},
                "verify": {"checks": [{"name": n} for n in ("schema", "messages_steps", "step_ids", "context", "mask", "tool_calls", "replay", "final_answer", "answer")]},
                "curate": {"validation_fraction": 0.0}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
        assert cli.main(["run", str(tmp_path / "config.yaml"), "--run-dir", str(tmp_path / "run")]) == 0
    return tmp_path / "run"


def verified(run_dir) -> dict:
    [row] = [r for p in sorted((run_dir / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    return row


def test_each_call_of_a_turn_is_executed_answered_and_stepped(run_dir):
    row = verified(run_dir)
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "tool", "assistant"]
    assert [c["function"]["name"] for c in row["messages"][2]["tool_calls"]] == ["lab__probe", "lab__probe"]
    assert [(m["tool_call_id"], m["content"]) for m in row["messages"][3:5]] == [("probe_0", "north: ok"), ("probe_1", "south: ok")]
    assert [(s["message_index"], s["tool_call_id"], s["tool_name"]) for s in row["steps"][:4]] == [
        (2, "probe_0", "lab.probe"), (2, "probe_1", "lab.probe"), (5, "record_0", "lab.record"), (5, "record_1", "lab.record")]
    assert row["steps"][0]["thought"] == "I probe both sensors at once." and row["steps"][1]["thought"] is None
    assert [m["content"] for m in row["messages"][6:8]] == ["first is entry 1", "second is entry 2"]  # in order: record is not read-only
    assert row["passed"], [c for c in row["checks"] if not c["passed"]]


def test_the_checks_catch_a_parallel_turn_that_was_tampered_with(run_dir):
    row = verified(run_dir)
    swapped = copy.deepcopy(row)
    swapped["messages"][3], swapped["messages"][4] = swapped["messages"][4], swapped["messages"][3]
    assert disagreement(swapped) == "step 0: observation message differs from the step's observation"
    dropped = copy.deepcopy(row)
    dropped["steps"] = [dropped["steps"][0]] + [{**s, "index": s["index"] - 1} for s in dropped["steps"][2:]]
    assert disagreement(dropped) == "step 0: the message holds 2 tool call(s), 1 step(s) point at it"


def templates() -> dict[str, str]:
    found = {"qwen2_5": (Path(__file__).parent / "data" / "qwen2_5.jinja").read_text()}
    spec = importlib.util.find_spec("trl")
    if spec is not None:  # the trl wheel ships real chat templates as files (scripts/setup.sh installs it)
        folder = Path(spec.origin).parent / "chat_templates"
        found["qwen3"] = (folder / "qwen3.jinja").read_text()
    return found


@pytest.mark.parametrize("name", sorted(templates()))
def test_parallel_calls_render_through_real_chat_templates(run_dir, tmp_path, name):
    path = tmp_path / "train.parquet"
    pq.write_table(rowlib.to_table_with_schema(trl.build([verified(run_dir)], views.Context()), trl.SCHEMA), path)
    [row] = list(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    text = render(row["messages"], row["tools"], templates()[name])
    first_turn = text.split("<|im_start|>assistant\n")[1].split("<|im_end|>")[0]
    assert first_turn.count("<tool_call>") == 2
    assert '{"name": "lab__probe", "arguments": {"name": "north"}}' in first_turn and '{"name": "lab__probe", "arguments": {"name": "south"}}' in first_turn
    responses = text.split("<|im_start|>user\n<tool_response>")[1].split("<|im_end|>")[0]
    assert responses.index("north: ok") < responses.index("south: ok") and responses.count("<tool_response>") == 1  # both in one turn
    assert '"name": "lab__record"' in text.split("<tools>\n")[1].split("\n</tools>")[0]


def test_function_calling_round_trips_a_parallel_turn():
    fmt = FORMATS["function_calling"]
    message = {"role": "assistant", "content": "Both.", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "calculator", "arguments": {"expression": "1+1"}}},
        {"id": "b", "type": "function", "function": {"name": "date", "arguments": '{"operation": "weekday", "date": "2024-01-01"}'}}]}
    action = fmt.parse_message(message)
    assert action.thought == "Both." and [(c.tool, c.tool_call_id) for c in action.calls()] == [("calculator", "a"), ("date", "b")]
    assert fmt.action_message(action)["tool_calls"][1]["function"]["arguments"] == {"operation": "weekday", "date": "2024-01-01"}
    same_ids = {**message, "tool_calls": [dict(c, id="x") for c in message["tool_calls"]]}
    with pytest.raises(Exception, match="share an id"):
        fmt.parse_message(same_ids)
