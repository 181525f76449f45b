"""Transient failures: a request that failed for a reason that is not the model's (a timeout, a refused or
reset connection, a rate limit or 5xx after the retries, a malformed body) is never a final outcome.

The client notes each such failure in every watch that is open in the current task (a context variable,
copied into the tasks a row's work spawns), so a stage learns which of its rows, and the shard job which of
its shards, hold a failure that the next run must retry, without any code in between passing it on:

    with watching() as failures:
        row = await make_row(...)
    if failures:
        row["meta"]["transient"] = kinds(failures)
"""

from contextlib import contextmanager
from contextvars import ContextVar

# What the client classifies as retryable; what remains after the retries is transient.
KINDS = ("timeout", "connection", "rate_limit", "server", "malformed")
_watches: ContextVar[tuple[list, ...]] = ContextVar("trajforge_transient_watches", default=())


@contextmanager
def watching():
    """A list that collects the kinds of transient failures noted inside the block (and its child tasks)."""
    failures: list[str] = []
    token = _watches.set((*_watches.get(), failures))
    try:
        yield failures
    finally:
        _watches.reset(token)


def note(kind: str) -> None:
    for failures in _watches.get():
        failures.append(kind)


def kinds(failures: list[str]) -> list[str]:
    return sorted(set(failures))


def is_transient(row: dict) -> bool:
    """Whether a row holds a transient failure (and so waits for the next run of its stage)."""
    return bool((row.get("meta") or {}).get("transient"))
