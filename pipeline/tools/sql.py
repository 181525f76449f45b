"""Read-only SQL over the task's SQLite database (built from the environment's `sqlite_setup` script)."""

import sqlite3

from pipeline.tools.base import Env, Tool, ToolError

MAX_ROWS = 50
MAX_VM_STEPS = 5_000_000


def connect(env: Env) -> sqlite3.Connection:
    """An in-memory database built from the task's setup script, then switched to query-only."""
    setup = env.spec.get("sqlite_setup")
    if not setup:
        raise ToolError("this task has no database")
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.executescript(setup)
    conn.execute("PRAGMA query_only = ON")
    return conn


def format_result(columns: list[str], rows: list[tuple], more: bool) -> str:
    """A single value prints bare; anything else as a pipe table with a header."""
    if len(rows) == 1 and len(columns) == 1 and not more:
        return _cell(rows[0][0])
    lines = [" | ".join(columns)] + [" | ".join(_cell(v) for v in row) for row in rows]
    lines.append(f"({len(rows)} rows{', more not shown' if more else ''})")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def run_query(args: dict, env: Env) -> str:
    conn = env.resource("sqlite", connect)
    steps = 0

    def budget():
        nonlocal steps
        steps += 1000
        return steps > MAX_VM_STEPS

    conn.set_progress_handler(budget, 1000)
    try:
        cursor = conn.execute(args["query"])
        if cursor.description is None:
            raise ToolError("the statement returned no rows (the database is read-only; use SELECT)")
        rows = cursor.fetchmany(MAX_ROWS + 1)
    except sqlite3.OperationalError as exc:
        if steps > MAX_VM_STEPS:
            raise ToolError("query took too long and was stopped") from None
        raise ToolError(f"SQL error: {exc}") from None
    except sqlite3.Error as exc:
        raise ToolError(f"SQL error: {exc}") from None
    finally:
        conn.set_progress_handler(None, 0)
    columns = [d[0] for d in cursor.description]
    return format_result(columns, rows[:MAX_ROWS], len(rows) > MAX_ROWS)


TOOL = Tool(
    name="sql",
    description="Run a read-only SQL (SQLite) query against the task's database and return the result rows.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string", "description": "A SELECT statement."}},
        "required": ["query"],
        "additionalProperties": False,
    },
    fn=run_query,
)
