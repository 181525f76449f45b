"""Code actions read with `ast`: unsafe code is flagged even when the sandbox contained it, invalid calls in
CodeAct code are invalid tool calls as in the other formats, and tool-call ids agree (a message may hold
several calls)."""

import json

import pytest

from pipeline.verify.agreement import step_id_problem
from pipeline.verify.code_safety import code_problems, unsafe_code_problem
from pipeline.verify.replay import tool_call_problem
from tests.verify_suite.action_defects import UNSAFE_CODE
from tests.verify_suite.rows import base, execute

SAFE = [
    "from collections import Counter\nprint(Counter('abca').most_common(1))",
    "import math, json, re, itertools\nprint(math.sqrt(2), json.dumps([1]))",
    "with open('notes.txt', 'w') as f:\n    f.write('x')\nprint(open('notes.txt').read())",
    "print(calculator(expression='2 + 2'))",
    "data = {'environment': 'prod'}\nprint(data['environment'])",
]


@pytest.mark.parametrize("code", UNSAFE_CODE)
def test_unsafe_code_is_flagged(code):
    assert code_problems(code), code


@pytest.mark.parametrize("code", SAFE)
def test_ordinary_code_is_not_flagged(code):
    assert code_problems(code) == []


def test_obfuscated_imports_and_evaluated_data_are_flagged():
    assert code_problems("m = __import__('o' + 's')\nm.system('id')")
    assert code_problems("import importlib\nimportlib.import_module('subprocess')")
    assert code_problems("payload = input()\nexec(payload)")
    assert code_problems("import os as o\nprint(o.environ.get('HF_TOKEN'))")
    assert code_problems("from os import popen\nprint(popen('ls').read())")


@pytest.mark.parametrize("fmt", ["codeact", "react", "function_calling"])
def test_unsafe_code_is_flagged_even_though_the_sandbox_contained_it(fmt):
    row = base("python_compute", 1, fmt)
    step = next(s for s in row["steps"] if s["tool_name"] == "python")
    step["tool_arguments"] = json.dumps({"code": "print(open('/etc/shadow').read())"})
    row = execute(row)  # the real sandbox: an error observation, reproduced by replay
    assert "Error" in step["observation"] or "Traceback" in step["observation"]
    assert "/etc/shadow" in unsafe_code_problem(row)


def _codeact(generator: str, code: str) -> dict:
    row = base(generator, 1, "codeact")
    row["steps"][0]["tool_arguments"] = json.dumps({"code": code})
    return execute(row)


@pytest.mark.parametrize("code,says", [
    ("print(calculate(expression='4 * 26'))", "not defined"),
    ("print(calculator(expr='4 * 26'))", "invalid arguments for calculator"),
    ("print(calculator('4 * 26'))", "keyword arguments only"),
    ("print(calculator(expression=4))", "invalid arguments for calculator"),
    ("print(sql(query='SELECT 1'))", "does not offer"),
])
def test_invalid_calls_inside_codeact_code_are_invalid_tool_calls(code, says):
    problem = tool_call_problem(_codeact("arithmetic", code))
    assert problem and says in problem, problem


def test_names_from_earlier_cells_and_imports_are_defined():
    row = base("python_compute", 1, "codeact")
    assert tool_call_problem(row) is None
    first = json.loads(row["steps"][0]["tool_arguments"])["code"]
    row["steps"][0]["tool_arguments"] = json.dumps({"code": "def total(xs):\n    return sum(xs)\nfrom math import isqrt\n" + first})
    row["steps"].insert(1, {**row["steps"][0], "tool_arguments": json.dumps({"code": "print(total([isqrt(16), 1]))"})})
    assert tool_call_problem(execute(row)) is None


def _parallel_row() -> dict:
    """Two calls in one assistant message, each answered by its own tool message (parallel tool calling)."""
    row = base("arithmetic", 1, "function_calling")
    first, second = row["steps"][0], row["steps"][1]
    calls = row["messages"][2]["tool_calls"] + row["messages"][4]["tool_calls"]
    answers = [row["messages"][3], row["messages"][5]]
    row["messages"][2:6] = [{"role": "assistant", "tool_calls": calls}, *answers]
    for step in row["steps"][2:]:
        step["message_index"] -= 1  # two assistant messages became one
    first["message_index"] = second["message_index"] = 2
    return row


def test_parallel_tool_calls_have_agreeing_ids():
    assert step_id_problem(_parallel_row()) is None


def test_swapped_or_reused_ids_disagree():
    row = _parallel_row()
    row["steps"][0]["tool_call_id"], row["steps"][1]["tool_call_id"] = row["steps"][1]["tool_call_id"], row["steps"][0]["tool_call_id"]
    assert "carry tool_call_id" in step_id_problem(row)
    row = _parallel_row()
    row["messages"][4]["tool_call_id"] = row["messages"][3]["tool_call_id"]
    assert "answer" in step_id_problem(row)
    row = _parallel_row()
    row["messages"][5]["tool_calls"][0]["id"] = row["messages"][2]["tool_calls"][0]["id"]
    row["steps"][2]["tool_call_id"] = row["messages"][5]["tool_calls"][0]["id"]
    assert step_id_problem(row)
