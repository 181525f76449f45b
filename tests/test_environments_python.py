"""A Python module as an environment: the example inventory (examples/inventory_tools.py) and small modules
written by the tests; schemas from type hints and docstrings, a state per episode, its snapshot as the final
state, calls recorded and replayed offline, in every format (CodeAct calls the tools through the sandbox)."""

import json
import textwrap
from pathlib import Path
from typing import Literal

import pytest
import yaml

from pipeline import cli, shards
from pipeline.environments.signatures import function_schema
from tests.conftest import ROOT
from tests.fake_openai import FakeOpenAI

TASKS = ROOT / "examples" / "inventory_tasks.jsonl"
CHECKS = ["schema", "messages_steps", "step_ids", "context", "mask", "tool_calls", "replay", "final_answer", "answer", "final_state"]


def config(environment: dict, teachers: list[dict] | None = None, endpoints: dict | None = None, seeds: Path = TASKS) -> dict:
    return {
        "run": {"name": "inventory", "rows_per_shard": 4},
        "endpoints": endpoints or {},
        "environments": {"inv": environment},
        "synthesize": {"seeds": [{"name": "inventory", "path": str(seeds)}]},
        "sample": {"teachers": teachers or [{"name": "program", "policy": "program", "formats": ["function_calling", "react", "codeact"]}]},
        "verify": {"checks": [{"name": n} for n in CHECKS]},
    }


INVENTORY = {"python": {"module": "inventory_tools", "path": str(ROOT / "examples")}}


def run(tmp_path, data: dict, stages: str = "synthesize,sample,verify") -> int:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", stages])


def rows(tmp_path, folder: str = "verified") -> list[dict]:
    return [r for p in sorted((tmp_path / "run" / folder).glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]


def test_the_program_teacher_solves_the_module_tasks_in_every_format(tmp_path):
    assert run(tmp_path, config(INVENTORY)) == 0
    out = rows(tmp_path)
    assert len(out) == 15 and {r["format"] for r in out} == {"function_calling", "react", "codeact"}
    assert all(r["passed"] for r in out), [(r["format"], [c for c in r["checks"] if not c["passed"]]) for r in out if not r["passed"]]
    restock = next(r for r in out if r["format"] == "codeact" and "Restock" in r["instruction"])
    assert "print(inv__restock(item_id='C3', quantity=10))" in restock["messages"][2]["content"]  # a Python function in the sandbox
    assert restock["meta"]["final_state"]["inv"]["items"]["C3"]["quantity"] == 8


def shop_agent(path: str, body: dict):
    """Sells what the instruction asks in one call, then states the price the tool reported."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if results:
        return {"content": results[-1].split(" for $")[1].split(";")[0]}
    return {"content": "", "tool_calls": [{"id": "s", "name": "inv__sell", "arguments": json.dumps({"item_id": "A1", "quantity": 3})}]}


def test_an_llm_teacher_calls_module_tools_and_the_row_replays_offline(tmp_path):
    seeds = tmp_path / "one.jsonl"
    seeds.write_text(TASKS.read_text().splitlines()[0] + "\n")
    with FakeOpenAI(responder=shop_agent) as server:
        endpoint = {"fake": {"base_url": server.base_url, "model": "fake-model", "mode": "chat", "max_retries": 0}}
        teacher = {"name": "agent", "policy": "llm", "endpoint": "fake", "formats": ["function_calling"], "max_steps": 3}
        assert run(tmp_path, config(INVENTORY, [teacher], endpoint, seeds)) == 0
    tools = {t["function"]["name"]: t["function"] for t in server.completions[0][1]["tools"]}
    assert tools["inv__sell"]["parameters"]["properties"]["quantity"] == {"type": "integer", "description": "How many units (at least 1, at most what is in stock)."}
    [row] = rows(tmp_path)
    assert row["final_answer"] == "26.97" and row["steps"][0]["observation"] == "sold 3 x USB-C cable for $26.97; 37 left"
    assert row["meta"]["final_state"]["inv"]["sales"] == [{"item_id": "A1", "quantity": 3}]
    assert row["passed"] and row["meta"]["recording"]["calls"] == 2  # the sale and the final snapshot


def write_module(tmp_path, name: str, source: str) -> dict:
    (tmp_path / "mods").mkdir(exist_ok=True)
    (tmp_path / "mods" / f"{name}.py").write_text(textwrap.dedent(source))
    return {"python": {"module": name, "path": str(tmp_path / "mods"), "call_timeout_s": 2}}


def one_task(tmp_path, tools: list[str], steps: list[dict], answer: str) -> Path:
    task = {"domain": "t", "instruction": "Do it.", "tools": tools, "environment": {}, "ground_truth": {"answer": answer},
            "solution": {"steps": steps, "answer": answer}, "difficulty": 1, "meta": {}}
    path = tmp_path / "task.jsonl"
    path.write_text(json.dumps(task) + "\n")
    return path


def test_a_tools_list_with_an_explicit_schema_and_a_shared_state(tmp_path):
    environment = write_module(tmp_path, "counter", """
        class Counter:
            def __init__(self):
                self.n = 0
            def snapshot(self):
                return {"n": self.n}

        def make_state(spec):
            return Counter()

        def bump(state, by):
            state.n += by
            return state.n

        TOOLS = [{"function": bump, "description": "Add to the counter.",
                  "parameters": {"type": "object", "properties": {"by": {"type": "integer", "minimum": 1}}, "required": ["by"]}}]
    """)
    environment["python"]["isolation"] = "shared"
    steps = [{"thought": "bump", "tool": "inv.bump", "arguments": {"by": 2}}]
    data = config(environment, [{"name": "program", "policy": "program", "formats": ["function_calling", "react"]}],
                  seeds=one_task(tmp_path, ["inv.bump"], steps, "{s0}"))
    assert run(tmp_path, data, "synthesize,sample") == 0
    out = rows(tmp_path, "trajectories")
    assert sorted(r["steps"][0]["observation"] for r in out) == ["2", "4"]  # one counter for both episodes


def test_a_module_tool_that_never_returns_loses_its_episode_with_a_named_error(tmp_path):
    environment = write_module(tmp_path, "slow", """
        import time

        def wait(seconds: int) -> str:
            time.sleep(seconds)
            return "done"

        TOOLS = [wait]
    """)
    steps = [{"thought": "wait", "tool": "inv.wait", "arguments": {"seconds": 600}}]
    data = config(environment, [{"name": "program", "policy": "program", "formats": ["react"]}], seeds=one_task(tmp_path, ["inv.wait"], steps, "x"))
    assert run(tmp_path, data) == 0
    [row] = rows(tmp_path)
    assert row["error"] == "step 0: environment 'inv': tool 'wait' did not return within 2s"
    assert row["meta"]["transient"] == ["environment"] and not row["passed"]  # the next run retries it


@pytest.mark.parametrize("name, source, message", [
    ("broken_import", "import not_a_module_anywhere\n",
     "environments.inv.python.module: cannot import 'broken_import' (ModuleNotFoundError: No module named 'not_a_module_anywhere')"),
    ("no_tools", "x = 1\n", "environments.inv.python: module 'no_tools' has no tools (list them in TOOLS or mark them with @tool)"),
    ("bad_schema", "def f(a: int) -> int:\n    return a\nTOOLS = [{'function': f, 'parameters': {'type': 'object', 'properties': {'a': {'type': 7}}}}]\n",
     "environment 'inv': tool 'f': the input schema is not valid JSON Schema"),
])
def test_a_module_that_cannot_serve_fails_before_any_work(tmp_path, capsys, name, source, message):
    environment = write_module(tmp_path, name, source)
    assert run(tmp_path, config(environment)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_schemas_come_from_type_hints_and_docstrings():
    def find(state, query: str, kind: Literal["a", "b"] = "a", limit: int | None = None, tags: list[str] = ()) -> str:
        """Find records.

        Longer text that is not the description.

        Args:
            query: What to look for,
                in plain words.
            kind (str): Which kind.
        Returns:
            the records
        """

    description, parameters = function_schema(find)
    assert description == "Find records."
    assert parameters == {"type": "object", "additionalProperties": False, "required": ["query"], "properties": {
        "query": {"type": "string", "description": "What to look for, in plain words."},
        "kind": {"enum": ["a", "b"], "description": "Which kind.", "default": "a"},
        "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        "tags": {"type": "array", "items": {"type": "string"}}}}


def test_a_huge_result_is_cut_for_the_episode_and_for_the_recording(tmp_path):
    from pipeline.environments import Recordings, Toolbox
    from pipeline.environments.python_module import PythonEnvironment

    write_module(tmp_path, "flood", "def flood() -> str:\n    return 'x' * 3_000_000\nTOOLS = [flood]\n")
    module = PythonEnvironment("inv", {"module": "flood", "path": str(tmp_path / "mods"), "isolation": "per_episode", "call_timeout_s": 5})
    module.open()
    recordings = Recordings.open(tmp_path)
    toolbox = Toolbox({"inv": module}, recordings, "sample")
    with toolbox.env(["inv.flood"], {}, 4000, {}) as env:
        observation = env.tools["inv.flood"].run({}, env)
        attempt = env.recording.attempt
    assert len(observation.content) < 4100 and observation.content.endswith("more characters]")
    [call] = recordings.episode(attempt).calls
    assert call.observation.content.endswith("[truncated: 2000000 more characters]")
    replayed = toolbox.replay_env(["inv.flood"], {}, 4000, {}, recordings.episode(attempt))
    assert replayed.tools["inv.flood"].run({}, replayed) == observation  # replay cuts the recording the same way
