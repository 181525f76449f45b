"""The persistent LLM response cache, `runs/<name>/cache.sqlite`.

A reply is stored under the hash of the endpoint's model, the mode, the full canonical request body and a
sample key (task id, sample index: without it N samples of one task at temperature > 0 would collapse into
one cached reply). The API key and the base URL never enter the key or the file. Only definitive answers are
stored, never transient failures, so re-running finished work makes zero requests and re-running failed work
retries it.

The same file records what each endpoint has spent (for `budget_usd`) and the Batch API jobs in flight, so
a restart between batch rounds picks up the job instead of paying for it twice. Several processes (`--shard`)
may share it: SQLite in WAL mode with a busy timeout.
"""

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from pipeline.errors import UserError, storage_error
from pipeline.jsonutil import canonical_json

LOCK_TIMEOUT_S = 60
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")  # another connection holds the lock: waiting may help
SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, model TEXT NOT NULL, reply TEXT NOT NULL,
    cost_usd REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS spend (endpoint TEXT PRIMARY KEY, usd REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, requests TEXT NOT NULL, created REAL NOT NULL);
"""


def request_key(model: str, mode: str, body: dict, sample_key) -> str:
    """The cache key of one request: sha256 of model, mode, canonical body and sample key."""
    return hashlib.sha256(canonical_json(["v1", model, mode, body, sample_key]).encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        with self._storage():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self._switch_to_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)

    @contextmanager
    def _storage(self):
        """A storage failure (a full disk, a damaged file, a lock held past the timeout) is a UserError naming
        the file: the reply in hand is simply not stored, and a re-run asks for it again."""
        try:
            yield
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorname", "")
            if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                raise UserError(f"{self.path}: the response cache is damaged ({exc}); move it away and re-run the same "
                                "command (finished shards are kept; replies not in them are requested again)") from None
            if code.startswith(_BUSY):
                raise UserError(f"{self.path}: another process held the response cache locked for {LOCK_TIMEOUT_S} s ({exc}); "
                                "finished shards are kept: re-run the same command to resume") from None
            raise storage_error(self.path, str(exc)) from None
        except OSError as exc:
            raise storage_error(self.path.parent, exc.strerror or str(exc)) from None

    def _switch_to_wal(self) -> None:
        """WAL mode, once per file. Switching takes an exclusive lock and SQLite does not wait for it (no busy
        handler), so worker processes opening a new cache file at the same moment retry here."""
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if time.monotonic() > deadline or not getattr(exc, "sqlite_errorname", "").startswith(_BUSY):
                    raise
                time.sleep(0.05)

    def get(self, key: str) -> dict | None:
        with self._storage():
            row = self.db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except (TypeError, ValueError):  # a damaged entry: asked for again, and the answer replaces it
            return None

    def put(self, key: str, endpoint: str, model: str, reply: dict, cost_usd: float) -> float:
        """Store a reply and add its cost to the endpoint's spend, in one transaction (one commit, and never a
        reply without its cost); returns the spend so far (all processes)."""
        with self._storage():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?)",
                                (key, endpoint, model, canonical_json(reply), cost_usd, time.time()))
                spent = self.db.execute("INSERT INTO spend VALUES (?, ?) ON CONFLICT (endpoint) DO UPDATE SET usd = usd + excluded.usd "
                                        "RETURNING usd", (endpoint, cost_usd)).fetchone()[0]
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # a COMMIT that failed (disk full) has rolled back already
                    with suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
        return spent

    def spent(self, endpoint: str) -> float:
        """USD spent on `endpoint` by every request this run directory has made."""
        with self._storage():
            row = self.db.execute("SELECT usd FROM spend WHERE endpoint = ?", (endpoint,)).fetchone()
        return row[0] if row else 0.0

    def count(self) -> int:
        with self._storage():
            return self.db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def add_batch(self, batch_id: str, endpoint: str, requests: dict) -> None:
        """Remember a submitted batch job: custom_id -> {key, mode} for each request in it."""
        with self._storage():
            self.db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?)", (batch_id, endpoint, canonical_json(requests), time.time()))

    def open_batches(self, endpoint: str) -> list[tuple[str, dict]]:
        with self._storage():
            rows = self.db.execute("SELECT id, requests FROM batches WHERE endpoint = ? ORDER BY created", (endpoint,)).fetchall()
        return [(batch_id, json.loads(requests)) for batch_id, requests in rows]

    def close_batch(self, batch_id: str) -> None:
        with self._storage():
            self.db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))

    def close(self) -> None:
        self.db.close()
