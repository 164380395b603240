"""The backfill's pure core: items -> snapshot rows, the ordering rule (Python and the view's SQL agree,
the same-second edge included), export lines, incremental windows, and the resumable bookkeeping."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from analytics.engine import open_local_engine
from backfill import run_backfill
from backfill.core import (
    SNAPSHOT,
    Progress,
    Segment,
    Step,
    convert_items,
    current_state,
    export_line_row,
    export_windows,
    floor_second,
    last_snapshot,
    latest,
    object_key,
    parse_time,
    progress_from_json,
    progress_json,
    resumable,
    snapshot_event_prefix,
    snapshot_id,
    snapshot_row,
    snapshot_start,
    tombstone_ids,
    tombstone_key,
    tombstone_rows,
)
from backfill.state import ProgressStore
from common.config import ROOT, load_settings
from common.console import Console
from common.errors import TerminalError
from common.state_dir import backfill_lock_file
from lake.encoding import check_row, encode_parquet
from lake.schema import ROW_SCHEMA
from tests.fixtures.fake_s3 import FakeS3

T = datetime(2026, 11, 24, 3, 3, 51, 640_000, tzinfo=UTC)  # the snapshot began 640 ms into its second


def image(order_id: str = "o1", status: str = "PAID", **extra: Any) -> dict[str, Any]:
    """An order item in DynamoDB JSON, every attribute type the generator writes (S, N int, N decimal)."""
    item = {
        "order_id": {"S": order_id}, "customer_id": {"S": "c1"}, "customer_name": {"S": "Alice Martin"},
        "customer_region": {"S": "EU-CENTRAL"}, "product_id": {"S": "p1"}, "product_name": {"S": "Widget"},
        "category": {"S": "Tools"}, "quantity": {"N": "2"}, "unit_price": {"N": "19.99"},
        "discount": {"N": "0.10"}, "order_total": {"N": "35.98"}, "currency": {"S": "EUR"},
        "status": {"S": status}, "payment_method": {"S": "card"}, "channel": {"S": "web"},
        "order_ts": {"S": "2026-11-24T02:59:00.125Z"}, "updated_ts": {"S": "2026-11-24T03:00:00.000Z"},
    }
    item.update(extra)
    return item


# --- items -> rows -----------------------------------------------------------------------------


def test_an_item_becomes_a_snapshot_row_of_the_row_contract_at_the_snapshot_second() -> None:
    row = snapshot_row(image(), T, read_ms=int(T.timestamp()) * 1000 + 1360)
    assert row["order_id"] == "o1" and row["status"] == "PAID" and row["quantity"] == 2
    assert row["unit_price"] == Decimal("19.99") and row["discount"] == Decimal("0.10")
    assert row["order_total"] == Decimal("35.98") and row["order_ts"] == "2026-11-24T02:59:00.125Z"
    assert row["event_type"] == SNAPSHOT and row["sequence_number"] == "0" and row["is_deleted"] is False
    assert row["event_ts"] == "2026-11-24T03:03:51.000Z"  # floored: a stream record's resolution
    assert row["event_id"] == "snapshot-20261124T030351Z-o1"
    assert row["arrival_ts"] == "2026-11-24T03:03:52.360Z"
    # It is what the lake's Parquet writer takes, exactly as it takes a stream row.
    assert encode_parquet([row])[:4] == b"PAR1"


def test_attributes_beyond_the_contract_travel_as_the_stream_would_carry_them() -> None:
    extra = {"coupon": {"M": {"code": {"S": "X1"}, "pct": {"N": "5"}}}, "tags": {"SS": ["a", "b"]},
             "gift": {"BOOL": True}, "note": {"NULL": True}, "lines": {"L": [{"N": "1.5"}]}}
    row = snapshot_row(image(**extra), T, read_ms=0)
    assert row["coupon"] == {"code": "X1", "pct": 5} and row["tags"] == ["a", "b"]
    assert row["gift"] is True and row["note"] is None and row["lines"] == [Decimal("1.5")]


def test_an_item_the_contract_refuses_is_kept_aside_with_the_field_and_the_fix() -> None:
    converted = convert_items([image("ok"), image("bad", quantity={"N": "2.5"}), {"customer_id": {"S": "c"}}],
                              T, read_ms=0)
    assert [r["order_id"] for r in converted.rows] == ["ok"]
    reasons = [reason for _, reason in converted.failed]
    assert "quantity" in reasons[0] and "2.5" in reasons[0]
    assert "order_id" in reasons[1]


def test_export_lines_full_and_incremental_become_rows_and_deletes() -> None:
    full = export_line_row({"Item": image("o1")}, T, 0, "S")
    assert full["status"] == "PAID" and not full["is_deleted"]
    keys = {"order_id": {"S": "o2"}}
    updated = export_line_row({"Metadata": {"WriteTimestampMicros": {"N": "1"}}, "Keys": keys,
                               "OldImage": image("o2", "PLACED"), "NewImage": image("o2", "SHIPPED")}, T, 0, "S")
    assert updated["status"] == "SHIPPED" and not updated["is_deleted"]
    deleted = export_line_row({"Keys": keys, "OldImage": image("o2", "SHIPPED")}, T, 0, "S")
    assert deleted["is_deleted"] and deleted["event_type"] == SNAPSHOT and deleted["order_id"] == "o2"
    bare = export_line_row({"Keys": keys}, T, 0, "S")  # NEW_IMAGE view: a delete carries only its keys
    assert bare["is_deleted"] and bare.get("status") is None


# --- the ordering rule -------------------------------------------------------------------------


def stream(order_id: str, seq: int, at: datetime, status: str = "PAID", kind: str = "MODIFY",
           arrival_ms: int = 500) -> dict[str, Any]:
    second = floor_second(at)
    return {"order_id": order_id, "status": status, "event_type": kind, "event_id": f"e{seq}",
            "sequence_number": str(seq), "event_ts": second.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "arrival_ts": (second + timedelta(milliseconds=arrival_ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "is_deleted": kind == "REMOVE"}


def snap(order_id: str, at: datetime, status: str, arrival_ms: int = 900) -> dict[str, Any]:
    row = snapshot_row(image(order_id, status), at, read_ms=int(at.timestamp() * 1000) + arrival_ms)
    return {k: row[k] for k in ("order_id", "status", "event_type", "event_id", "sequence_number", "event_ts",
                                "arrival_ts", "is_deleted")}


BEFORE = T - timedelta(seconds=1)
SAME = T.replace(microsecond=100_000)  # the snapshot's second, before it began
AFTER = T + timedelta(seconds=2)
# order -> its rows, and what the current state must say (None: deleted or absent)
CASES: dict[str, tuple[list[dict[str, Any]], str | None]] = {
    # untouched during the backfill: the snapshot wins over the older history it includes
    "untouched": ([stream("untouched", 10, BEFORE - timedelta(days=3), "PLACED", "INSERT"),
                   snap("untouched", T, "PAID")], "PAID"),
    "only-snapshot": ([snap("only-snapshot", T, "DELIVERED")], "DELIVERED"),
    # changed after the snapshot began (a later second): the change wins
    "changed-after": ([snap("changed-after", T, "PAID"), stream("changed-after", 20, AFTER, "SHIPPED")], "SHIPPED"),
    # changed in the snapshot's very second: the stream change wins, in whichever order it happened
    "same-second": ([snap("same-second", T, "PAID"), stream("same-second", 21, SAME, "SHIPPED")], "SHIPPED"),
    "same-second-before-read": ([stream("same-second-before-read", 22, SAME, "SHIPPED"),
                                 snap("same-second-before-read", T, "SHIPPED")], "SHIPPED"),
    # the change one second before the snapshot is older than it
    "second-before": ([stream("second-before", 23, BEFORE, "PAID"), snap("second-before", T, "SHIPPED")], "SHIPPED"),
    # deleted after the snapshot read it, or in its very second: deleted, never resurrected
    "deleted-after": ([snap("deleted-after", T, "PAID"), stream("deleted-after", 24, AFTER, "PAID", "REMOVE")], None),
    "deleted-same-second": ([snap("deleted-same-second", T, "PAID"),
                             stream("deleted-same-second", 25, SAME, "PAID", "REMOVE")], None),
    # deleted before the snapshot: the scan no longer finds it, the old delete stays the last word
    "deleted-before": ([stream("deleted-before", 26, BEFORE, "PAID", "INSERT"),
                        stream("deleted-before", 27, BEFORE, "PAID", "REMOVE")], None),
    # two snapshots (a second `make backfill`): the later one wins, a later change still beats both
    "two-snapshots": ([snap("two-snapshots", T, "PAID"), snap("two-snapshots", AFTER, "SHIPPED")], "SHIPPED"),
    "two-then-change": ([snap("two-then-change", T, "PAID"), snap("two-then-change", AFTER, "SHIPPED"),
                         stream("two-then-change", 28, AFTER + timedelta(seconds=1), "DELIVERED")], "DELIVERED"),
    # the same snapshot row written twice (a resumed page): one order, first arrival
    "resumed-duplicate": ([snap("resumed-duplicate", T, "PAID", 900), snap("resumed-duplicate", T, "PAID", 5000)],
                          "PAID"),
}


def expected() -> dict[str, str]:
    return {order: status for order, (_, status) in CASES.items() if status is not None}


def test_latest_applies_the_rule_to_every_case() -> None:
    rows = [row for order_rows, _ in CASES.values() for row in order_rows]
    assert {k: v["status"] for k, v in current_state(rows).items()} == expected()
    assert latest(CASES["same-second"][0])["event_type"] == "MODIFY"  # type: ignore[index]
    assert latest(CASES["resumed-duplicate"][0])["arrival_ts"].endswith("52.540Z")  # type: ignore[index]


def test_the_current_state_view_applies_the_same_rule(tmp_path: Path) -> None:
    full_rows = []
    for order_rows, _ in CASES.values():
        for row in order_rows:
            item = {k: v for k, v in snapshot_row(image(row["order_id"], row["status"]), T, 0).items()}
            full_rows.append({**item, **row})
    partition = tmp_path / "year=2026" / "month=11" / "day=24"
    partition.mkdir(parents=True)
    (partition / "rows.parquet").write_bytes(encode_parquet(full_rows))
    with open_local_engine(tmp_path) as engine:
        got = dict(engine.query("SELECT order_id, status FROM sales_orders_current"))
        freshness = engine.query("SELECT events FROM (SELECT count(*) AS events FROM sales_orders_cdc "
                                 "WHERE event_type <> 'SNAPSHOT')")
    assert got == expected()
    assert freshness[0][0] == sum(1 for r in full_rows if r["event_type"] != SNAPSHOT)


# --- tombstones: what a complete Scan snapshot did not contain -------------------------------------


def test_tombstones_go_to_the_orders_alive_in_the_lake_that_the_snapshot_did_not_contain() -> None:
    contained, alive = {"a", "b", "c"}, {"b", "c", "gone-1", "gone-2"}
    assert tombstone_ids(contained, alive) == ["gone-1", "gone-2"]
    assert tombstone_ids(contained, {"a", "b"}) == []  # nothing alive beyond the snapshot: none
    assert tombstone_ids(set(), set()) == []
    # A run killed while writing them: the lake no longer counts gone-1 alive, its tombstone stays,
    # so the pages written again hold what they held.
    assert tombstone_ids(contained, {"gone-2"}, written={"gone-1"}) == ["gone-1", "gone-2"]
    assert tombstone_ids(contained, alive, written={"b"}) == ["gone-1", "gone-2"]  # never one the snapshot holds


def test_a_tombstone_is_a_deleted_snapshot_row_holding_only_the_key() -> None:
    sid = snapshot_id(T)
    rows = tombstone_rows(["gone-1", "gone-2"], T, 1_790_000_000_123, sid)
    assert [r["order_id"] for r in rows] == ["gone-1", "gone-2"]
    row = rows[0]
    assert (row["event_type"], row["is_deleted"], row["sequence_number"], row["event_ts"]) == (
        SNAPSHOT, True, "0", "2026-11-24T03:03:51.000Z")
    assert row["event_id"] == "snapshot-20261124T030351Z-gone-1" and row["event_id"].startswith(
        snapshot_event_prefix(sid))
    fields = set(ROW_SCHEMA.names) - {"order_id", "event_type", "event_id", "sequence_number", "event_ts",
                                    "arrival_ts", "is_deleted"}
    assert all(row.get(name) is None for name in fields)  # a delete needs its key only (build_row's REMOVE)
    check_row(row)  # and meets the row contract as a stream delete does
    assert tombstone_key("orders/", T, 2, ".parquet") == (
        "orders/year=2026/month=11/day=24/backfill-20261124T030351Z-deleted-p000002.parquet")


TOMBSTONE_CASES: dict[str, tuple[list[dict[str, Any]], str | None]] = {
    # deleted while the stream was out of reach: its last stream row is older than the snapshot
    "gone": ([stream("gone", 30, BEFORE - timedelta(days=2), "PAID", "INSERT")], None),
    # only an older snapshot held it
    "gone-since-last-snapshot": ([snap("gone-since-last-snapshot", BEFORE - timedelta(hours=1), "PAID")], None),
    # inserted during the backfill after the Scan passed it: its stream row (the same second or later) wins
    "inserted-same-second": ([stream("inserted-same-second", 31, SAME, "PLACED", "INSERT")], "PLACED"),
    "inserted-after": ([stream("inserted-after", 32, AFTER, "PLACED", "INSERT")], "PLACED"),
}


def test_the_view_lets_a_tombstone_beat_older_rows_and_lose_to_changes_in_its_second_or_later(
        tmp_path: Path) -> None:
    tombstones = tombstone_rows(sorted(TOMBSTONE_CASES), T, int(T.timestamp() * 1000) + 900, snapshot_id(T))
    slim = [{k: r.get(k) for k in ("order_id", "status", "event_type", "event_id", "sequence_number", "event_ts",
                               "arrival_ts", "is_deleted")} for r in tombstones]
    history = [row for order_rows, _ in TOMBSTONE_CASES.values() for row in order_rows]
    want = {order: status for order, (_, status) in TOMBSTONE_CASES.items() if status is not None}
    assert {k: v["status"] for k, v in current_state(history + slim).items()} == want
    full = [{**snapshot_row(image(r["order_id"], r["status"]), T, 0), **r} for r in history] + tombstones
    partition = tmp_path / "year=2026" / "month=11" / "day=24"
    partition.mkdir(parents=True)
    (partition / "rows.parquet").write_bytes(encode_parquet(full))
    with open_local_engine(tmp_path) as engine:
        assert dict(engine.query("SELECT order_id, status FROM sales_orders_current")) == want


def test_kpis_leave_snapshot_rows_out_of_freshness_and_count_implied_funnel_stages(tmp_path: Path) -> None:
    rows = [snapshot_row(image("a", "DELIVERED"), T, 0), snapshot_row(image("b", "CANCELLED"), T, 0),
            snapshot_row(image("c", "PAID"), T, 0)]
    partition = tmp_path / "year=2026" / "month=11" / "day=24"
    partition.mkdir(parents=True)
    (partition / "rows.parquet").write_bytes(encode_parquet(rows))
    from analytics.kpis import run_kpis

    with open_local_engine(tmp_path) as engine:
        results = {r.name: r for r in run_kpis(engine.conn)}
    funnel = {row[1]: row[2] for row in results["status_funnel"].rows}
    assert funnel == {"PLACED": 3, "PAID": 2, "SHIPPED": 1, "DELIVERED": 1}
    assert results["cdc_freshness"].rows[0][0] == 0


# --- where rows go, and incremental windows ------------------------------------------------------


def test_object_keys_are_deterministic_per_snapshot_segment_and_page_in_the_day_partition() -> None:
    key = object_key("orders/", T, 3, 17, ".parquet")
    assert key == "orders/year=2026/month=11/day=24/backfill-20261124T030351Z-s0003-p000017.parquet"
    assert key == object_key("orders/", T.replace(microsecond=0), 3, 17, ".parquet")
    assert key != object_key("orders/", T, 3, 18, ".parquet")


def test_a_gap_is_cut_into_incremental_windows_of_at_most_a_day() -> None:
    since = datetime(2026, 11, 20, 0, 0, 0, 500_000, tzinfo=UTC)
    until = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    windows = export_windows(since, until)
    assert len(windows) == 4 and windows[0][0] == since and windows[-1][1] == until
    assert all(b - a <= timedelta(hours=24) for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(3))
    assert export_windows(since, since + timedelta(minutes=15)) == [(since, since + timedelta(minutes=15))]
    with pytest.raises(TerminalError, match="15 minutes"):
        export_windows(since, since + timedelta(minutes=14))


@pytest.mark.parametrize("short", [timedelta(microseconds=1), timedelta(milliseconds=300), timedelta(seconds=1)])
def test_no_window_passes_a_day_when_its_edges_are_floored_to_the_second(short: timedelta) -> None:
    """A gap just short of two days: the middle edge floored to the second lengthened the last window past
    24 h, which ExportTableToPointInTime refuses, on every resume (the windows are saved)."""
    since = datetime(2026, 11, 20, tzinfo=UTC)
    windows = export_windows(since, since + timedelta(hours=48) - short)
    assert all(b - a <= timedelta(hours=24) for a, b in windows), windows
    assert all(a.microsecond == 0 for a, _ in windows[1:])


def test_since_parses_iso_utc_and_a_bad_value_names_the_option() -> None:
    assert parse_time("SINCE", "2026-11-24T03:00:00Z") == datetime(2026, 11, 24, 3, tzinfo=UTC)
    assert parse_time("SINCE", "2026-11-24 05:00+02:00") == datetime(2026, 11, 24, 3, tzinfo=UTC)
    with pytest.raises(TerminalError, match=r"^SINCE='yesterday' is not a time; write it as ISO-8601"):
        parse_time("SINCE", "yesterday")


# --- resumable bookkeeping ---------------------------------------------------------------------


def run(segments: int = 4, done: tuple[int, ...] = (), since: str = "") -> Progress:
    step = Step(at=T.isoformat(), total_segments=segments,
                segments={i: Segment(next_page=3, done=True, items=2500) for i in done}
                | {1: Segment(next_page=2, start_key={"order_id": {"S": "o9"}}, items=2000)})
    return Progress(mode="scan", table="sales_orders", segments=segments, since=since, steps=(step,),
                    started=T.isoformat())


def test_progress_round_trips_through_its_json() -> None:
    progress = run(done=(0, 2))
    again = progress_from_json(json.loads(json.dumps(progress_json(progress))))
    assert again == progress
    assert again.rows() == 7000 and not again.done
    assert again.steps[0].segment(1).start_key == {"order_id": {"S": "o9"}}
    finished = progress.with_step(0, progress.steps[0].with_segment(1, Segment(done=True))
                                  .with_segment(3, Segment(done=True)))
    assert finished.segments_done and not finished.done  # a Scan's run ends with its tombstones
    tombstoned = replace(finished, tombstones_done=True, tombstones=12)
    assert tombstoned.done and progress_from_json(json.loads(json.dumps(progress_json(tombstoned)))) == tombstoned
    # A checkpoint from before tombstones: a finished run stays finished, an unfinished one will write them.
    old = {k: v for k, v in progress_json(finished).items() if not k.startswith("tombstones")}
    assert progress_from_json(old).done
    assert not progress_from_json({**old, "steps": progress_json(progress)["steps"]}).tombstones_done
    with pytest.raises(ValueError, match="malformed"):
        progress_from_json({**progress_json(progress), "steps": [{"at": 1}]})


def test_an_unfinished_run_resumes_a_finished_one_starts_anew_other_settings_are_refused() -> None:
    wanted = Progress(mode="scan", table="sales_orders", segments=4)
    saved = run(done=(0,))
    assert resumable(saved, wanted) is saved
    assert resumable(None, wanted) is None
    scanned = saved.with_step(0, Step(at=T.isoformat(), total_segments=1, segments={0: Segment(done=True)}))
    assert resumable(scanned, wanted) is scanned  # every page is in, its tombstones are not yet
    assert resumable(replace(scanned, tombstones_done=True), wanted) is None
    exported = replace(scanned, mode="export", segments=0)  # an export's run writes none
    assert resumable(exported, replace(wanted, mode="export", segments=0)) is None
    with pytest.raises(TerminalError, match=r"run `make backfill SEGMENTS=4` to finish it"):
        resumable(saved, Progress(mode="scan", table="sales_orders", segments=8))


def test_a_new_snapshot_never_begins_in_the_second_of_the_previous_one() -> None:
    """Object names carry the snapshot's second: a second snapshot in it would overwrite some pages of the first."""
    previous = datetime(2026, 11, 24, 3, 3, 51, 900_000, tzinfo=UTC)
    assert snapshot_start(previous + timedelta(milliseconds=50), previous) == datetime(2026, 11, 24, 3, 3, 52,
                                                                                        tzinfo=UTC)
    later = previous + timedelta(milliseconds=150)  # already the next second
    assert snapshot_start(later, previous) == later
    assert snapshot_start(later, None) == later
    assert snapshot_id(snapshot_start(previous, previous)) != snapshot_id(previous)
    assert last_snapshot(run()) == T and last_snapshot(None) is None
    assert last_snapshot(Progress(mode="export", table="t", segments=0, steps=(Step(),))) is None


def test_the_store_writes_atomically_and_sets_an_unreadable_checkpoint_aside(tmp_path: Path) -> None:
    path = tmp_path / "backfill" / "sales_orders.json"
    console = Console(capture=True)
    store = ProgressStore(path, console)
    store.begin(run())
    store.update_segment(0, 2, Segment(next_page=1, start_key={"order_id": {"S": "x"}}, items=10))
    assert ProgressStore(path, console).load() == store.progress
    assert [p.name for p in path.parent.iterdir()] == ["sales_orders.json"]  # no temp file left behind
    path.write_text('{"version": 1, "steps": [')
    assert ProgressStore(path, console).load() is None
    assert any(p.name.startswith("sales_orders.json.corrupt-") for p in path.parent.iterdir())
    assert "starting a new snapshot" in console.lines[-1]


def test_a_second_backfill_of_the_table_stops_at_once_with_one_line(tmp_path: Path) -> None:
    """Two backfills of one table would share one checkpoint: the second names the first and stops."""
    settings = load_settings(env={}, state_dir=tmp_path)
    lock = backfill_lock_file(tmp_path, settings.table_name)
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib; from common.process import exclusive\n"
         f"with exclusive(pathlib.Path({str(lock)!r})):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(TerminalError, match=rf"another make backfill of {settings.table_name} "
                                                rf"\(pid {holder.pid}\) still holds"):
            run_backfill(None, settings, Console())  # type: ignore[arg-type]  # stops before any AWS call
    finally:
        holder.communicate("")
    assert not (tmp_path / "backfill" / f"{settings.table_name}.json").exists()


def test_items_the_contract_refused_were_in_the_table_and_get_no_tombstone(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from backfill.tombstones import refused_keys

    settings = load_settings(env={}, state_dir=tmp_path)
    folder = f"{settings.error_prefix}backfill-failed/{snapshot_id(T)}/"
    line = json.dumps({"reason": "quantity: 2.5", "item": image("bad-1", quantity={"N": "2.5"})})
    s3 = FakeS3({folder + "s0000-p000000.json": (line + "\n").encode(),
                     f"{settings.error_prefix}backfill-failed/20200101T000000Z/s0000-p000000.json": b"{}\n"})
    clients: Any = SimpleNamespace(s3=s3)
    assert refused_keys(clients, "b", settings, T) == {"bad-1"}
    s3.objects[folder + "s0001-p000000.json"] = json.dumps({"reason": "x", "item": {"no": "key"}}).encode()
    assert refused_keys(clients, "b", settings, T) is None  # a key it cannot read: no tombstone at all
