"""Recorded tool I/O: every call to a tool that is not a deterministic built-in, in `runs/<name>/recordings.sqlite`.

Each episode (one Env) records under its own attempt id, which the trajectory row keeps in
`meta.recording.attempt`; a call is (tool, canonical arguments) -> observation, error flag, seconds, in call
order. `kind` is `call` for a tool call and `snapshot` for an environment's final state. The tool listings
(names, descriptions, input schemas) are stored beside the calls, so verify can check and replay a run
offline, without the servers, years later.

The read side is the API that replay and step-level branching share:

    recordings = Recordings.open(run_dir)
    episode = recordings.episode(row["meta"]["recording"]["attempt"])
    episode.answer("inv.get_item", {"item_id": "A1"})   # the next recorded Observation of that call, or None

Several processes may write one file (`--shard`, worker processes): SQLite in WAL mode with a busy timeout,
as the response cache.
"""

import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import storage_error
from pipeline.jsonutil import canonical_json
from pipeline.tools.base import Observation

FILE = "recordings.sqlite"
LOCK_TIMEOUT_S = 60
SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    attempt TEXT NOT NULL, seq INTEGER NOT NULL, stage TEXT NOT NULL, episode TEXT NOT NULL, kind TEXT NOT NULL,
    tool TEXT NOT NULL, arguments TEXT NOT NULL, observation TEXT NOT NULL, error INTEGER NOT NULL,
    seconds REAL NOT NULL, created REAL NOT NULL, PRIMARY KEY (attempt, seq));
CREATE TABLE IF NOT EXISTS listings (
    environment TEXT PRIMARY KEY, source TEXT NOT NULL, tools TEXT NOT NULL, listed REAL NOT NULL);
"""


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:  # switching to WAL takes an exclusive lock that SQLite does not wait for
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


@dataclass(frozen=True)
class RecordedCall:
    seq: int
    kind: str
    tool: str
    arguments: str  # canonical JSON
    observation: Observation
    seconds: float


class Recordings:
    """One run's recordings file, for writing (a stage's episodes) and reading (replay)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self._storage():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = _connect(self.path)
        self._lock = threading.Lock()

    @contextmanager
    def _storage(self):
        """A write that fails (a full disk) stops the stage with one line naming the file, as the response
        cache does, rather than becoming part of a row."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(self.path, getattr(exc, "strerror", None) or str(exc)) from None

    @classmethod
    def open(cls, run_dir) -> "Recordings":
        return cls(Path(run_dir) / FILE)

    def exists(self) -> bool:
        return self.path.exists()

    def close(self) -> None:
        self.db.close()

    def writer(self, stage: str, episode: str) -> "EpisodeRecorder":
        return EpisodeRecorder(self, stage, episode)

    def write(self, attempt: str, seq: int, stage: str, episode: str, kind: str, tool: str, arguments, observation: Observation,
              seconds: float) -> None:
        with self._lock, self._storage():
            self.db.execute("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (attempt, seq, stage, episode, kind, tool, canonical_json(arguments), observation.content,
                             int(observation.error), round(seconds, 6), time.time()))

    def save_listing(self, environment: str, source: str, tools: list[dict]) -> None:
        with self._lock, self._storage():
            self.db.execute("INSERT OR REPLACE INTO listings VALUES (?, ?, ?, ?)", (environment, source, canonical_json(tools), time.time()))

    def listing(self, environment: str) -> tuple[str, list[dict]] | None:
        """(source, tools) as listed when the environment was last opened for this run, or None."""
        found = self.db.execute("SELECT source, tools FROM listings WHERE environment = ?", (environment,)).fetchone()
        return (found[0], json.loads(found[1])) if found else None

    def episode(self, attempt: str) -> "EpisodeRecording":
        rows = self.db.execute("SELECT seq, kind, tool, arguments, observation, error, seconds FROM calls WHERE attempt = ? ORDER BY seq",
                               (attempt,)).fetchall()
        return EpisodeRecording(attempt, [RecordedCall(seq, kind, tool, arguments, Observation(text, bool(error)), seconds)
                                          for seq, kind, tool, arguments, text, error, seconds in rows])

    def export(self, attempts: set[str], folder: Path) -> int:
        """The calls of `attempts` as JSON lines in `folder`/calls.jsonl and every tool listing in
        `folder`/listings.json (what a published dataset carries); returns how many calls."""
        folder.mkdir(parents=True, exist_ok=True)
        keys = ("attempt", "seq", "stage", "kind", "tool", "arguments", "observation", "error", "seconds")
        count = 0
        with open(folder / "calls.jsonl", "w") as out:
            for row in self.db.execute(f"SELECT {', '.join(keys)} FROM calls ORDER BY attempt, seq"):
                if row[0] in attempts:
                    record = dict(zip(keys, row), arguments=json.loads(row[5]), error=bool(row[7]))
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count += 1
        listings = {name: {"source": source, "tools": json.loads(tools)}
                    for name, source, tools in self.db.execute("SELECT environment, source, tools FROM listings ORDER BY environment")}
        (folder / "listings.json").write_text(json.dumps(listings, indent=2, ensure_ascii=False) + "\n")
        return count


def export_for_dataset(run_dir: Path, data_files: list[Path], folder: Path) -> int | None:
    """The recordings of the rows in `data_files` (curated Parquet) into `folder`; None when the run has none."""
    import pyarrow.parquet as pq

    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    attempts = set()
    for data in data_files:
        for meta in pq.read_table(data, columns=["meta"]).column("meta").to_pylist():
            recording = (json.loads(meta) if isinstance(meta, str) else meta or {}).get("recording")
            if recording:
                attempts.add(recording["attempt"])
    recordings = Recordings(path)
    try:
        return recordings.export(attempts, folder)
    finally:
        recordings.close()


class EpisodeRecorder:
    """The write side for one episode: an attempt id and the order of its calls (parallel calls run in threads)."""

    def __init__(self, recordings: Recordings, stage: str, episode: str):
        self.recordings, self.stage, self.episode = recordings, stage, episode
        self.attempt = uuid.uuid4().hex
        self.calls = 0
        self._lock = threading.Lock()

    def write(self, tool: str, arguments, observation: Observation, seconds: float, kind: str = "call") -> None:
        with self._lock:
            seq = self.calls
            self.calls += 1
        self.recordings.write(self.attempt, seq, self.stage, self.episode, kind, tool, arguments, observation, seconds)

    def meta(self) -> dict:
        """What the row keeps to find its recording."""
        return {"attempt": self.attempt, "calls": self.calls}


class EpisodeRecording:
    """The recorded calls of one episode, answered in order: the n-th lookup of (tool, arguments) gets the n-th
    recorded call with those arguments, so a stateful tool called twice replays both answers."""

    def __init__(self, attempt: str, calls: list[RecordedCall]):
        self.attempt, self.calls = attempt, calls
        self._used: set[int] = set()
        self._lock = threading.Lock()

    def answer(self, tool: str, arguments, kind: str = "call") -> Observation | None:
        wanted = canonical_json(arguments)
        with self._lock:
            for call in self.calls:
                if call.seq not in self._used and call.kind == kind and call.tool == tool and call.arguments == wanted:
                    self._used.add(call.seq)
                    return call.observation
        return None
