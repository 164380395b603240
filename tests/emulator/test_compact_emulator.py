"""Compaction against the emulator's S3: same rows after, fewer objects, a concurrent write survives,
a reader never sees fewer rows at any step, and a crash on either side of the commit recovers."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

import lake.compact as compact
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from common.errors import TerminalError
from lake.schema import ROW_SCHEMA

DAY = "orders/year=2026/month=01/day=05/"
OTHER_DAY = "orders/year=2026/month=01/day=06/"
JOURNAL = "_compaction/orders/year=2026/month=01/day=05.json"


def rows(first: int, count: int) -> list[dict[str, Any]]:
    base = datetime(2026, 1, 5, 10, 0, 0)
    out = []
    for n in range(first, first + count):
        ts = base + timedelta(seconds=n)
        out.append({
            "order_id": f"o{n % 7}", "customer_id": "c1", "customer_name": "Ana Lima", "customer_region": "EU-WEST",
            "product_id": "p1", "product_name": "Eco Kettle", "category": "Home & Kitchen", "quantity": 1,
            "unit_price": Decimal("19.99"), "discount": Decimal("0.0000"), "order_total": Decimal("19.99"),
            "currency": "USD", "status": "PAID", "payment_method": "card", "channel": "web",
            "order_ts": base, "updated_ts": ts, "event_type": "MODIFY", "event_id": f"evt-{n:04d}",
            "sequence_number": str(10**20 + n), "event_ts": ts, "arrival_ts": ts + timedelta(milliseconds=300),
            "is_deleted": False,
        })
    return out


def parquet(batch: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(batch, schema=ROW_SCHEMA), sink)
    return sink.getvalue()


def firehose_name(n: int) -> str:
    return f"sales-orders-firehose-1-2026-01-05-10-00-{n:02d}-{n:08d}-0000-4000-8000-000000000000.parquet"


@pytest.fixture
def lake(emulator_settings: Settings, emulator_clients: Clients, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """A fresh versioned lake bucket with 12 small objects of 5 rows on one day (event 7 delivered
    twice, as at-least-once allows), one object on the next day and a _SUCCESS marker."""
    bucket = "compact-" + request.node.name.replace("_", "-")[:40].rstrip("-")
    settings = with_overrides(emulator_settings, lake_bucket=bucket)
    s3 = emulator_clients.s3
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(12):
        batch = rows(i * 5, 5) + (rows(7, 1) if i == 11 else [])
        s3.put_object(Bucket=bucket, Key=DAY + firehose_name(i), Body=parquet(batch))
    s3.put_object(Bucket=bucket, Key=DAY + "_SUCCESS", Body=b"")
    s3.put_object(Bucket=bucket, Key=OTHER_DAY + firehose_name(0), Body=parquet(rows(500, 3)))
    try:
        yield settings
    finally:
        versions = s3.list_object_versions(Bucket=bucket)
        for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        s3.delete_bucket(Bucket=bucket)


def keys(clients: Clients, bucket: str, prefix: str) -> list[str]:
    return sorted(o.key for o in compact.list_objects(clients.s3, bucket, prefix))


def event_ids(clients: Clients, bucket: str, prefix: str = DAY) -> Counter[str]:
    """What a listing reader sees: every data object's event_ids, with multiplicity."""
    seen: Counter[str] = Counter()
    for key in keys(clients, bucket, prefix):
        if compact.object_format(key) == "parquet":
            body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            seen.update(pq.read_table(io.BytesIO(body)).column("event_id").to_pylist())
    return seen


ORIGINAL = Counter({f"evt-{n:04d}": 1 for n in range(60)} | {"evt-0007": 2})


def test_compaction_keeps_the_same_rows_in_fewer_objects(lake: Settings, emulator_clients: Clients) -> None:
    bucket = lake.lake_bucket
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    result = compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5,
                                       console=Console(capture=True), target_rows=25)
    assert (result.inputs, result.rows, result.kept, len(result.outputs)) == (12, 61, 1, 3)
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    assert keys(emulator_clients, bucket, DAY) == sorted([DAY + "_SUCCESS", *result.outputs])
    sizes = [pq.read_metadata(io.BytesIO(emulator_clients.s3.get_object(Bucket=bucket, Key=k)["Body"].read()))
             for k in result.outputs]
    assert [m.num_rows for m in sizes] == [25, 25, 11]
    assert all(m.schema.to_arrow_schema() == ROW_SCHEMA for m in sizes)
    assert keys(emulator_clients, bucket, OTHER_DAY) == [OTHER_DAY + firehose_name(0)]
    assert keys(emulator_clients, bucket, "_compaction/") == []
    # Again with the same target: two files are full (settled), one is left alone: nothing to do.
    again = compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5,
                                      console=Console(capture=True), target_rows=25)
    assert again.inputs == 0 and again.skipped == "fewer than 2 small objects of one format to rewrite"
    assert keys(emulator_clients, bucket, DAY) == sorted([DAY + "_SUCCESS", *result.outputs])


def test_an_object_written_during_compaction_survives(lake: Settings, emulator_clients: Clients,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = lake.lake_bucket
    late_key = DAY + firehose_name(99)
    real_read = compact._read_input

    def read_then_firehose_writes(s3: Any, bucket_: str, obj: compact.LakeObject) -> bytes:
        if obj.key.endswith(firehose_name(0)):  # after the snapshot, before any delete
            s3.put_object(Bucket=bucket_, Key=late_key, Body=parquet(rows(900, 4)))
        return real_read(s3, bucket_, obj)

    monkeypatch.setattr(compact, "_read_input", read_then_firehose_writes)
    result = compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5,
                                       console=Console(capture=True), target_rows=1000)
    assert result.inputs == 12 and len(result.outputs) == 1
    assert late_key in keys(emulator_clients, bucket, DAY)
    assert event_ids(emulator_clients, bucket) == ORIGINAL + Counter(f"evt-{n:04d}" for n in range(900, 904))


class Hooked:
    """An S3 client that calls `after(operation)` after each write, as a reader racing the compactor."""

    def __init__(self, inner: Any, after: Callable[[str, dict[str, Any]], None]) -> None:
        self._inner, self._after = inner, after

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in ("put_object", "delete_objects", "delete_object"):
            return attr

        def call(**kwargs: Any) -> Any:
            response = attr(**kwargs)
            self._after(name, kwargs)
            return response

        return call


class HookedClients(Clients):
    def __init__(self, settings: Settings, after: Callable[[str, dict[str, Any]], None]) -> None:
        super().__init__(settings)
        self._after = after

    def client(self, service: str, *, validated: bool = True) -> Any:
        inner = super().client(service, validated=validated)
        return Hooked(inner, self._after) if service == "s3" else inner


def test_a_listing_reader_never_sees_fewer_rows_at_any_step(lake: Settings, emulator_clients: Clients) -> None:
    bucket = lake.lake_bucket
    views: list[Counter[str]] = []
    hooked = HookedClients(lake, lambda op, kw: views.append(event_ids(emulator_clients, bucket)))
    result = compact.compact_partition(hooked, lake, year=2026, month=1, day=5, console=Console(capture=True),
                                       target_rows=20)
    assert len(result.outputs) == 4
    # journal planning + writing, 4 outputs, journal committed, one DeleteObjects, journal deleted
    assert len(views) == 9
    assert all(not (ORIGINAL - view) for view in views)  # every original row visible at every step
    assert max(sum(v.values()) for v in views) == 2 * 61  # the documented duplicate window
    assert views[-1] == ORIGINAL


def test_a_crash_after_the_commit_is_rolled_forward(lake: Settings, emulator_clients: Clients,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = lake.lake_bucket
    real_delete = compact._delete_keys

    def crash(*args: Any) -> None:
        raise KeyboardInterrupt  # the process dies between the commit and the deletes

    monkeypatch.setattr(compact, "_delete_keys", crash)
    with pytest.raises(KeyboardInterrupt):
        compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5, console=Console(capture=True),
                                  target_rows=1000)
    journal = json.loads(emulator_clients.s3.get_object(Bucket=bucket, Key=JOURNAL)["Body"].read())
    assert journal["state"] == "committed" and len(journal["inputs"]) == 12
    assert event_ids(emulator_clients, bucket) == ORIGINAL + ORIGINAL  # duplicates, never losses

    monkeypatch.setattr(compact, "_delete_keys", real_delete)
    console = Console(capture=True)
    live = compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5, console=console)
    assert live.skipped.startswith("run ") and live.recovered == ""  # within the lease: hands off
    result = compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5, console=console,
                                       lease_s=0)
    assert result.recovered == "roll-forward"
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    assert keys(emulator_clients, bucket, "_compaction/") == []


def test_a_crash_before_the_commit_is_rolled_back(lake: Settings, emulator_clients: Clients,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = lake.lake_bucket
    puts: list[str] = []

    def die_on_second_output(op: str, kwargs: dict[str, Any]) -> None:
        if op == "put_object" and "compacted-" in kwargs["Key"]:
            puts.append(kwargs["Key"])
            if len(puts) == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(compact, "_abandon", lambda *args: None)  # a hard crash cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        compact.compact_partition(HookedClients(lake, die_on_second_output), lake, year=2026, month=1, day=5,
                                  console=Console(capture=True), target_rows=20)
    assert json.loads(emulator_clients.s3.get_object(Bucket=bucket, Key=JOURNAL)["Body"].read())["state"] == "writing"
    assert not (ORIGINAL - event_ids(emulator_clients, bucket))

    result = compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5,
                                       console=Console(capture=True), target_rows=1000, lease_s=0)
    assert result.recovered == "roll-back"
    assert not any(p in keys(emulator_clients, bucket, DAY) for p in puts)
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    assert len(result.outputs) == 1


def test_a_commit_whose_answer_is_lost_is_never_undone(lake: Settings, emulator_clients: Clients) -> None:
    bucket = lake.lake_bucket

    def lose_the_commit_answer(op: str, kwargs: dict[str, Any]) -> None:
        if op == "put_object" and kwargs["Key"] == JOURNAL and b'"committed"' in kwargs["Body"]:
            raise ConnectionResetError("the commit landed, its answer did not")

    with pytest.raises(ConnectionResetError):
        compact.compact_partition(HookedClients(lake, lose_the_commit_answer), lake, year=2026, month=1, day=5,
                                  console=Console(capture=True), target_rows=1000)
    # The outputs were not deleted (that would lose rows once the inputs go): duplicates until recovery.
    assert event_ids(emulator_clients, bucket) == ORIGINAL + ORIGINAL
    result = compact.compact_partition(emulator_clients, lake, year=2026, month=1, day=5,
                                       console=Console(capture=True), target_rows=1000, lease_s=0)
    assert result.recovered == "roll-forward"
    assert event_ids(emulator_clients, bucket) == ORIGINAL


def test_an_output_whose_upload_answer_is_lost_is_rolled_back_with_the_others(
    lake: Settings, emulator_clients: Clients
) -> None:
    """The upload lands, its answer does not: botocore's retry then meets If-None-Match (412), and the run fails
    before the commit. The journal lists that output: it must go with the others, or its rows stay twice."""
    bucket = lake.lake_bucket
    lost: list[str] = []

    def lose_an_output_answer(op: str, kwargs: dict[str, Any]) -> None:
        if op == "put_object" and kwargs["Key"] != JOURNAL and not lost:
            lost.append(kwargs["Key"])
            raise ConnectionResetError("the output landed, its answer did not")

    with pytest.raises((ClientError, ConnectionResetError)):  # the retry's 412, or the reset when not retried
        compact.compact_partition(HookedClients(lake, lose_an_output_answer), lake, year=2026, month=1, day=5,
                                  console=Console(capture=True), target_rows=1000)
    assert lost and lost[0] not in keys(emulator_clients, bucket, DAY)
    assert event_ids(emulator_clients, bucket) == ORIGINAL


def test_a_partition_that_cannot_be_compacted_does_not_keep_the_later_ones_from_it(
    lake: Settings, emulator_clients: Clients
) -> None:
    """An unreadable object stopped compact_all at its partition on every run: the days after it never got
    compacted. Each partition is tried; the run then fails naming the ones that could not be."""
    bucket, early = lake.lake_bucket, "orders/year=2026/month=01/day=04/"
    for n in range(6):
        emulator_clients.s3.put_object(Bucket=bucket, Key=early + firehose_name(n), Body=b"PAR1 not parquet")
    with pytest.raises(TerminalError, match=r"^1 partition\(s\) could not be compacted: 2026-01-04 \("):
        compact.compact_all(emulator_clients, lake, console=Console(capture=True), more_than=5, target_rows=1000)
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    assert not [k for k in keys(emulator_clients, bucket, DAY) if "sales-orders-firehose" in k]  # day 5 was done
    assert len(keys(emulator_clients, bucket, early)) == 6  # nothing of day 4 was touched


def test_compact_all_picks_partitions_with_more_than_n_objects(lake: Settings, emulator_clients: Clients) -> None:
    results = compact.compact_all(emulator_clients, lake, console=Console(capture=True), more_than=5,
                                  target_rows=1000)
    assert [(r.partition, r.inputs, len(r.outputs)) for r in results] == [("2026-01-05", 12, 1)]
    assert keys(emulator_clients, lake.lake_bucket, OTHER_DAY) == [OTHER_DAY + firehose_name(0)]
    assert compact.compact_all(emulator_clients, lake, console=Console(capture=True), more_than=5) == []


# --- two runs on one partition: the lease, its renewal and the conditional journal delete ---------------------
#
# Each race is one deterministic interleaving: both runs share a FakeClock (one host), the second run is started
# from inside the first one's S3 call or sleep, and a "pause" advances the clock past the lease without the
# first run doing anything (a suspended process). The emulator's real conditional writes and deletes decide who
# wins. After each interleaving a reader must see exactly the rows that were there before: no loss, no duplicate.

LEASE = 900.0
LATE = Counter(f"evt-{n:04d}" for n in range(900, 904))


class FakeClock(compact.Clock):
    """Wall and monotonic time that only move when a run sleeps or the test advances them."""

    def __init__(self, on_sleep: Callable[[float], None] | None = None) -> None:
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
            self.on_sleep(seconds)


class Crash(BaseException):
    """A process dying on the spot: raised from a hook, nothing of the run's own cleanup runs."""


def run(clients: Clients, settings: Settings, clock: FakeClock, **kwargs: Any) -> compact.CompactResult:
    kwargs = {"target_rows": 1000, "lease_s": LEASE, **kwargs}
    return compact.compact_partition(clients, settings, year=2026, month=1, day=5, console=Console(capture=True),
                                     clock=clock, **kwargs)


def journal_body(clients: Clients, bucket: str) -> dict[str, Any] | None:
    found = compact._read_journal(clients.s3, bucket, JOURNAL)
    return None if found is None else found[0]


def write_late_object(clients: Clients, bucket: str) -> None:
    """The firehose keeps writing while the compactors race."""
    clients.s3.put_object(Bucket=bucket, Key=DAY + firehose_name(99), Body=parquet(rows(900, 4)))


def mutations(op: str, kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """A successful S3 write as (put|delete, key), one per key of a DeleteObjects."""
    if op == "delete_objects":
        return [("delete", o["Key"]) for o in kwargs["Delete"]["Objects"]]
    return [("put" if op == "put_object" else "delete", kwargs["Key"])]


def second_run_crashing_in_writing(lake: Settings, clock: FakeClock) -> tuple[compact.CompactResult | None, str]:
    """A second run that takes the stale journal over, starts its own compaction and dies right after its first
    output PUT, leaving its `writing` journal: (its result if it got that far, its run id)."""
    def die_after_first_output(op: str, kwargs: dict[str, Any]) -> None:
        if op == "put_object" and "/~compacted-" in kwargs["Key"] and kwargs["Key"] not in first_outputs:
            raise Crash

    clients = HookedClients(lake, die_after_first_output)
    first_outputs = set(keys(clients, lake.lake_bucket, DAY))
    try:
        result = run(clients, lake, clock)
    except Crash:
        result = None
    body = journal_body(clients, lake.lake_bucket)
    assert body is not None and body["state"] == "writing", body
    return result, body["run_id"]


def test_a_live_run_in_a_grace_longer_than_the_lease_is_never_taken_over(
        lake: Settings, emulator_clients: Clients) -> None:
    bucket = lake.lake_bucket
    during: list[tuple[compact.CompactResult, Counter[str]]] = []

    def second_run_late_in_the_grace(seconds: float) -> None:
        if clock.t > 1.5 * LEASE and not during:  # the commit is older than the lease by now
            during.append((run(emulator_clients, lake, clock), event_ids(emulator_clients, bucket)))

    clock = FakeClock(second_run_late_in_the_grace)
    first = run(emulator_clients, lake, clock, grace_s=3 * LEASE)
    (second, view), = during
    assert second.skipped.startswith(f"run {first.run_id} is compacting it") and second.recovered == ""
    assert view == ORIGINAL + ORIGINAL  # the inputs are still there: readers keep the whole grace
    assert sum(clock.slept) == 3 * LEASE and max(clock.slept) <= LEASE / 3
    assert not first.skipped and first.inputs == 12
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    assert keys(emulator_clients, bucket, "_compaction/") == []


@pytest.mark.parametrize("slow", ["reads", "writes"])
def test_a_live_run_renews_its_lease_at_each_step(lake: Settings, emulator_clients: Clients,
                                                   monkeypatch: pytest.MonkeyPatch, slow: str) -> None:
    """Each input read (or output PUT) takes half a lease: the run as a whole outlasts its lease many times."""
    bucket = lake.lake_bucket
    clock = FakeClock()
    seconds: list[compact.CompactResult] = []
    steps = 0

    def step() -> None:
        nonlocal steps
        steps += 1
        clock.t += LEASE / 2
        if steps == (8 if slow == "reads" else 3):
            seconds.append(run(emulator_clients, lake, clock))

    real_read = compact._read_input

    def slow_read(s3: Any, bucket_: str, obj: compact.LakeObject) -> bytes:
        if slow == "reads":
            step()
        return real_read(s3, bucket_, obj)

    def slow_put(op: str, kwargs: dict[str, Any]) -> None:
        if slow == "writes" and op == "put_object" and "/~compacted-" in kwargs["Key"]:
            step()

    monkeypatch.setattr(compact, "_read_input", slow_read)
    first = run(HookedClients(lake, slow_put), lake, clock, target_rows=20)
    (second,) = seconds
    assert second.skipped.startswith(f"run {first.run_id} is compacting it") and second.recovered == ""
    assert not first.skipped and (first.inputs, len(first.outputs)) == (12, 4)
    assert clock.t >= 2 * LEASE
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    assert keys(emulator_clients, bucket, "_compaction/") == []


def test_a_run_that_lost_its_lease_in_the_grace_stops_without_touching_anything(
        lake: Settings, emulator_clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = lake.lake_bucket
    monkeypatch.setattr(compact, "_abandon", lambda *args, **kwargs: None)  # the second run dies hard
    first_ops: list[tuple[str, str]] = []
    second_run_id = ""

    def suspended_in_the_grace(seconds: float) -> None:
        nonlocal second_run_id
        if second_run_id:
            return
        clock.t += 2 * LEASE  # the process is suspended: no renewal, the lease runs out
        write_late_object(emulator_clients, bucket)
        _, second_run_id = second_run_crashing_in_writing(lake, clock)
        first_ops.clear()  # from here on: what the first run does once it wakes up

    def record(op: str, kwargs: dict[str, Any]) -> None:
        first_ops.extend(mutations(op, kwargs))

    clock = FakeClock(suspended_in_the_grace)
    first = run(HookedClients(lake, record), lake, clock, grace_s=LEASE)
    body = journal_body(emulator_clients, bucket)

    # A later run (past the second one's lease) rolls the second back; the reader sees every row exactly once.
    clock.t += 2 * LEASE
    third = run(emulator_clients, lake, clock)
    assert event_ids(emulator_clients, bucket) == ORIGINAL + LATE
    assert keys(emulator_clients, bucket, "_compaction/") == []
    assert third.recovered == "roll-back"
    assert second_run_id and body is not None and body["run_id"] == second_run_id and body["state"] == "writing"
    assert first_ops == []  # no input delete, no journal delete, no journal write
    assert "lost its lease" in first.skipped


def test_a_run_never_deletes_a_journal_it_no_longer_owns(lake: Settings, emulator_clients: Clients,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run is suspended between deleting its inputs and deleting its journal; meanwhile a second run
    rolls it forward and dies half way through its own compaction. Erasing the second run's `writing` journal
    would leave its outputs and its inputs both visible, for good."""
    bucket = lake.lake_bucket
    monkeypatch.setattr(compact, "_abandon", lambda *args, **kwargs: None)  # the second run dies hard
    second_run_id = ""

    def suspended_after_the_input_delete(op: str, kwargs: dict[str, Any]) -> None:
        nonlocal second_run_id
        if op == "delete_objects" and not second_run_id:
            clock.t += 2 * LEASE
            write_late_object(emulator_clients, bucket)
            _, second_run_id = second_run_crashing_in_writing(lake, clock)

    clock = FakeClock()
    first = run(HookedClients(lake, suspended_after_the_input_delete), lake, clock)
    body = journal_body(emulator_clients, bucket)

    clock.t += 2 * LEASE
    third = run(emulator_clients, lake, clock)
    assert event_ids(emulator_clients, bucket) == ORIGINAL + LATE
    assert keys(emulator_clients, bucket, "_compaction/") == []
    assert third.recovered == "roll-back"
    assert second_run_id and body is not None and body["run_id"] == second_run_id and body["state"] == "writing"
    assert first.inputs == 12 and "lost its lease" in first.skipped


def test_a_run_that_lost_its_lease_before_the_commit_writes_nothing_more(
        lake: Settings, emulator_clients: Clients) -> None:
    """Suspended between two output PUTs: a second run rolls the first back and compacts the day itself. The
    first, awake again, must not PUT its remaining outputs (they would duplicate every row, for good, if it died
    before cleaning them up)."""
    bucket = lake.lake_bucket
    first_ops: list[tuple[str, str]] = []
    seconds: list[compact.CompactResult] = []

    def suspended_between_outputs(op: str, kwargs: dict[str, Any]) -> None:
        first_ops.extend(mutations(op, kwargs))
        if op == "put_object" and "/~compacted-" in kwargs["Key"] and not seconds:
            clock.t += 2 * LEASE
            seconds.append(run(emulator_clients, lake, clock))
            first_ops.clear()

    clock = FakeClock()
    first = run(HookedClients(lake, suspended_between_outputs), lake, clock, target_rows=20)
    (second,) = seconds
    assert second.recovered == "roll-back" and second.inputs == 12
    assert not any(op == "put" for op, _ in first_ops)  # no output, no journal write
    assert all(op == "delete" and f"-{first.run_id}-" in key for op, key in first_ops)  # its own outputs at most
    assert "lost its lease" in first.skipped
    assert event_ids(emulator_clients, bucket) == ORIGINAL
    assert keys(emulator_clients, bucket, DAY) == sorted([DAY + "_SUCCESS", *second.outputs])
    assert keys(emulator_clients, bucket, "_compaction/") == []


def test_an_input_rewritten_after_the_snapshot_is_not_deleted(lake: Settings, emulator_clients: Clients) -> None:
    """Inputs are deleted only if they still hold the bytes that were compacted (DeleteObjects with ETags)."""
    bucket = lake.lake_bucket
    rewritten = DAY + firehose_name(3)

    def rewrite_an_input_after_the_commit(op: str, kwargs: dict[str, Any]) -> None:
        if op == "put_object" and kwargs["Key"] == JOURNAL and b'"committed"' in kwargs["Body"]:
            emulator_clients.s3.put_object(Bucket=bucket, Key=rewritten, Body=parquet(rows(900, 4)))

    result = run(HookedClients(lake, rewrite_an_input_after_the_commit), lake, FakeClock())
    assert result.inputs == 12
    assert rewritten in keys(emulator_clients, bucket, DAY)
    assert event_ids(emulator_clients, bucket) == ORIGINAL + LATE
    assert keys(emulator_clients, bucket, "_compaction/") == []


def test_the_emulator_evaluates_if_match_on_delete_so_a_late_takeover_keeps_its_journal(
        lake: Settings, emulator_clients: Clients) -> None:
    """A takeover landing between the journal re-read (HEAD If-Match) and the DELETE: the DELETE's own If-Match
    (AWS since 2024, MiniStack too) refuses it. Also what the emulator honours on DeleteObjects: one ETag per key."""
    bucket, s3 = lake.lake_bucket, emulator_clients.s3
    clock = FakeClock()
    ours = compact.Journal(JOURNAL, {"run_id": "first"})
    compact._write_journal(s3, bucket, ours, clock, state="committed")

    class TakeoverAfterHead:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def head_object(self, **kwargs: Any) -> Any:
            response = s3.head_object(**kwargs)
            found = compact._read_journal(s3, bucket, JOURNAL)
            assert found is not None
            compact._write_journal(s3, bucket, compact.Journal(JOURNAL, *found), clock, run_id="recover-second",
                                   state="recovering-committed")
            return response

    with pytest.raises(compact.LockLost):
        compact._delete_journal(TakeoverAfterHead(), bucket, ours)
    assert journal_body(emulator_clients, bucket)["run_id"] == "recover-second"  # type: ignore[index]

    stale = s3.head_object(Bucket=bucket, Key=DAY + firehose_name(0))["ETag"]
    s3.put_object(Bucket=bucket, Key=DAY + firehose_name(0), Body=parquet(rows(900, 4)))
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": DAY + firehose_name(0), "ETag": stale}]})
    assert [e["Code"] for e in resp.get("Errors", [])] == ["PreconditionFailed"]
    assert DAY + firehose_name(0) in keys(emulator_clients, bucket, DAY)
