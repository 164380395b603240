"""Patch: a Kinesis call costs what it reads or writes, not what the stream holds.

MiniStack 1.5.33 (services/kinesis.py) does work proportional to everything a stream holds on every call:
- `_expire_records`, run by GetRecords, PutRecord(s), GetShardIterator, DescribeStream and SubscribeToShard,
  rebuilds every shard's record list to drop records past the retention period: O(records held) per call
  even when nothing has expired (measured in the emulator: an empty GetRecords took 0.5 ms with 10k records
  held, 10 ms with 100k, 94 ms with 800k; a PutRecords of 100 records 3 ms, 21 ms, 115 ms);
- `_start_position` finds AT_/AFTER_SEQUENCE_NUMBER and AT_TIMESTAMP positions by a linear scan
  (GetShardIterator: 2 ms, 22 ms, 227 ms);
- `_expire_iterators`, run by every Kinesis request, walks every iterator handed out in the last 5 minutes
  (each GetRecords hands out one): O(calls made) per call.
This patch replaces those three helpers with ones that give the same answers at O(what changes):
- records are appended in arrival order, so the expired ones are a prefix of each shard's list: it is
  found by walking from the front while records are older than the cutoff and deleted in place, once
  (the same list afterwards as MiniStack's filter leaves, and positions shift exactly as they did);
- within a shard, sequence numbers and arrival timestamps grow with the position (MiniStack allocates
  both from the clock as it appends, on one event loop), so the start positions are found by bisection,
  the index MiniStack's scan returns;
- iterators are kept in the order they were handed out, each with its creation time: expiry walks from
  the oldest and stops at the first one still valid. GetRecords checks an iterator's age itself, so no
  expired iterator is ever honoured, exactly as before.
GetRecords itself (its records, NextShardIterator, MillisBehindLatest) is MiniStack's own code, unchanged.
The one assumption, also AWS's (sequence numbers increase within a shard): the wall clock is not stepped
back while the emulator runs. docs/emulator-patches.md has the upstream report.

Runs in the emulator's interpreter: standard library and MiniStack only.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from typing import Any


def expired_prefix(records: list[dict[str, Any]], cutoff: float) -> int:
    """How many records at the front of a shard (oldest first) arrived before `cutoff`."""
    expired = 0
    while expired < len(records) and records[expired]["ApproximateArrivalTimestamp"] < cutoff:
        expired += 1
    return expired


def _sequence(record: dict[str, Any]) -> str:
    return record["SequenceNumber"]


def _arrival(record: dict[str, Any]) -> float:
    return record["ApproximateArrivalTimestamp"]


def start_position(records: list[dict[str, Any]], it_type: str, seq: str, at_ts: Any) -> int | None:
    """MiniStack's `_start_position` (index where an iterator type starts; None for an unknown type), by bisection."""
    if it_type == "TRIM_HORIZON":
        return 0
    if it_type == "LATEST":
        return len(records)
    if it_type == "AT_SEQUENCE_NUMBER":  # the first record whose sequence number is >= seq
        return bisect_left(records, seq, key=_sequence)
    if it_type == "AFTER_SEQUENCE_NUMBER":  # the first record whose sequence number is > seq
        return bisect_right(records, seq, key=_sequence)
    if it_type == "AT_TIMESTAMP":  # the first record that arrived at or after at_ts
        return bisect_left(records, float(at_ts), key=_arrival)
    return None


def expired_iterators(store: dict[tuple, dict[str, Any]], scope: tuple[str, str], now: float,
                      ttl: float) -> list[tuple]:
    """Keys of the iterators of `scope` (account, region) older than `ttl` in a store of every scope's
    iterators, oldest first: the walk stops at the first one still valid."""
    expired = []
    for key, state in store.items():
        if now - state["created_at"] <= ttl:
            break
        if key[:2] == scope:
            expired.append(key)
    return expired


def apply() -> None:
    from ministack.core.responses import get_account_id, get_region
    from ministack.services import kinesis

    def _expire_records(stream: dict[str, Any]) -> None:
        cutoff = time.time() - stream["RetentionPeriodHours"] * 3600
        for shard in stream["shards"].values():
            records = shard["records"]
            expired = expired_prefix(records, cutoff)
            if expired:
                del records[:expired]

    def _expire_iterators() -> None:
        # MiniStack expires the iterators of the request's account and region; its store holds every
        # scope's, keyed (account, region, token), in the order they were handed out.
        store = kinesis._shard_iterators._data
        scope = (get_account_id(), get_region())
        for key in expired_iterators(store, scope, time.time(), kinesis.ITERATOR_EXPIRY_SECONDS):
            del store[key]

    kinesis._expire_records = _expire_records
    kinesis._start_position = start_position
    kinesis._expire_iterators = _expire_iterators
