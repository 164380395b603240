"""The pipeline-health figures (analytics/health.py) on hand-made inputs, worked out by hand; no server."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.health import (
    ErrorOutput,
    Freshness,
    PartitionHealth,
    S3Object,
    VerifyResult,
    bucket_seconds,
    compute_health,
    error_outputs,
    events_table,
    load_verify_result,
    partition_health,
    read_runner_statuses,
    runner_health,
    save_verify_result,
)
from analytics.verify import AttributeDiff, Reconciliation
from common.state_dir import verify_file
from lake.compact import LakeObject, partitions_to_compact
from lake.schema import SNAPSHOT_EVENT_TYPE

T0 = datetime(2026, 1, 5, 10, 0, 0)
NOW = datetime(2026, 1, 5, 11, 0, 0, tzinfo=UTC)
DAY = "orders/year=2026/month=01/day=05/"


def obj(key: str, size: int, at: datetime) -> S3Object:
    return S3Object(key, size, at.replace(tzinfo=UTC))


def rows() -> list[dict]:
    """Two objects. A (written T0+4s): e1 e2 e3 changed at T0+0/1/2 s, arrivals 100 ms later.
    B (written T0+70s): e4 at T0+60 s, e5 at T0+65.5 s, and e3 again (a redelivery).
    Change -> S3: A 4000 3000 2000; B 10000 4500 68000 -> sorted 2000 3000 4000 4500 10000 68000."""
    a, b = DAY + "fh-1-a.parquet", DAY + "fh-1-b.parquet"
    spec = [("e1", "INSERT", 0, a), ("e2", "INSERT", 1, a), ("e3", "MODIFY", 2, a),
            ("e4", "MODIFY", 60, b), ("e5", "REMOVE", 65.5, b), ("e3", "MODIFY", 2, b)]
    return [dict(event_id=i, event_type=t, event_ts=T0 + timedelta(seconds=s),
                 arrival_ts=T0 + timedelta(seconds=s, milliseconds=100 if i != "e5" else 900), key=k)
            for i, t, s, k in spec]


def objects() -> list[S3Object]:
    return [
        obj(DAY + "fh-1-a.parquet", 1000, T0 + timedelta(seconds=4)),
        obj(DAY + "fh-1-b.parquet", 3000, T0 + timedelta(seconds=70)),
        obj("orders/year=2026/month=01/day=04/compacted-2026-01-05-09-00-00-r1-0000-50rows.parquet", 9000,
            T0 - timedelta(hours=1)),
        obj("orders/year=2026/month=01/day=04/_SUCCESS", 0, T0),
        obj("errors/processing-failed/2026/01/05/10/fh-1-x.gz", 200, T0),
        obj("errors/processing-failed/2026/01/05/10/fh-1-y.gz", 300, T0),
        obj("errors/pipe-dead-letter/2026/01/05/10/pipe-z.json", 50, T0),
        obj("errors/redriven/processing-failed/2026/01/05/09/fh-1-w.gz", 70, T0),
        obj("_compaction/orders/year=2026/month=01/day=04.json", 10, T0),
    ]


STATUSES = {
    "firehose": {"records_in": 6, "records_out": 6, "objects_out": 3, "errors": 2, "pending": 0, "lag_ms": 0,
                 "dead_letters": 0, "updated": NOW.timestamp() - 5, "last_error": ""},
    "pipe": {"records_in": 5, "records_out": 5, "objects_out": 0, "errors": 1, "pending": 3, "lag_ms": 1234,
             "dead_letters": 1, "updated": NOW.timestamp() - 2.5, "last_error": "boom", "data_loss": []},
}


def health(**kw):
    return compute_health(events_table(rows()), objects(), STATUSES, None, lake_prefix="orders/",
                          error_prefix="errors/", generated_at=NOW, **kw)


def test_end_to_end_freshness_is_change_to_object_in_s3() -> None:
    h = health()
    # Nearest rank over 2000 3000 4000 4500 10000 68000: p50 = 3rd = 4000, p95 = 6th = 68000.
    # Change -> Firehose: five at 100 ms and e5 at 900 ms: p95 = 900. The compacted file's rows are not counted.
    assert h.freshness == Freshness(rows=6, p50_ms=4000, p95_ms=68000, max_ms=68000, firehose_p95_ms=900)
    assert h.bucket_s == 1  # the span T0 .. T0+70 s fits 120 one-second buckets
    assert [(p.at, p.freshness) for p in h.freshness_series] == [
        (T0 + timedelta(seconds=4), Freshness(3, 3000, 4000, 4000, 100)),
        (T0 + timedelta(seconds=70), Freshness(3, 10000, 68000, 68000, 900)),
    ]


def test_a_delay_below_s3s_one_second_resolution_counts_as_zero() -> None:
    late = [dict(event_id="e1", event_type="INSERT", event_ts=T0 + timedelta(milliseconds=700),
                 arrival_ts=T0 + timedelta(milliseconds=800), key=DAY + "a.parquet")]
    h = compute_health(events_table(late), [obj(DAY + "a.parquet", 1, T0)], {}, None, lake_prefix="orders/",
                       error_prefix="errors/", generated_at=NOW)
    assert h.freshness == Freshness(1, 0, 0, 0, 100)


def test_changes_in_and_out_per_bucket_and_per_minute() -> None:
    h = health(max_points=10)  # 70 s in at most 10 buckets: 10 s each
    assert h.bucket_s == 10
    assert [(p.at - T0, p.changes_in, p.changes_out) for p in h.flow] == [
        (timedelta(seconds=0), 3, 3),  # e1 e2 e3 made; A's three rows landed at +4 s
        *[(timedelta(seconds=s), 0, 0) for s in (10, 20, 30, 40, 50)],
        (timedelta(seconds=60), 2, 0),  # e4, e5 (e3's redelivery is not a new change)
        (timedelta(seconds=70), 0, 3),  # B's three rows, the redelivery included
    ]
    assert h.flow[0].in_per_minute == 18.0 and h.flow[-1].out_per_minute == 18.0
    assert sum(p.changes_in for p in h.flow) == h.lake_events == 5
    assert sum(p.changes_out for p in h.flow) == h.lake_rows == 6


def test_change_mix_counts_distinct_events_in_a_fixed_order() -> None:
    assert health().mix == (("INSERT", 2), ("MODIFY", 2), ("REMOVE", 1))
    other = [{**rows()[0], "event_type": "TRUNCATE"}]
    h = compute_health(events_table(other), objects(), {}, None, lake_prefix="orders/", error_prefix="errors/",
                       generated_at=NOW)
    assert h.mix == (("INSERT", 0), ("MODIFY", 0), ("REMOVE", 0), ("TRUNCATE", 1))


def test_snapshot_rows_are_in_the_mix_but_not_in_freshness_or_flow() -> None:
    """A backfill's rows carry the snapshot's start as event_ts: counted as changes they would show a
    freshness of however long the scan took, and a burst of 'changes' that never happened."""
    snapshot = dict(event_id="snap-o9", event_type=SNAPSHOT_EVENT_TYPE, event_ts=T0 - timedelta(hours=3),
                    arrival_ts=T0 - timedelta(hours=3), key=DAY + "fh-1-a.parquet")
    plain, with_snapshot = health(max_points=10), compute_health(
        events_table([*rows(), snapshot]), objects(), STATUSES, None, lake_prefix="orders/",
        error_prefix="errors/", generated_at=NOW, max_points=10)
    assert with_snapshot.freshness == plain.freshness
    assert [(p.changes_in, p.changes_out) for p in with_snapshot.flow if p.changes_in or p.changes_out] == [
        (p.changes_in, p.changes_out) for p in plain.flow if p.changes_in or p.changes_out]
    assert with_snapshot.mix == (*plain.mix, (SNAPSHOT_EVENT_TYPE, 1))
    # "N distinct change events in the lake": a snapshot row is a row of the lake, not a change.
    assert (with_snapshot.lake_events, with_snapshot.lake_rows) == (plain.lake_events, plain.lake_rows + 1)


def test_partitions_count_data_objects_and_flag_what_make_compact_rewrites() -> None:
    assert partition_health(objects(), "orders/", more_than=1) == (
        PartitionHealth("2026-01-04", 1, 9000, 1, False),  # the compacted file (50 rows is not full) counts as small
        PartitionHealth("2026-01-05", 2, 4000, 2, True),
    )
    assert partition_health(objects(), "orders/", more_than=2)[1].compact is False
    assert partition_health(objects(), "orders/")[1].mean_bytes == 2000.0


@pytest.mark.parametrize("more_than", [0, 1, 2, 5])
def test_the_compact_flag_follows_lake_compact(more_than: int) -> None:
    many = objects() + [obj(f"{DAY}fh-1-{i}.parquet", 10, T0) for i in range(4)]
    flagged = {p.day for p in partition_health(many, "orders/", more_than) if p.compact}
    listed = partitions_to_compact([LakeObject(o.key, o.size, "") for o in many], "orders/", more_than=more_than)
    assert flagged == {f"{p.year}-{p.month}-{p.day}" for p in listed}


def test_error_output_by_type_includes_dead_letters_and_redriven() -> None:
    assert error_outputs(objects(), "errors/") == (
        ErrorOutput("pipe-dead-letter", 1, 50),
        ErrorOutput("processing-failed", 2, 500),
        ErrorOutput("redriven", 1, 70),
    )
    assert health().error_objects == 4


def test_runners_in_pipeline_order_with_the_status_files_numbers() -> None:
    pipe, firehose = runner_health(STATUSES, NOW)
    assert (pipe.name, pipe.lag_ms, pipe.pending, pipe.records_in, pipe.records_out, pipe.errors,
            pipe.dead_letters, pipe.last_error) == ("pipe", 1234, 3, 5, 5, 1, 1, "boom")
    assert pipe.age_s == pytest.approx(2.5)
    assert (firehose.name, firehose.lag_ms, firehose.objects_out, firehose.age_s) == ("firehose", 0, 3, 5.0)
    (odd,) = runner_health({"x": {"lag_ms": None, "records_in": "many", "updated": 0}}, NOW)
    assert (odd.lag_ms, odd.records_in, odd.age_s) == (None, 0, None)


def test_read_runner_statuses_reads_every_status_file(tmp_path: Path) -> None:
    (tmp_path / "pipe.status.json").write_text(json.dumps(STATUSES["pipe"]))
    (tmp_path / "firehose.status.json").write_text(json.dumps(STATUSES["firehose"]))
    (tmp_path / "broken.status.json").write_text("{not json")
    (tmp_path / "pipe.json").write_text("{}")  # a spec, not a status
    assert read_runner_statuses(tmp_path) == STATUSES
    assert read_runner_statuses(tmp_path / "missing") == {}


def test_verify_result_round_trip(tmp_path: Path) -> None:
    assert load_verify_result(tmp_path) is None
    good = Reconciliation(lake_orders=3, table_orders=3)
    path = save_verify_result(tmp_path, good, at=datetime(2026, 1, 5, 10, 0, 1, 500, tzinfo=UTC))
    assert path == verify_file(tmp_path)
    assert json.loads(path.read_text()) == {"ok": True, "lake_orders": 3, "table_orders": 3,
                                            "at": "2026-01-05T10:00:01Z",
                                            "lines": ["lake and table agree: 3 orders, every attribute equal"]}
    assert load_verify_result(tmp_path) == VerifyResult(True, 3, 3, "2026-01-05T10:00:01Z",
                                                        ("lake and table agree: 3 orders, every attribute equal",))
    bad = Reconciliation(lake_orders=2, table_orders=3, missing_in_lake=("o9",),
                         differences=(AttributeDiff("o1", "status", "PAID", "SHIPPED"),))
    save_verify_result(tmp_path, bad)
    loaded = load_verify_result(tmp_path)
    assert loaded is not None and (loaded.ok, loaded.lake_orders, loaded.table_orders) == (False, 2, 3)
    assert loaded.lines == tuple(bad.report_lines())
    assert [p.name for p in tmp_path.iterdir()] == ["verify.json"]  # no temp file left behind


@pytest.mark.parametrize("body", ["", "{", "[]", '{"ok": "yes", "lake_orders": 1, "table_orders": 1}',
                                  '{"ok": true, "lake_orders": 1}'])
def test_an_unreadable_verify_file_is_no_result(tmp_path: Path, body: str) -> None:
    verify_file(tmp_path).write_text(body)
    assert load_verify_result(tmp_path) is None


@pytest.mark.parametrize(("span", "width"), [(0, 1), (70, 1), (119, 1), (120, 5), (3600, 60), (7 * 86400, 6 * 3600),
                                             (400 * 86400, 5 * 86400),
                                             (119.5, 5)])  # 0.9 s .. 120.4 s touches 121 one-second buckets
def test_bucket_seconds(span: float, width: int) -> None:
    assert bucket_seconds(span) == width
    assert math.ceil(span / width) + 1 <= 120  # buckets start on whole multiples: a span touches one more


def test_an_empty_lake_has_empty_figures() -> None:
    h = compute_health(events_table([]), [], {}, None, lake_prefix="orders/", error_prefix="errors/",
                       generated_at=NOW)
    assert (h.freshness, h.freshness_series, h.flow, h.partitions, h.errors, h.runners) == (
        Freshness(0, None, None, None, None), (), (), (), (), ())
    assert h.mix == (("INSERT", 0), ("MODIFY", 0), ("REMOVE", 0)) and (h.lake_rows, h.lake_events) == (0, 0)


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_lake_events_reads_every_row_with_its_object_through_the_engine(tmp_path: Path, fmt: str) -> None:
    """The shell's lake read on the fixture lake: the catalog's types (a JSON lake's timestamps are text)."""
    from analytics.engine import open_local_engine
    from analytics.health import lake_events
    from tests.fixtures.lake import lake_objects, write_local_lake

    write_local_lake(tmp_path / "lake", fmt)
    with open_local_engine(tmp_path / "lake", data_format=fmt) as engine:
        table = lake_events(engine, settings=None)
        assert engine.query("SELECT count(*) FROM sales_orders_cdc") == [(18,)]  # the engine's views are intact
    assert table.column_names == ["event_id", "event_type", "event_ts", "arrival_ts", "key"]
    root = str((tmp_path / "lake").resolve()).lstrip("/") + "/"
    got = sorted((r["event_id"], r["event_type"], r["event_ts"], r["arrival_ts"],
                  r["key"].lstrip("/").removeprefix(root)) for r in table.to_pylist())
    expected = sorted((r["event_id"], r["event_type"], r["event_ts"], r["arrival_ts"], key)
                      for key, rows in lake_objects(fmt).items() for r in rows)
    assert got == expected and len(got) == 18  # 17 events, one delivered twice
