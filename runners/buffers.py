"""Firehose's buffering, as plain data structures with no I/O (unit-tested without a server).

- `Buffer`: records waiting for one destination (a partition prefix, or an error type); it is due
  when it holds `size` bytes or its oldest record is `interval` seconds old, whichever comes first.
- `InFlight`: which source records are durable downstream, so the checkpoint only ever moves past
  records that are in S3 (at-least-once: a crash re-delivers, never skips).
https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

SourceRef = tuple[str, str]  # (shard id, sequence number)
# A wake-up timed to the moment a buffer falls due (runners/loop.py) may land a rounding error short of it:
# that buffer is due, rather than waiting for the next pass.
DUE_SLACK_S = 1e-6


@dataclass
class Buffer:
    key: str
    items: list[bytes] = field(default_factory=list)
    sources: list[SourceRef] = field(default_factory=list)
    size: int = 0
    opened: float = 0.0  # monotonic time of the oldest record
    oldest_arrival: datetime | None = None  # drives !{timestamp:...} in the prefix
    arrivals: list[datetime] = field(default_factory=list)  # each item's own (its error document says it)

    def add(self, item: bytes, source: SourceRef, now: float, arrival: datetime) -> None:
        if not self.items:
            self.opened = now
            self.oldest_arrival = arrival
        self.items.append(item)
        self.sources.append(source)
        self.arrivals.append(arrival)
        self.size += len(item)

    def due(self, now: float, size_limit: int, interval_s: float) -> bool:
        return bool(self.items) and (self.size >= size_limit or now - self.opened >= interval_s - DUE_SLACK_S)


@dataclass
class BufferSet:
    """One buffer per key; `take_due` hands over full or old buffers and forgets them."""

    size_limit: int
    interval_s: float
    buffers: dict[str, Buffer] = field(default_factory=dict)

    def add(self, key: str, item: bytes, source: SourceRef, now: float, arrival: datetime) -> None:
        self.buffers.setdefault(key, Buffer(key)).add(item, source, now, arrival)

    def take_due(self, now: float, force: bool = False) -> list[Buffer]:
        due = [b for b in self.buffers.values() if (force and b.items) or b.due(now, self.size_limit, self.interval_s)]
        for b in due:
            del self.buffers[b.key]
        return due

    @property
    def pending(self) -> int:
        return sum(len(b.items) for b in self.buffers.values())

    def __contains__(self, key: str) -> bool:
        return key in self.buffers

    def __len__(self) -> int:
        return len(self.buffers)


class InFlight:
    """Per shard, the records read but not yet durable, in read order."""

    def __init__(self) -> None:
        self._shards: dict[str, OrderedDict[str, int]] = {}

    def read(self, shard: str, sequence: str) -> None:
        self._shards.setdefault(shard, OrderedDict())[sequence] = 1

    def done(self, source: SourceRef) -> None:
        shard, sequence = source
        pending = self._shards.get(shard)
        if pending is not None and sequence in pending:
            pending[sequence] = 0

    def advance(self) -> dict[str, str]:
        """Pop every shard's durable prefix; return the new checkpoint per shard that moved."""
        moved: dict[str, str] = {}
        for shard, pending in self._shards.items():
            while pending:
                sequence, waiting = next(iter(pending.items()))
                if waiting:
                    break
                pending.popitem(last=False)
                moved[shard] = sequence
        return moved

    @property
    def count(self) -> int:
        return sum(len(p) for p in self._shards.values())
