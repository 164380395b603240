"""Pace order placements at a requested rate: a token bucket on an injectable clock.

A bucket (rather than a fixed sleep per order) lets the achieved rate catch up after a slow
write instead of drifting below the target, while `burst` caps how far it may catch up.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; starts with one (no opening burst)."""

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._tokens = 1.0
        self._last = clock()

    def reserve(self) -> float:
        """Take one token; return how many seconds the caller must wait before using it."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
