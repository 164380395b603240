"""Compaction against the emulator's S3: same rows after, fewer objects, a concurrent write survives,
a reader never sees fewer rows at any step, and a crash on either side of the commit recovers."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake.compact as compact
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
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


def test_compact_all_picks_partitions_with_more_than_n_objects(lake: Settings, emulator_clients: Clients) -> None:
    results = compact.compact_all(emulator_clients, lake, console=Console(capture=True), more_than=5,
                                  target_rows=1000)
    assert [(r.partition, r.inputs, len(r.outputs)) for r in results] == [("2026-01-05", 12, 1)]
    assert keys(emulator_clients, lake.lake_bucket, OTHER_DAY) == [OTHER_DAY + firehose_name(0)]
    assert compact.compact_all(emulator_clients, lake, console=Console(capture=True), more_than=5) == []
