"""The host side of the sandbox: the tools that sandboxed code calls (the bridge) and the control channel.

Each test drives one way out through the public interface, as model-written code would: a CodeAct action
(`run_action('code', ...)`), the python tool, or a CodeAct episode. The escape suite proper (what bubblewrap
blocks) is tests/test_sandbox_escapes.py.
"""

import asyncio
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.formats import FORMATS
from pipeline.sample.agent import run_episode
from pipeline.tools import Env, run_action, run_tool
from pipeline.tools.base import Observation, Tool
from tests.helpers import host_processes_with as _host_processes_with
from pipeline.tools.python import run_code
from tests.helpers import make_task
from tests.test_codeact import ScriptedPolicy

SQL_ENV = {"sqlite_setup": "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);"}
SECRET = "sk-trajforge-decoy-0123456789"
HANG_GUARD_S = 60  # a test that would hang fails after this instead


WORKER = ThreadPoolExecutor(1)  # one long-lived thread, as the agent loop's: a sandbox dies with the thread that started it


def act(code: str, env: Env, tools=("python", "sql")) -> Observation:
    """One CodeAct action, bounded so that a hang fails the test instead of stalling the suite."""
    return WORKER.submit(run_action, "code", "python", {"code": code}, env, list(tools)).result(HANG_GUARD_S)


def episode(replies: list[str], task: dict | None = None):
    task = task or make_task("python_compute", 1)
    with Env(task["environment"]) as env:
        return asyncio.run(run_episode(task, ScriptedPolicy(replies), FORMATS["codeact"], env, 8))


def tried(call: str) -> str:
    """Cell code that makes a tool call and prints its result or its refusal."""
    return f"try:\n    print('ok', {call})\nexcept ToolCallError as exc:\n    print('refused', exc)"


# -- sql ------------------------------------------------------------------------------------------------------

def test_sql_from_the_sandbox_cannot_attach_a_host_database(tmp_path):
    host_db = tmp_path / "cache.sqlite"
    with sqlite3.connect(host_db) as conn:
        conn.execute("CREATE TABLE secrets (value TEXT)")
        conn.execute("INSERT INTO secrets VALUES (?)", (SECRET,))
    with Env(SQL_ENV) as env:
        attached = act(tried(f"sql(query=\"ATTACH DATABASE '{host_db}' AS h\")"), env)
        read = act(tried("sql(query='SELECT value FROM h.secrets')"), env)
    assert attached.content.startswith("refused") and "not authorized" in attached.content, attached
    assert read.content.startswith("refused") and SECRET not in read.content, read


@pytest.mark.parametrize("statement", ["ATTACH DATABASE '{path}' AS h", "VACUUM INTO '{path}'"])
def test_sql_from_the_sandbox_cannot_create_files_on_the_host(tmp_path, statement):
    target = tmp_path / "created.db"
    with Env(SQL_ENV) as env:
        result = act(tried(f"sql(query={statement.format(path=target)!r})"), env)
        direct = run_tool("sql", {"query": statement.format(path=target)}, env)
    assert result.content.startswith("refused") and direct.error
    assert not target.exists()


@pytest.mark.parametrize("query", ["PRAGMA journal_mode = WAL", "PRAGMA main.page_size", "PRAGMA temp_store_directory = '/tmp'",
                                   "SELECT load_extension('/tmp/x')", "PRAGMA writable_schema = ON"])
def test_sql_refuses_pragmas_and_extensions(query):
    with Env(SQL_ENV) as env:
        result = run_tool("sql", {"query": query}, env)
        assert result.error and "not authorized" in result.content, result
        assert run_tool("sql", {"query": "SELECT name FROM pragma_table_info('t')"}, env).content == "a"


# -- calculator and the bridge's limits -----------------------------------------------------------------------

@pytest.mark.parametrize("expression", ["((((9**64)**64)**64)**64)**64", "round(1/3, 10**60)"])
def test_a_huge_calculator_expression_from_the_sandbox_is_a_prompt_error(expression):
    with Env() as env:
        result = act(tried(f"calculator(expression={expression!r})"), env, ["python", "calculator"])
    assert result.content.startswith("refused") and "too large" in result.content, result


def slow_tool(seconds: float) -> Tool:
    release = threading.Event()
    return Tool("slow", "waits", {"type": "object"}, lambda args, env: release.wait(seconds) or "late")


def test_a_slow_tool_call_ends_with_the_cells_deadline():
    with Env(sandbox_limits={"timeout_seconds": 2, "tool_call_seconds": 30}) as env:
        result = run_code("slow()", env, {"slow": slow_tool(60)})
        assert result.error and "timed out after 2 s" in result.content, result
        assert run_code("'next'", env).content == "'next'"


def test_a_tool_call_over_its_time_limit_is_an_error_the_code_sees():
    with Env(sandbox_limits={"timeout_seconds": 10, "tool_call_seconds": 0.5}) as env:
        result = run_code(tried("slow()") + "\nprint('went on')", env, {"slow": slow_tool(60)})
    assert result.content == "refused slow: no result within 0.5 s (the per-call time limit); the call was abandoned\nwent on", result


def test_a_tool_call_over_its_output_limit_is_an_error_the_code_sees():
    flood = Tool("flood", "floods", {"type": "object"}, lambda args, env: "x" * 1_000_000)
    code = "try:\n    flood()\nexcept ToolCallError as exc:\n    print(str(exc).count('x'), str(exc).splitlines()[-1])"
    with Env(max_observation_chars=2_000_000, sandbox_limits={"output_bytes": 1000}) as env:
        result = run_code(code, env, {"flood": flood})
    assert result.content == "1000 (flood: the result was cut at the output limit of 1000 characters)", result


# -- the control channel --------------------------------------------------------------------------------------

FORGED_FRAMES = [repr(b'{"done": true}\n'),
                 repr(b'{"done": true, "stdout": 1, "stderr": [], "stdout_bytes": "x", "stderr_bytes": null, "value": 3, "error": {}}\n'),
                 "b'[' * 100_000 + b'\\n'",
                 repr(b'{"call": "sql", "arguments": {"query": 1}, "extra": []}\n')]


def writes_everywhere(frame: str) -> str:
    """Cell code that writes the bytes `frame` (a Python expression) to every descriptor it might have."""
    return f"import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, {frame})\n    except OSError:\n        pass"


@pytest.mark.parametrize("frame", FORGED_FRAMES, ids=["bare-done", "wrong-types", "deep-nesting", "bad-call"])
def test_a_forged_frame_resets_the_sandbox_and_the_episode_goes_on(frame):
    steps = episode(["```python\nsecret = 1\n```", f"```python\n{writes_everywhere(frame)}\n```",
                     "```python\nprint('secret' in globals())\n```", "Final Answer: x"]).steps
    assert "control channel" in (steps[1]["error"] or ""), steps[1]
    assert steps[2]["observation"] == "False" and steps[3]["action_type"] == "final_answer"


def test_after_a_forged_frame_the_python_tool_answers_the_next_call_itself():
    with Env() as env:
        forged = run_tool("python", {"code": writes_everywhere(FORGED_FRAMES[0])}, env)
        after = run_tool("python", {"code": "print('second')"}, env)
    assert forged.error and "control channel" in forged.content
    assert after == Observation("second")


FORGE_A_WELL_FORMED_REPLY = """import gc, time
interpreter = next(o for o in gc.get_objects() if type(o).__name__ == 'Interpreter')
interpreter.channel.send(interpreter.execute("print('FORGED')"))
time.sleep(0.3)
print('real')"""


def test_a_well_formed_forged_reply_is_not_taken_for_the_cells():
    steps = episode([f"```python\n{FORGE_A_WELL_FORMED_REPLY}\n```", "```python\nprint('cell two')\n```", "Final Answer: x"]).steps
    assert "FORGED" not in steps[0]["observation"] and "control channel" in (steps[0]["error"] or ""), steps[0]
    assert steps[1]["observation"] == "cell two"


FORGE_FROM_A_CHILD = """import gc, os, time
interpreter = next(o for o in gc.get_objects() if type(o).__name__ == 'Interpreter')
frame = ('{"done":%d,"stdout":"FORGED","stdout_bytes":6,"stderr":"","stderr_bytes":0,"value":null,"error":null,'
         '"threads":0}\\n' % interpreter.cell)
if os.fork() == 0:
    time.sleep(0.2)
    os.write(interpreter.channel.fd, frame.encode())
    os._exit(0)
os.read(interpreter.channel.fd, 1)  # looks idle: blocked reading the channel, as between cells"""


def test_a_reply_written_by_a_process_the_code_forked_is_refused():
    with Env() as env:
        forged = act(FORGE_FROM_A_CHILD, env, ["python"])
        after = act("print('mine')", env, ["python"])
    assert "FORGED" not in forged.content and "not from the interpreter" in forged.content, forged
    assert after == Observation("mine")


# -- processes and threads the code leaves behind -------------------------------------------------------------

def test_the_code_cannot_switch_off_the_reaping_of_its_processes():
    marker = f"{os.getpid()}.5321"
    code = ("import __main__, os\n__main__.kill_strays = lambda *a: None\n"
            f"if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '{marker}'])\n"
            "    os._exit(0)\nos.wait()\n'started'")
    with Env() as env:
        assert act(code, env, ["python"]).content == "'started'"
        assert _host_processes_with(marker) == []


def test_a_thread_started_in_one_cell_does_not_write_into_the_next():
    start = "import threading, time\ndef later():\n    time.sleep(0.3)\n    print('LEAK')\nthreading.Thread(target=later).start()\n'started'"
    with Env() as env:
        first = act(start, env, ["python"])
        second = act("import time\ntime.sleep(0.6)\nprint('two')", env, ["python"])
    assert first.content.startswith("'started'") and "thread" in first.content and first.error, first
    assert second == Observation("two")


def test_a_frame_written_between_cells_by_a_signal_handler_is_refused():
    arm = ("import signal, gc\ninterpreter = next(o for o in gc.get_objects() if type(o).__name__ == 'Interpreter')\n"
           "def forge(*_):\n    interpreter.channel.send(interpreter.execute(\"print('FORGED')\").replace("
           "f'\"done\":{interpreter.cell}', f'\"done\":{interpreter.cell + 1}'))\n"
           "signal.signal(signal.SIGALRM, forge)\nsignal.setitimer(signal.ITIMER_REAL, 0.2)\n'armed'")
    with Env() as env:
        assert act(arm, env, ["python"]).content == "'armed'"
        time.sleep(0.5)  # the timer fires while the interpreter waits for the next cell
        forged = act("print('mine')", env, ["python"])
        after = act("print('mine')", env, ["python"])
    assert "FORGED" not in forged.content and "between cells" in forged.content, forged
    assert after == Observation("mine")
