"""Compaction's pure parts: which objects are rewritten, into how many files, named how, and
what a journal left by another run means; and the journal's lease against an in-memory S3."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError

import lake.compact as compact
from common.errors import ConfigError
from lake.compact import (
    LakeObject,
    RowBatcher,
    chunk_sizes,
    compacted_rows,
    journal_key,
    journal_partition,
    object_format,
    output_count,
    output_key,
    parse_day,
    partition,
    partitions_to_compact,
    plan_partition,
    recovery_action,
    sort_rows,
    split_lines,
)
from lake.partitions import Partition, day_partition

P = "orders/year=2026/month=01/day=05/"
MB = 1024 * 1024


def obj(name: str, size: int = 1000, prefix: str = P) -> LakeObject:
    return LakeObject(prefix + name, size, f'"{name}"')


def test_partition_pads_and_names_its_prefix_and_journal() -> None:
    part = partition(2026, 1, "5")
    assert part == Partition("2026", "01", "05")
    assert part.prefix("orders/") == P
    assert journal_key(part, "orders/") == "_compaction/orders/year=2026/month=01/day=05.json"
    assert str(part) == "2026-01-05"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2026, 13, 1), "month must be a number from 1 to 12, got 13"),
        ((2026, 1, "x"), "day must be a number from 1 to 31, got 'x'"),
        ((0, 1, 1), "year must be a number from 1 to 9999, got 0"),
        ((2026, 1, "0\u00b2"), "day must be a number from 1 to 31, got '0\u00b2'"),  # isdigit() took it
        ((2026, 2, 30), "2026-02-30 is not a calendar day"),
    ],
)
def test_partition_rejects_bad_days_in_one_line(args: tuple, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        partition(*args)
    assert str(info.value) == message


def test_parse_day_reads_iso_days_only() -> None:
    assert parse_day("2026-01-05") == Partition("2026", "01", "05")
    with pytest.raises(ConfigError, match="--day must be a UTC day written YYYY-MM-DD, got '05/01/2026'"):
        parse_day("05/01/2026")
    # The CLI has one flag, --day: the error names it, not a --month that does not exist.
    with pytest.raises(ConfigError) as info:
        parse_day("2026-13-01")
    assert str(info.value) == ("--day '2026-13-01': month must be a number from 1 to 12, got '13'; "
                               "write a UTC day as YYYY-MM-DD")
    for odd in ("2026-01-0\u00b2", "\uff12\uff10\uff12\uff16-01-05"):  # superscript, full-width digits
        with pytest.raises(ConfigError, match="--day must be a UTC day written YYYY-MM-DD"):
            parse_day(odd)


@pytest.mark.parametrize(
    ("key", "fmt"),
    [
        (P + "sales-orders-firehose-1-2026-01-05-10-00-00-1a2b.parquet", "parquet"),
        (P + "sales-orders-firehose-1-2026-01-05-10-00-00-1a2b.gz", "jsonl.gz"),
        (P + "sales-orders-firehose-1-2026-01-05-10-00-00-4f1c9a2e-77aa-4b6e-9d2f-0c1d2e3f4a5b", "jsonl"),
        (P + "_SUCCESS", None),
        (P + ".hidden.parquet", None),
        (P + "notes.txt", None),
        (P, None),
    ],
)
def test_object_format_by_name(key: str, fmt: str | None) -> None:
    assert object_format(key) == fmt


def test_day_partition_reads_the_hive_layout_only_under_the_lake_prefix() -> None:
    assert day_partition(P + "a.parquet", "orders/") == Partition("2026", "01", "05")
    assert day_partition("errors/year=2026/month=01/day=05/a.parquet", "orders/") is None
    assert day_partition("orders/year=2026/month=01/a.parquet", "orders/") is None
    assert day_partition(P + "nested/a.parquet", "orders/") is None
    assert journal_partition("_compaction/orders/year=2026/month=01/day=05.json", "orders/") == Partition(
        "2026", "01", "05")
    assert journal_partition("orders/year=2026/month=01/day=05.json", "orders/") is None


def test_plan_takes_small_objects_per_format_and_keeps_large_hidden_and_lonely_ones() -> None:
    small = [obj(f"s-{i}.parquet") for i in (3, 1, 2)]
    big = obj("compacted-old-0001.parquet", 70 * MB)
    lonely_gz = obj("j-1.gz")
    hidden = obj("_SUCCESS", 0)
    plan = plan_partition([*small, big, lonely_gz, hidden], large_bytes=64 * MB)
    assert plan.groups == {"parquet": tuple(sorted(small, key=lambda o: o.key))}
    assert [o.key.rsplit("/", 1)[1] for o in plan.inputs] == ["s-1.parquet", "s-2.parquet", "s-3.parquet"]
    assert [o.key.rsplit("/", 1)[1] for o in plan.kept] == ["_SUCCESS", "compacted-old-0001.parquet", "j-1.gz"]


def test_plan_with_two_formats_compacts_each_on_its_own() -> None:
    objects = [obj("a.parquet"), obj("b.parquet"), obj("c.gz"), obj("d.gz"), obj("e.gz")]
    plan = plan_partition(objects, min_objects=3)
    assert list(plan.groups) == ["jsonl.gz"]
    assert len(plan.groups["jsonl.gz"]) == 3
    assert {o.key for o in plan.kept} == {P + "a.parquet", P + "b.parquet"}


def test_a_single_small_object_is_never_worth_rewriting() -> None:
    plan = plan_partition([obj("a.parquet")], min_objects=1)
    assert plan.groups == {}
    assert plan.kept == (obj("a.parquet"),)


@pytest.mark.parametrize(
    ("total", "target", "sizes"),
    [(0, 10, []), (9, 10, [9]), (10, 10, [10]), (25, 10, [10, 10, 5]), (3, 1, [1, 1, 1])],
)
def test_chunk_sizes_and_output_count(total: int, target: int, sizes: list[int]) -> None:
    assert chunk_sizes(total, target) == sizes
    assert output_count(total, target) == len(sizes)


def test_chunk_sizes_rejects_a_zero_target() -> None:
    with pytest.raises(ConfigError, match="--target-rows must be at least 1, got 0"):
        chunk_sizes(5, 0)


def test_output_key_is_distinct_from_firehose_names_visible_and_carries_its_rows() -> None:
    stamp = datetime(2026, 1, 5, 23, 59, 7, tzinfo=UTC)
    key = output_key(P, stamp, "ab12cd34", 3, 25000, "parquet")
    assert key == P + "~compacted-2026-01-05-23-59-07-ab12cd34-0003-25000rows.parquet"
    assert object_format(key) == "parquet"
    assert compacted_rows(key) == 25000
    gz = output_key(P, stamp, "ab12cd34", 1, 7, "jsonl.gz")
    assert gz.endswith("-0001-7rows.gz") and compacted_rows(gz) == 7 and object_format(gz) == "jsonl.gz"
    assert object_format(output_key(P, stamp, "ab12cd34", 1, 7, "jsonl")) == "jsonl"
    assert compacted_rows(P + "sales-orders-firehose-1-2026-01-05-10-00-00-1a2b.parquet") is None
    assert compacted_rows(P + "compacted-2026-01-05-23-59-07-ab12cd34-0003-25000rows.parquet") == 25000  # older runs


def test_outputs_sort_after_every_input_a_listing_can_meet() -> None:
    """A LIST pages 1,000 keys at a time in key order: a reader on a later page when the inputs go must meet
    the outputs there, so they sort after any Firehose name (a delivery stream's name is [a-zA-Z0-9_.-]),
    a backfill page and an older compacted file."""
    key = output_key(P, datetime(2026, 1, 5, tzinfo=UTC), "ab12cd34", 1, 10, "parquet")
    for other in ("sales-orders-firehose-1-2026-01-05-10-00-00-1a2b.parquet", "zzzz-1-2026-01-05-10-00-00-x.gz",
                  "ZZ-1-2026.parquet", "9-1-2026.parquet", "backfill-20260105T000000Z-s0001-p000001.parquet",
                  "compacted-2026-01-05-23-59-07-ab12cd34-0003-25000rows.parquet"):
        assert key > P + other, other


def test_full_compacted_files_are_settled_and_not_rewritten() -> None:
    full = obj("compacted-2026-01-05-23-59-07-ab12cd34-0001-100rows.parquet")
    partial = obj("compacted-2026-01-05-23-59-07-ab12cd34-0002-40rows.parquet")
    fresh = obj("sales-orders-firehose-1-2026-01-06-00-00-01-9f.parquet")
    plan = plan_partition([full, partial, fresh], target_rows=100)
    assert plan.groups == {"parquet": (partial, fresh)}
    assert plan.kept == (full,)
    assert plan_partition([full, partial], target_rows=100).groups == {}
    assert plan_partition([full, partial], target_rows=1000).groups == {"parquet": (full, partial)}


def test_partitions_to_compact_counts_small_data_objects_only() -> None:
    day6 = "orders/year=2026/month=01/day=06/"
    objects = (
        [obj(f"a{i}.parquet") for i in range(3)]
        + [obj(f"b{i}.parquet", prefix=day6) for i in range(2)]
        + [obj("_SUCCESS", prefix=day6), obj("big.parquet", 100 * MB, prefix=day6)]
        + [LakeObject("errors/processing-failed/2026/01/05/10/x", 10, '"e"')]
    )
    assert partitions_to_compact(objects, "orders/", more_than=2) == [Partition("2026", "01", "05")]
    assert partitions_to_compact(objects, "orders/", more_than=1) == [
        Partition("2026", "01", "05"), Partition("2026", "01", "06")]


def test_recovery_action_respects_the_lease_then_follows_the_state() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    fresh = (now - timedelta(seconds=30)).isoformat()
    stale = (now - timedelta(seconds=1000)).isoformat()
    assert recovery_action({"state": "committed", "updated": fresh}, now, lease_s=900) == "skip"
    assert recovery_action({"state": "committed", "updated": stale}, now, lease_s=900) == "roll-forward"
    assert recovery_action({"state": "writing", "updated": stale}, now, lease_s=900) == "roll-back"
    assert recovery_action({"state": "planning", "updated": stale}, now, lease_s=900) == "discard"
    # a recovery that crashed half way is finished the same way
    assert recovery_action({"state": "recovering-committed", "updated": stale}, now, lease_s=900) == "roll-forward"
    assert recovery_action({"state": "recovering-writing", "updated": stale}, now, lease_s=900) == "roll-back"


def table(ids: range) -> pa.Table:
    return pa.table({"event_id": [f"e{i:03d}" for i in ids], "n": list(ids)})


def test_row_batcher_cuts_exact_chunks_across_inputs_and_keeps_every_row() -> None:
    batcher = RowBatcher(4)
    out = []
    for part in (range(0, 3), range(3, 5), range(5, 14)):
        out += list(batcher.add(table(part)))
    out += list(batcher.finish())
    assert [t.num_rows for t in out] == [4, 4, 4, 2]
    assert [v for t in out for v in t.column("n").to_pylist()] == list(range(14))
    assert list(batcher.finish()) == []


def test_row_batcher_promotes_a_missing_column_to_nulls() -> None:
    batcher = RowBatcher(10)
    list(batcher.add(table(range(2))))
    list(batcher.add(pa.table({"event_id": ["x"], "n": [9], "extra": ["new"]})))
    (merged,) = list(batcher.finish())
    assert merged.column("extra").to_pylist() == [None, None, "new"]


def test_sort_rows_orders_by_event_time_then_sequence() -> None:
    t = pa.table({"event_ts": [3, 1, 1], "sequence_number": ["9", "8", "7"], "event_id": ["c", "b", "a"]})
    assert sort_rows(t).column("event_id").to_pylist() == ["a", "b", "c"]
    assert sort_rows(pa.table({"x": [2, 1]})).column("x").to_pylist() == [2, 1]


def test_split_lines_keeps_each_line_once_with_its_newline() -> None:
    assert split_lines(b'{"a":1}\n{"a":2}\n\n{"a":3}') == [b'{"a":1}\n', b'{"a":2}\n', b'{"a":3}\n']


# --- the journal's lease and its conditional delete, against an in-memory S3 -----------------------


class FakeS3:
    """Just enough S3 for a journal: PutObject, GetObject, HeadObject and DeleteObject with If-Match /
    If-None-Match as AWS evaluates them. `delete_honours_if_match=False` plays an S3 that ignores If-Match
    on DeleteObject; `before_delete` runs between a HeadObject and the DeleteObject that follows it."""

    def __init__(self, delete_honours_if_match: bool = True) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.delete_honours_if_match = delete_honours_if_match
        self.before_delete: Callable[[], None] | None = None
        self.puts = 0

    @staticmethod
    def _fail(code: str, status: int) -> None:
        raise ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "S3")

    def _check(self, key: str, if_match: str | None, if_none_match: str | None = None, head: bool = False) -> None:
        current = self.objects.get(key)
        if if_none_match == "*" and current is not None:
            self._fail("412" if head else "PreconditionFailed", 412)
        if if_match is not None and current is None:
            self._fail("404" if head else "NoSuchKey", 404)
        if if_match is not None and current is not None and current[1] != if_match:
            self._fail("412" if head else "PreconditionFailed", 412)

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, IfMatch: str | None = None,
                   IfNoneMatch: str | None = None, **_: Any) -> dict[str, Any]:
        self._check(Key, IfMatch, IfNoneMatch)
        self.puts += 1
        self.objects[Key] = (Body, f'"etag-{self.puts}"')
        return {"ETag": self.objects[Key][1]}

    def get_object(self, *, Bucket: str, Key: str, IfMatch: str | None = None) -> dict[str, Any]:
        if Key not in self.objects:
            self._fail("NoSuchKey", 404)
        self._check(Key, IfMatch)
        body, etag = self.objects[Key]
        return {"Body": io.BytesIO(body), "ETag": etag}

    def head_object(self, *, Bucket: str, Key: str, IfMatch: str | None = None) -> dict[str, Any]:
        if Key not in self.objects:
            self._fail("404", 404)
        self._check(Key, IfMatch, head=True)
        return {"ETag": self.objects[Key][1]}

    def delete_object(self, *, Bucket: str, Key: str, IfMatch: str | None = None) -> dict[str, Any]:
        if self.before_delete is not None:
            self.before_delete()
        if self.delete_honours_if_match:
            self._check(Key, IfMatch)
        self.objects.pop(Key, None)
        return {}

    def journal(self, key: str) -> dict[str, Any]:
        return json.loads(self.objects[key][0])


class FakeClock(compact.Clock):
    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.t = 0.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> datetime:
        return datetime(2026, 1, 6, 3, 0, tzinfo=UTC) + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.slept.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep()


KEY = "_compaction/orders/year=2026/month=01/day=05.json"


def held_lease(s3: FakeS3, clock: FakeClock, lease_s: float = 900.0) -> compact.Lease:
    lease = compact.Lease(s3, "lake", compact.Journal(KEY, {"run_id": "first"}), lease_s, clock)
    lease.write(state="committed")
    return lease


def take_over(s3: FakeS3, clock: FakeClock) -> None:
    """Another run's compare-and-swap on the journal, as a recovery does."""
    found = compact._read_journal(s3, "lake", KEY)
    assert found is not None
    compact._write_journal(s3, "lake", compact.Journal(KEY, *found), clock, state="recovering-committed",
                           run_id="recover-second")


def test_a_waiting_run_renews_its_lease_every_third_of_it_so_no_one_may_take_it_over() -> None:
    s3 = FakeS3()
    ages: list[str] = []

    def another_run_looks() -> None:  # what a second run decides at each instant of the wait
        ages.append(recovery_action(s3.journal(KEY), clock.now(), lease_s=900))

    clock = FakeClock(another_run_looks)
    lease = held_lease(s3, clock)
    lease.wait(3 * 900)
    assert clock.slept == [300.0] * 9
    assert set(ages) == {"skip"}
    assert s3.journal(KEY)["updated"] == clock.now().isoformat() and s3.journal(KEY)["state"] == "committed"
    puts = s3.puts
    lease.keep()  # renewed just now: no request
    assert s3.puts == puts
    clock.t += 300
    lease.keep()
    assert s3.puts == puts + 1


def test_a_lease_of_zero_waits_in_one_sleep() -> None:
    clock = FakeClock()
    held_lease(FakeS3(), clock, lease_s=0).wait(5)
    assert clock.slept == [5]


def test_a_run_whose_journal_was_taken_over_loses_its_lease_at_the_next_renewal() -> None:
    s3 = FakeS3()
    clock = FakeClock()
    lease = held_lease(s3, clock)
    clock.t += 2 * 900  # suspended past the lease
    take_over(s3, clock)
    with pytest.raises(compact.LockLost, match="belongs to another run"):
        lease.keep()
    with pytest.raises(compact.LockLost):
        lease.wait(1)
    assert s3.journal(KEY)["run_id"] == "recover-second"


@pytest.mark.parametrize("honours", [True, False], ids=["s3-honours-if-match", "s3-ignores-if-match"])
def test_the_journal_is_deleted_only_while_it_is_ours(honours: bool) -> None:
    s3 = FakeS3(delete_honours_if_match=honours)
    clock = FakeClock()
    lease = held_lease(s3, clock)
    take_over(s3, clock)
    with pytest.raises(compact.LockLost, match="now belongs to another run; left it alone"):
        lease.release()
    assert s3.journal(KEY)["run_id"] == "recover-second"

    mine = held_lease(s3 := FakeS3(delete_honours_if_match=honours), clock)
    mine.release()
    assert s3.objects == {}
    mine.release()  # already gone (our earlier attempt, or a recovery that finished our work): fine


@pytest.mark.parametrize(("honours", "kept"), [(True, True), (False, False)],
                         ids=["s3-honours-if-match", "s3-ignores-if-match"])
def test_a_takeover_between_the_reread_and_the_delete(honours: bool, kept: bool) -> None:
    """Where S3 evaluates If-Match on DeleteObject (AWS, MiniStack) the delete is atomic. Where it ignores it,
    a takeover landing between our HeadObject and our DeleteObject is the window that remains: documented."""
    s3 = FakeS3(delete_honours_if_match=honours)
    clock = FakeClock()
    lease = held_lease(s3, clock)
    s3.before_delete = lambda: take_over(s3, clock)
    if kept:
        with pytest.raises(compact.LockLost):
            lease.release()
        assert s3.journal(KEY)["run_id"] == "recover-second"
    else:
        lease.release()
        assert KEY not in s3.objects
