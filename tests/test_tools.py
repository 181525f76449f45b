"""Each tool's behaviour and its error cases, through the same `run` the agent loop uses."""

import pytest

from pipeline.tools import TOOLS, Env, final_state, run_tool
from pipeline.tools.base import Observation, Tool

DOCS = [
    {"id": "d1", "title": "Kamiwort", "text": "Kamiwort is a shrub of the salt flats. Its seeds are dispersed by ants."},
    {"id": "d2", "title": "Lorbloom", "text": "Lorbloom is a vine of the moors. Its seeds are dispersed by finches."},
    {"id": "d3", "title": "Venleaf", "text": "Venleaf grows in the delta and blooms in May."},
]
STORE = {
    "customers": {"C1": {"name": "Ada Lovelace", "email": "ada@example.com"}},
    "orders": {
        "O1": {"customer_id": "C1", "status": "pending", "address": "1 Elm Street", "refunded_cents": 0,
               "items": [{"item_id": "I1", "product": "desk lamp", "price_cents": 2499, "status": "ordered"}]},
        "O2": {"customer_id": "C1", "status": "delivered", "address": "1 Elm Street", "refunded_cents": 0,
               "items": [{"item_id": "I2", "product": "mug", "price_cents": 1100, "status": "ordered"},
                         {"item_id": "I3", "product": "notebook", "price_cents": 450, "status": "ordered"}]},
    },
}


@pytest.fixture
def env():
    with Env({"documents": DOCS, "store": STORE, "sqlite_setup": "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);"}) as e:
        yield e


def ok(result: Observation) -> str:
    assert not result.error, result.content
    return result.content


# -- the tool interface --------------------------------------------------------------------------------------

def test_arguments_are_validated_against_the_schema_before_running(env):
    result = run_tool("calculator", {"expression": 3}, env)
    assert result.error and result.content == "Error: invalid arguments for calculator: expression: 3 is not of type 'string'"
    assert run_tool("search", {"query": "ants", "k": 99}, env).content.endswith("k: 99 is greater than the maximum of 10")
    assert run_tool("sql", {"query": "SELECT 1", "extra": 1}, env).error


def test_unknown_tool_is_an_error_observation_naming_the_available_ones(env):
    result = run_tool("rm_rf", {}, env)
    assert result.error and "unknown tool 'rm_rf'" in result.content and "python" in result.content


def test_a_crashing_tool_becomes_an_error_observation():
    def explode(args, env):
        raise KeyError("boom")

    result = Tool("explode", "", {"type": "object"}, explode).run({}, Env())
    assert result == Observation("Error: explode failed: KeyError: 'boom'", error=True)


def test_observations_are_cut_at_the_configured_size_saying_so():
    with Env(max_observation_chars=120) as small:
        result = run_tool("python", {"code": "print('y' * 1000)"}, small)
    assert result.content == "y" * 74 + "\n[output truncated: the code wrote 1001 bytes]"
    with Env({"documents": [{**DOCS[0], "text": "z" * 500}]}, max_observation_chars=120) as small:
        result = run_tool("lookup", {"id": "d1"}, small)
    assert result.content == "[d1] Kamiwort: " + "z" * 105 + "\n[truncated: 395 more characters]"


def test_every_tool_has_an_openai_function_schema():
    for name, tool in TOOLS.items():
        spec = tool.spec()
        assert spec["type"] == "function" and spec["function"]["name"] == name
        assert spec["function"]["parameters"]["type"] == "object" and spec["function"]["description"]


# -- calculator, sql, lookup, convert, date -----------------------------------------------------------------

def test_calculator_is_exact_and_refuses_anything_but_arithmetic(env):
    assert ok(run_tool("calculator", {"expression": "0.1 + 0.2"}, env)) == "0.3"
    assert ok(run_tool("calculator", {"expression": "2 ** 10 // 3"}, env)) == "341"
    assert run_tool("calculator", {"expression": "__import__('os').system('id')"}, env).error
    assert run_tool("calculator", {"expression": "1 / 0"}, env).content == "Error: division by zero"
    assert "too large" in run_tool("calculator", {"expression": "9 ** 999"}, env).content


def test_sql_answers_queries_and_stays_read_only(env):
    assert ok(run_tool("sql", {"query": "SELECT SUM(x) FROM t"}, env)) == "6"
    assert "read-only" in run_tool("sql", {"query": "DELETE FROM t"}, env).content
    assert ok(run_tool("sql", {"query": "SELECT COUNT(*) FROM t"}, env)) == "3"
    assert run_tool("sql", {"query": "SELEC"}, env).content.startswith("Error: SQL error")


def test_lookup_reads_by_id_or_title_and_suggests_close_titles(env):
    assert ok(run_tool("lookup", {"id": "d2"}, env)).startswith("[d2] Lorbloom:")
    assert ok(run_tool("lookup", {"id": "venleaf"}, env)).startswith("[d3] Venleaf:")
    assert "Close matches: Kamiwort" in run_tool("lookup", {"id": "Kamiwart"}, env).content


def test_convert_and_date(env):
    assert ok(run_tool("convert", {"value": 1, "from_unit": "mile", "to_unit": "km"}, env)) == "1.60934 km"
    assert "different dimensions" in run_tool("convert", {"value": 1, "from_unit": "kg", "to_unit": "m"}, env).content
    assert ok(run_tool("date", {"operation": "weekday", "date": "2024-02-29"}, env)) == "Thursday"
    assert run_tool("date", {"operation": "add_days", "date": "2024-02-30", "days": 1}, env).error


# -- search ---------------------------------------------------------------------------------------------------

def test_search_returns_the_best_documents_with_ids_best_first(env):
    lines = ok(run_tool("search", {"query": "seeds dispersed by finches"}, env)).splitlines()
    assert lines[0].startswith("[d2] Lorbloom:") and "finches" in lines[0]
    assert [line.split("]")[0] for line in lines] == ["[d2", "[d1"]


def test_search_honours_k_and_takes_free_text_without_fts_syntax_errors(env):
    assert len(ok(run_tool("search", {"query": "seeds", "k": 1}, env)).splitlines()) == 1
    assert ok(run_tool("search", {"query": 'blooms" AND (May* OR'}, env)).startswith("[d3]")
    assert ok(run_tool("search", {"query": "zebra"}, env)) == "No documents match 'zebra'."
    assert run_tool("search", {"query": "?!"}, env).content == "Error: the query '?!' has no words to search for"


def test_search_without_documents_is_an_error():
    assert run_tool("search", {"query": "x"}, Env()).content == "Error: this task has no documents to search"


# -- the store --------------------------------------------------------------------------------------------------

def test_store_reads_customers_and_orders(env):
    assert ok(run_tool("find_customer", {"email": "ADA@example.com"}, env)) == "C1: Ada Lovelace <ada@example.com>"
    assert ok(run_tool("list_orders", {"customer_id": "C1"}, env)) == "O1 (pending): desk lamp - $24.99\nO2 (delivered): mug, notebook - $15.50"
    assert "- I3: notebook, $4.50 (ordered)" in ok(run_tool("get_order", {"order_id": "O2"}, env))
    assert run_tool("get_order", {"order_id": "O9"}, env).content == "Error: no order with id 'O9'"


def test_store_actions_change_the_state_under_the_policy(env):
    assert ok(run_tool("cancel_order", {"order_id": "O1", "reason": "no longer needed"}, env)).endswith("$24.99 refunded.")
    assert run_tool("cancel_order", {"order_id": "O1", "reason": "no longer needed"}, env).content.endswith("only pending orders can be cancelled")
    assert ok(run_tool("return_items", {"order_id": "O2", "item_ids": ["I2"]}, env)).endswith("$11.00 refunded.")
    assert run_tool("return_items", {"order_id": "O2", "item_ids": ["I2"]}, env).content == "Error: item I2 was already returned"
    assert "only pending orders can change address" in run_tool("update_address", {"order_id": "O2", "address": "x"}, env).content
    orders = final_state(env)["store"]["orders"]
    assert (orders["O1"]["status"], orders["O1"]["refunded_cents"]) == ("cancelled", 2499)
    assert (orders["O2"]["status"], orders["O2"]["refunded_cents"], orders["O2"]["items"][0]["status"]) == ("delivered", 1100, "returned")
    assert STORE["orders"]["O1"]["status"] == "pending"  # the task's environment spec is never changed


def test_returning_every_item_marks_the_order_returned(env):
    ok(run_tool("return_items", {"order_id": "O2", "item_ids": ["I2", "I3"]}, env))
    assert final_state(env)["store"]["orders"]["O2"]["status"] == "returned"


def test_final_state_includes_a_store_no_action_touched():
    with Env({"store": STORE}) as untouched:
        assert final_state(untouched) == {"store": STORE}
    with Env({"documents": DOCS}) as stateless:
        assert final_state(stateless) == {}


# -- python -------------------------------------------------------------------------------------------------------

def test_python_returns_stdout_stderr_and_the_last_value(env):
    result = ok(run_tool("python", {"code": "import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7"}, env))
    assert result == "out\n[stderr]\nerr\n42"
    assert ok(run_tool("python", {"code": "x = 1"}, env)) == "(no output)"


def test_python_state_persists_within_an_episode_only(env):
    ok(run_tool("python", {"code": "counter = 41"}, env))
    assert ok(run_tool("python", {"code": "counter + 1"}, env)) == "42"
    with Env() as other:
        assert "NameError" in run_tool("python", {"code": "counter"}, other).content


def test_python_crash_is_an_error_observation_with_the_output_kept(env):
    result = run_tool("python", {"code": "print('before')\n{}['missing']"}, env)
    assert result.error and result.content.startswith("before\nTraceback (most recent call last):")
    assert result.content.endswith("KeyError: 'missing'") and "sandbox_server" not in result.content


def test_python_hang_is_an_error_and_the_episode_goes_on():
    with Env(sandbox_limits={"timeout_seconds": 1, "cpu_seconds": 5}) as env:
        result = run_tool("python", {"code": "import time\ntime.sleep(30)"}, env)
        assert result.error and "timed out after 1 s" in result.content and "variables from earlier cells are gone" in result.content
        assert ok(run_tool("python", {"code": "'next'"}, env)) == "'next'"


def test_python_output_flood_is_cut_and_says_how_much_there_was(env):
    result = run_tool("python", {"code": "for i in range(200000):\n    print(i)"}, env)
    assert result.content.endswith("\n[output truncated: the code wrote 1288890 bytes]")
    assert len(result.content) == env.max_observation_chars
