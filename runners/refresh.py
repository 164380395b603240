"""A value read again at most every so often: shard discovery, which must not run on every poll.

AWS rate-limits discovery far below the read rate (DynamoDB Streams DescribeStream: 10 calls/s
per account; Kinesis ListShards: 100/s per stream), and the KCL syncs shards every 60 s rather
than per GetRecords. The runners discover shards on a timer, and at once when a shard has been
read to its end (its children are due) or a pass failed (the stream may be gone or re-created).
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-dynamodb-streams
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

SHARD_REFRESH_S = 10.0


class Refreshing(Generic[T]):
    """`load()`'s result, reloaded when `interval` seconds have passed or after `expire()`."""

    def __init__(self, load: Callable[[], T], interval: float = SHARD_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load, self._interval, self._clock = load, interval, clock
        self._value: T | None = None
        self._loaded_at = 0.0
        self.loads = 0

    def get(self) -> T:
        now = self._clock()
        if self._value is None or now - self._loaded_at >= self._interval:
            self._value = self._load()  # a failed load keeps nothing: the next get() tries again
            self._loaded_at = now
            self.loads += 1
        return self._value

    def expire(self) -> None:
        self._value = None
