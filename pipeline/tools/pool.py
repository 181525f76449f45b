"""Sandboxes started ahead of need, so that an episode's first cell does not wait for one to start.

One long-lived thread per process starts every sandbox, pooled or not: bubblewrap's --die-with-parent kills a
sandbox when the *thread* that started it ends, and the threads that run tool calls (asyncio's, a test's) may
end before their episode does. Once sandboxes of some limits and isolation have been asked for, the thread
keeps POOL_SIZE of them started (and warmed up by an empty cell) and waiting; a request is served first from
those, else started at once. A sandbox is handed out once and never comes back: the episode discards it and
the thread stops it, so none is reused across episodes and no episode waits for the killing and cleaning up.
"""

import atexit
import os
import threading
from collections import deque
from concurrent.futures import Future
from multiprocessing import util as multiprocessing_util

from pipeline.tools import isolation
from pipeline.tools.launch import Failure, Process
from pipeline.tools.limits import Limits

POOL_SIZE = 2

Key = tuple[Limits, isolation.Isolation]


class Launcher:
    def __init__(self):
        self.lock = threading.Condition()
        self.ready: dict[Key, deque[Process]] = {}
        self.wanted: set[Key] = set()  # kinds to keep ready
        self.requests: deque[tuple[Key, Future]] = deque()
        self.discarded: deque[Process] = deque()
        self.thread: threading.Thread | None = None

    def take(self, limits: Limits, how: isolation.Isolation, pooled: bool = True) -> Process:
        """A started sandbox, from the pool when one is ready (unless not `pooled`: then a fresh one, and the
        pool is not filled for it); Failure when none could be started."""
        key = (limits, how)
        stale = []
        with self.lock:
            if pooled:
                self.wanted.add(key)
            ready = self.ready.get(key, deque()) if pooled else deque()
            while ready and not ready[0].alive():
                stale.append(ready.popleft())
            process = ready.popleft() if ready else None
            future = None
            if process is None:
                future = Future()
                self.requests.append((key, future))
            self._wake()
        for dead in stale:
            dead.stop()
        return process if future is None else future.result()

    def discard(self, process: Process) -> None:
        """Stop `process` soon, in the launcher's thread."""
        with self.lock:
            self.discarded.append(process)
            self._wake()

    def prepare(self, limits: Limits, how: isolation.Isolation) -> None:
        """Keep sandboxes of this kind started ahead from now on (`take` does so on its first call)."""
        with self.lock:
            self.wanted.add((limits, how))
            self._wake()

    def ready_count(self, limits: Limits, how: isolation.Isolation) -> int:
        with self.lock:
            return len(self.ready.get((limits, how), ()))

    def _wake(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="sandbox-launcher", daemon=True)
            self.thread.start()
        self.lock.notify()

    def _next(self) -> tuple[Key, Future | None] | Process:
        """What to do next: start a sandbox for a waiting request, stop a discarded one, or start one for a kind
        whose pool is short. Holds the lock."""
        while True:
            if self.requests:
                return self.requests.popleft()
            if self.discarded:
                return self.discarded.popleft()
            short = next((k for k in self.wanted if len(self.ready.get(k, ())) < POOL_SIZE), None)
            if short is not None:
                return short, None
            self.lock.wait()

    def _run(self) -> None:
        while True:
            with self.lock:
                job = self._next()
            if isinstance(job, Process):
                job.stop()
                continue
            key, future = job
            process = Process(*key)
            try:
                process.start()
                if future is None:
                    process.warm_up()
            except Exception as exc:  # Failure, or a bug: either way the waiting episode gets it, not this thread
                process.stop()
                if future is not None:
                    future.set_exception(exc if isinstance(exc, Failure) else Failure(f"the sandbox did not start: {exc!r}"))
                else:
                    with self.lock:
                        self.wanted.discard(key)  # the pool cannot start these; requests will say why
                continue
            with self.lock:
                if future is None:  # a refill: an episode that asked meanwhile takes it at once
                    waiting = next((r for r in self.requests if r[0] == key), None)
                    if waiting is not None:
                        self.requests.remove(waiting)
                        future = waiting[1]
                    else:
                        self.ready.setdefault(key, deque()).append(process)
            if future is not None:
                future.set_result(process)

    def close(self) -> None:
        """Stop the sandboxes waiting in the pool or to be stopped (at exit: their cgroups are removed)."""
        with self.lock:
            self.wanted.clear()
            waiting = [p for ready in self.ready.values() for p in ready] + list(self.discarded)
            self.ready.clear()
            self.discarded.clear()
        for process in waiting:
            process.stop()


LAUNCHER = Launcher()


def take(limits: Limits, how: isolation.Isolation, pooled: bool = True) -> Process:
    return LAUNCHER.take(limits, how, pooled)


def discard(process: Process) -> None:
    LAUNCHER.discard(process)


def _forget_in_child() -> None:
    """A forked child has none of the launcher's thread, and the pool's sandboxes are the parent's."""
    global LAUNCHER
    LAUNCHER = Launcher()


def _close() -> None:
    LAUNCHER.close()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(_close)
multiprocessing_util.Finalize(None, _close, exitpriority=0)  # a multiprocessing worker ends without atexit
