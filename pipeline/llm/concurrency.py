"""How many requests one endpoint gets at once: an adaptive limit (AIMD) and one shared cool-down.

    pacer = AdaptiveConcurrency(64, adaptive=True, target_latency_s=None)
    rank = await pacer.acquire(priority=first_attempt_time)   # oldest first; rank: requests in flight with it
    sent_at = time.monotonic()
    ... send ...
    pacer.succeeded(sent_at, latency, headroom)  |  pacer.rate_limited(sent_at, rank, retry_after)  |  pacer.failed()

The limit starts at `max_concurrency` and, with `adaptive` on, moves with what the endpoint says:
- a 429 for a request sent as the k-th in flight says the endpoint takes fewer than k: the limit drops to
  at most k - 1 (a burst of 429s lands on the server's cap in one round trip, without halving below it);
- a success whose `x-ratelimit-remaining-*` headroom is smaller than the requests already in flight
  multiplies the limit by DECREASE; a reply slower than `target_latency_s` by target/latency (between 0.5
  and DECREASE: about where the target is met). Once per episode: signals from requests sent before the
  last cut are the same episode;
- each success adds 1/limit (about one more request per round trip; +1 per success, doubling per round trip,
  while the limit is under half of what it was before the last episode), never above the maximum. Not while
  a cool-down runs (having just learnt a cap, the client probes past it about once per Retry-After), and
  not unless more work waits than the limit clears in one Retry-After: a probe that bounces waits that long,
  and should not become the last row of the run.

The cool-down is shared by every request to the endpoint, adaptive or not: a 429 with Retry-After R starts
it (until now + R, R at most MAX_COOL_DOWN_S), and until some request succeeds no request is sent at all. A provider whose window is
exhausted answers every request with 429: the endpoint then goes quiet until Retry-After, instead of every
waiting episode finding the limit out alone. A server that caps requests in flight keeps answering the
others, so the next success ends the quiet spell and only the limit is held.
"""

import asyncio
import heapq
import itertools
import time

DECREASE = 0.9
MINIMUM = 1.0
MAX_COOL_DOWN_S = 60.0  # a Retry-After of an hour (a daily quota) still lets a probe through each minute


class AdaptiveConcurrency:
    def __init__(self, maximum: int, adaptive: bool = True, target_latency_s: float | None = None):
        self.maximum, self.adaptive, self.target_latency_s = float(maximum), adaptive, target_latency_s
        self.limit = self.threshold = self.maximum  # below threshold the limit grows fast (slow start)
        self.in_flight = 0
        self.cool_until = 0.0  # monotonic
        self.last_cut = 0.0  # monotonic time of the last episode of congestion
        self.quiet = False  # a 429 came after the last success: send nothing until a success or cool_until
        self._waiters: list[tuple[float, int, asyncio.Future]] = []  # (priority, order, future): a heap
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._limit_sum, self._samples = 0, 0
        self.latency = 0.0  # a running mean of reply latency
        self.retry_after = 0.0  # the last Retry-After (what a bounced probe costs)

    def _open(self) -> bool:
        if self.quiet and time.monotonic() >= self.cool_until:
            self.quiet = False
        return not self.quiet and self.in_flight < int(self.limit)

    async def acquire(self, priority: float) -> int:
        """Wait for a slot (lowest `priority` first); returns the requests in flight, this one included."""
        if not self._waiters and self._open():
            self.in_flight += 1
            return self.in_flight
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled before it ran
                self._release()
            raise

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._open():
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                self.in_flight += 1
                future.set_result(self.in_flight)

    def succeeded(self, sent_at: float, latency: float, headroom: float | None = None) -> None:
        """A reply came back; `headroom`: how many more requests the provider's window allows, if it said."""
        self._limit_sum += int(self.limit)
        self._samples += 1
        self.latency += (latency - self.latency) * 0.1
        self.quiet = False
        if self.adaptive:
            factor = 1.0
            if self.target_latency_s is not None and latency > self.target_latency_s:
                factor = max(0.5, min(DECREASE, self.target_latency_s / latency))  # about where the target is met
            if headroom is not None and headroom < self.in_flight:
                factor = min(factor, DECREASE)
            if factor < 1.0:
                if self._new_episode(sent_at):
                    self.limit = max(MINIMUM, self.limit * factor)
            elif time.monotonic() >= self.cool_until and len(self._waiters) * self.latency >= self.limit * self.retry_after:
                self.limit = min(self.maximum, self.limit + (1.0 if self.limit < self.threshold else 1.0 / self.limit))
        self._release()

    def rate_limited(self, sent_at: float, rank: int, retry_after: float) -> None:
        """A 429 for the request sent as the `rank`-th in flight: cool the endpoint down for `retry_after`
        seconds (and, adaptive, bring the limit under `rank`)."""
        if self.adaptive:
            self._new_episode(sent_at)
            self.limit = max(MINIMUM, min(self.limit, rank - 1.0))
        retry_after = self.retry_after = min(retry_after, MAX_COOL_DOWN_S)
        now = time.monotonic()
        if now + retry_after > self.cool_until:
            self.cool_until = now + retry_after
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(retry_after, self._wake)  # ends a quiet spell
        self.quiet = True
        self._release()

    def failed(self) -> None:
        """Any other outcome: the slot is free, the limit unchanged."""
        self._release()

    def _new_episode(self, sent_at: float) -> bool:
        """True (and a new episode starts) when the request was sent after the last one began."""
        if sent_at < self.last_cut:
            return False
        self.last_cut = time.monotonic()
        self.threshold = max(MINIMUM, self.limit / 2)
        return True

    def settled(self) -> int:
        """The limit the replies came under, on average (the maximum before any reply)."""
        return round(self._limit_sum / self._samples) if self._samples else int(self.maximum)


def headroom(headers, tokens_per_request: float) -> float | None:
    """Requests the provider's current window still allows, from `x-ratelimit-remaining-requests` and
    `x-ratelimit-remaining-tokens` (OpenAI, and many compatible servers); None without those headers."""
    found = []
    for name, scale in (("x-ratelimit-remaining-requests", 1.0), ("x-ratelimit-remaining-tokens", tokens_per_request)):
        value = headers.get(name)
        if value is not None:
            try:
                found.append(float(value) / max(scale, 1.0))
            except ValueError:
                pass
    return min(found) if found else None
