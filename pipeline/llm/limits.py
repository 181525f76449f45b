"""Requests-per-minute and tokens-per-minute limits as token buckets, refilled continuously.

A bucket holds at most a tenth of a minute's allowance, so a limit of 600 rpm allows bursts of 60 requests
and then 10 per second. A request larger than the bucket waits for a full bucket and leaves it in debt.
"""

import asyncio
import time

BURST_FRACTION = 0.1


class Bucket:
    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute * BURST_FRACTION)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` (capped at the capacity) is available; 0 when it is now."""
        self.refill()
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.rate)


class RateLimiter:
    """Waits until one more request of about `tokens` tokens fits both limits (None: no limit)."""

    def __init__(self, rpm: float | None, tpm: float | None):
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm) if tpm else None
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, tokens: int) -> None:
        if not self.active:
            return
        async with self._lock:  # first come, first served
            while True:
                delay = max(self.requests.wait_for(1) if self.requests else 0.0,
                            self.tokens.wait_for(tokens) if self.tokens else 0.0)
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            if self.requests:
                self.requests.level -= 1
            if self.tokens:
                self.tokens.level -= tokens

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once a reply says how many tokens the request really used."""
        if self.tokens:
            self.tokens.level -= actual - estimated
