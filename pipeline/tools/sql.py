"""Read-only SQL over the task's SQLite database (built from the environment's `sqlite_setup` script).

The sandboxed code of a CodeAct episode can call this tool, so it runs on the host with no more reach than the
sandbox: the query connection is opened read-only by URI on a private in-memory database, attaches nothing
(`SQLITE_LIMIT_ATTACHED = 0`), and an authorizer lets through only reading: SELECT, reads of the task's tables,
ordinary functions and the schema pragmas. ATTACH, DETACH, VACUUM INTO (an attach underneath), load_extension,
every other pragma and every write are refused. A VM-step budget bounds the time, a length limit the size of
any one value.
"""

import sqlite3
import uuid

from pipeline.tools.base import Env, Tool, ToolError

MAX_ROWS = 50
MAX_VM_STEPS = 5_000_000
MAX_VALUE_BYTES = 1 << 20
# Pragmas that only describe the schema (also reachable as table-valued functions, e.g. pragma_table_info).
READ_ONLY_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
                               "foreign_key_list", "collation_list"})
REFUSED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_READING = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
NOT_AUTHORIZED = "not authorized: the database is read-only, and only SELECT statements over its tables may run"


def _reach(action: int, arg1, arg2) -> int | None:
    """DENY for what reaches outside the database (files, extensions, settings), OK for plain functions and
    schema pragmas, None for the rest (the caller decides)."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in REFUSED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if (arg1 or "").lower() in READ_ONLY_PRAGMAS else sqlite3.SQLITE_DENY
    return None


def _authorize_setup(action: int, arg1, arg2, database, trigger) -> int:
    """The setup script (task data, so untrusted too) may create and fill tables, nothing else."""
    decided = _reach(action, arg1, arg2)
    return sqlite3.SQLITE_OK if decided is None else decided


def _authorize_query(action: int, arg1, arg2, database, trigger) -> int:
    decided = _reach(action, arg1, arg2)
    if decided is not None:
        return decided
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
        return sqlite3.SQLITE_OK  # asked while a pragma function loads the schema; writes fail on this connection anyway
    return sqlite3.SQLITE_OK if action in _READING else sqlite3.SQLITE_DENY


class Database:
    """The task's database: built by a writable connection, queried through a read-only one on the same
    private in-memory file (memdb VFS; it lives as long as a connection to it is open)."""

    def __init__(self, setup: str):
        uri = f"file:/trajforge-sql-{uuid.uuid4().hex}?vfs=memdb"
        builder = sqlite3.connect(uri, uri=True)
        try:
            builder.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            builder.set_authorizer(_authorize_setup)
            try:
                builder.executescript(setup)
            except sqlite3.Error as exc:
                raise ToolError(f"the task's sqlite_setup failed: {exc}") from None
            builder.commit()
            self.conn = sqlite3.connect(uri + "&mode=ro", uri=True, check_same_thread=False)
        finally:
            builder.close()
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        self.conn.execute("PRAGMA temp_store = MEMORY")  # a big sort may not spill into files on the host
        self.conn.set_authorizer(_authorize_query)

    def query(self, text: str) -> tuple[list[str], list[tuple], bool]:
        """(columns, up to MAX_ROWS rows, whether there were more); ToolError for anything but a result."""
        steps = 0

        def budget():
            nonlocal steps
            steps += 1000
            return steps > MAX_VM_STEPS

        self.conn.set_progress_handler(budget, 1000)
        try:
            cursor = self.conn.execute(text)
            if cursor.description is None:
                raise ToolError("the statement returned no rows (the database is read-only; use SELECT)")
            rows = cursor.fetchmany(MAX_ROWS + 1)
        except sqlite3.Error as exc:
            if steps > MAX_VM_STEPS:
                raise ToolError("query took too long and was stopped") from None
            raise ToolError(f"SQL error: {NOT_AUTHORIZED if 'not authorized' in str(exc) else exc}") from None
        finally:
            self.conn.set_progress_handler(None, 0)
        return [d[0] for d in cursor.description], rows[:MAX_ROWS], len(rows) > MAX_ROWS

    def close(self) -> None:
        self.conn.close()


def connect(env: Env) -> Database:
    setup = env.spec.get("sqlite_setup")
    if not setup:
        raise ToolError("this task has no database")
    return Database(setup)


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
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def run_query(args: dict, env: Env) -> str:
    return format_result(*env.resource("sqlite", connect).query(args["query"]))


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
