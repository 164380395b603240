"""Firehose buffering and checkpoint safety, without any server."""

from __future__ import annotations

from datetime import UTC, datetime

from runners.buffers import BufferSet, InFlight

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_a_buffer_is_due_by_size() -> None:
    bs = BufferSet(size_limit=10, interval_s=60)
    bs.add("p", b"12345", ("s", "1"), now=0.0, arrival=T0)
    assert bs.take_due(now=1.0) == []
    bs.add("p", b"67890", ("s", "2"), now=1.0, arrival=T0)
    (due,) = bs.take_due(now=1.0)
    assert (due.key, due.items, due.size) == ("p", [b"12345", b"67890"], 10)
    assert len(bs) == 0


def test_a_buffer_is_due_by_the_age_of_its_oldest_record() -> None:
    bs = BufferSet(size_limit=1000, interval_s=5)
    bs.add("p", b"a", ("s", "1"), now=100.0, arrival=T0)
    bs.add("p", b"b", ("s", "2"), now=104.0, arrival=T0)
    assert bs.take_due(now=104.9) == []
    (due,) = bs.take_due(now=105.0)
    assert due.items == [b"a", b"b"]
    assert due.oldest_arrival == T0


def test_one_buffer_per_partition_and_each_flushes_alone() -> None:
    bs = BufferSet(size_limit=3, interval_s=60)
    bs.add("day=01/", b"aaa", ("s", "1"), now=0, arrival=T0)
    bs.add("day=02/", b"b", ("s", "2"), now=0, arrival=T0)
    assert [b.key for b in bs.take_due(now=0)] == ["day=01/"]
    assert bs.pending == 1 and "day=02/" in bs
    assert [b.key for b in bs.take_due(now=0, force=True)] == ["day=02/"]
    assert bs.pending == 0


def test_checkpoint_only_moves_past_a_durable_prefix() -> None:
    inflight = InFlight()
    for seq in ("1", "2", "3"):
        inflight.read("s", seq)
    inflight.done(("s", "2"))
    assert inflight.advance() == {}  # 1 is still buffered: 2 must not be checkpointed
    inflight.done(("s", "1"))
    assert inflight.advance() == {"s": "2"}
    inflight.done(("s", "3"))
    assert inflight.advance() == {"s": "3"}
    assert inflight.count == 0


def test_shards_advance_independently() -> None:
    inflight = InFlight()
    inflight.read("a", "10")
    inflight.read("b", "20")
    inflight.done(("b", "20"))
    assert inflight.advance() == {"b": "20"}
    assert inflight.count == 1
