"""The pure part of the backfill (docs/backfill.md): snapshot items become lake rows, and the bookkeeping
that makes a killed run resume where it stopped.

- A snapshot row is the item as the table held it, built by the transform's own `build_row` (so it meets
  the row contract exactly as a stream row does: lake/schema.py), then marked: `event_type` 'SNAPSHOT',
  `sequence_number` '0', `event_ts` the snapshot's time floored to the second. `latest` is the rule the
  current-state view applies (analytics/sql/view_sales_orders_current.sql), written in Python for tests
  and for the documentation's argument.
- Object keys are deterministic per (snapshot, segment, page): a resumed or repeated segment overwrites
  its own objects instead of adding copies.
- A snapshot that is a full image of the table (a Scan) ends with tombstones: every order the lake holds
  alive but the snapshot did not contain becomes a deleted snapshot row (`tombstone_ids`, `tombstone_rows`),
  so an order deleted while the stream's records were out of reach does not stay alive in the lake.
- `Progress` is the resumable state of one run, kept as JSON in the state directory (backfill/state.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from common.errors import TerminalError
from lake.schema import SNAPSHOT_EVENT_TYPE
from transform.handler import RecordError, build_row, partition_keys

SNAPSHOT = SNAPSHOT_EVENT_TYPE
# Lower than any DynamoDB stream sequence number: a reader that orders by sequence number alone still
# finds a snapshot row older than the stream's changes (the view's rule is the time rule below).
SNAPSHOT_SEQUENCE = "0"
KEY = "order_id"
# One incremental export covers at least 15 minutes and at most 24 hours:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.HowItWorks.html
EXPORT_MIN_WINDOW = timedelta(minutes=15)
EXPORT_MAX_WINDOW = timedelta(hours=24)
PROGRESS_VERSION = 1


# --- time ------------------------------------------------------------------------------------


def floor_second(moment: datetime) -> datetime:
    """UTC, whole seconds: the resolution of a stream record's ApproximateCreationDateTime."""
    return moment.astimezone(UTC).replace(microsecond=0)


def snapshot_start(now: datetime, previous: datetime | None) -> datetime:
    """When a new snapshot may begin: `now`, unless the table's previous snapshot began in the same second.

    A snapshot's objects are named after its second (`snapshot_id`): a second snapshot in that second
    would overwrite the first one's pages where their numbers meet and leave the rest, so it begins at
    the next second instead (the caller waits until then, so every Scan page is still read after it).
    """
    if previous is None or floor_second(now) > floor_second(previous):
        return now
    return floor_second(previous) + timedelta(seconds=1)


def snapshot_id(moment: datetime) -> str:
    """The name a snapshot's objects carry: its second, e.g. 20261124T030351Z."""
    return floor_second(moment).strftime("%Y%m%dT%H%M%SZ")


def parse_time(flag: str, text: str) -> datetime:
    """ISO-8601 (a trailing Z, or no zone, is UTC) -> an aware UTC datetime; one line naming `flag` otherwise."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone that moves it past year 1 or 9999
        raise TerminalError(f"{flag}={text!r} is not a time; write it as ISO-8601 UTC, "
                            "e.g. 2026-11-24T03:00:00Z") from None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- items -> rows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """One page of items: the rows that fit the contract, and (item, reason) for those that do not."""

    rows: list[dict[str, Any]]
    failed: list[tuple[dict[str, Any], str]]


def snapshot_row(image: Mapping[str, Any], at: datetime, read_ms: int, *, deleted: bool = False,
                 snapshot: str | None = None) -> dict[str, Any]:
    """One item (DynamoDB JSON, as Scan or an export writes it) -> its lake row as of snapshot time `at`.

    Built through the transform's `build_row` as if it were an INSERT (or a REMOVE for a `deleted` item,
    whose image only needs its key), so every value meets the same contract checks; RecordError otherwise.
    `read_ms` (epoch ms) is when the item was read: the row's arrival_ts.
    """
    second = floor_second(at)
    key = image.get(KEY) if isinstance(image, Mapping) else None
    order_id = key.get("S") if isinstance(key, Mapping) else None
    record = {
        "eventName": "REMOVE" if deleted else "INSERT",
        "eventID": f"snapshot-{snapshot or snapshot_id(second)}-{order_id}",
        "dynamodb": {
            "ApproximateCreationDateTime": int(second.timestamp()),
            "SequenceNumber": SNAPSHOT_SEQUENCE,
            ("OldImage" if deleted else "NewImage"): dict(image),
        },
    }
    row = build_row(record, read_ms)
    row["event_type"] = SNAPSHOT
    return row


def convert_items(images: Iterable[Mapping[str, Any]], at: datetime, read_ms: int,
                  snapshot: str | None = None) -> Converted:
    """A page of items -> rows; an item the contract refuses is kept aside with its one-line reason."""
    rows, failed = [], []
    for image in images:
        try:
            rows.append(snapshot_row(image, at, read_ms, snapshot=snapshot))
        except RecordError as exc:
            failed.append((dict(image), str(exc)))
    return Converted(rows, failed)


def export_line_row(line: Mapping[str, Any], at: datetime, read_ms: int, snapshot: str) -> dict[str, Any]:
    """One line of an export data file -> its row.

    Full export: {"Item": {...}}. Incremental export: {"Keys", "NewImage"?, "OldImage"?, "Metadata"}, where a
    line without NewImage is an item deleted in the window: a snapshot row with is_deleted.
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html
    """
    if "Item" in line:
        return snapshot_row(line["Item"], at, read_ms, snapshot=snapshot)
    keys = line.get("Keys")
    if not isinstance(keys, Mapping):
        raise RecordError("export line: neither Item nor Keys; expected a DynamoDB export line")
    if isinstance(line.get("NewImage"), Mapping):
        return snapshot_row({**line["NewImage"], **keys}, at, read_ms, snapshot=snapshot)
    old = line.get("OldImage") if isinstance(line.get("OldImage"), Mapping) else {}
    return snapshot_row({**old, **keys}, at, read_ms, deleted=True, snapshot=snapshot)


def snapshot_event_prefix(snapshot: str) -> str:
    """What every row of one snapshot carries at the start of its event_id (snapshot_row): how the lake's
    rows of that snapshot are found again, wherever they are (a compaction merges objects, not event ids)."""
    return f"snapshot-{snapshot}-"


def tombstone_ids(contained: Iterable[str], alive: Iterable[str], written: Iterable[str] = ()) -> list[str]:
    """The orders a complete snapshot must mark deleted, sorted: alive in the lake but not in the snapshot.

    `written` are the tombstones this snapshot already holds (a run killed while writing them): they stay,
    although the lake no longer counts them alive, so that a page written again holds what it held.
    """
    return sorted((set(alive) | set(written)) - set(contained))


def tombstone_rows(order_ids: Iterable[str], at: datetime, read_ms: int, snapshot: str) -> list[dict[str, Any]]:
    """A deleted snapshot row per order: the key only, built as a delete is (a REMOVE with the key as its
    image), with the snapshot's time and sequence '0', so a stream change in the snapshot's second or later
    still wins over it and it wins over older stream rows (the ordering rule)."""
    return [snapshot_row({KEY: {"S": order_id}}, at, read_ms, deleted=True, snapshot=snapshot)
            for order_id in order_ids]


# --- the ordering rule -----------------------------------------------------------------------


def _second_of(row: Mapping[str, Any]) -> str:
    return str(row["event_ts"])[:19]  # 'YYYY-MM-DDTHH:MM:SS': text order is time order


def _is_snapshot(row: Mapping[str, Any]) -> bool:
    return row.get("event_type") == SNAPSHOT


def latest(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The row that holds one order's current state: the view's rule, in Python.

    Stream rows compare by sequence number, as they always have. Snapshot rows compare by their time.
    Between the newest of each, the snapshot wins only if its second is later than the stream change's:
    a stream change in the snapshot's own second (or after) wins. Duplicates: the first arrival.
    """
    newest_stream = _best([r for r in rows if not _is_snapshot(r)],
                          lambda r: (int(r["sequence_number"]), str(r["event_id"])))
    newest_snap = _best([r for r in rows if _is_snapshot(r)], lambda r: (_second_of(r), str(r["event_id"])))
    if newest_snap is None or newest_stream is None:
        return newest_snap or newest_stream
    return newest_snap if _second_of(newest_snap) > _second_of(newest_stream) else newest_stream


def _best(rows: Sequence[Mapping[str, Any]], rank: Any) -> Mapping[str, Any] | None:
    """The highest-ranked row; among equals (a redelivered duplicate) the first to arrive."""
    best = None
    for row in rows:
        if best is None or rank(row) > rank(best) or (
                rank(row) == rank(best) and str(row.get("arrival_ts") or "") < str(best.get("arrival_ts") or "")):
            best = row
    return best


def current_state(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """order_id -> its latest row, deleted orders left out (what sales_orders_current holds)."""
    by_order: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_order.setdefault(str(row[KEY]), []).append(row)
    state = {}
    for order_id, order_rows in by_order.items():
        row = latest(order_rows)
        if row is not None and not row.get("is_deleted"):
            state[order_id] = row
    return state


# --- where rows go ---------------------------------------------------------------------------


def partition_prefix(lake_prefix: str, at: datetime) -> str:
    """The Hive partition of a snapshot's rows: the day of their event_ts, as the transform partitions."""
    keys = partition_keys(iso(floor_second(at)))
    return f"{lake_prefix}year={keys['year']}/month={keys['month']}/day={keys['day']}/"


def object_key(lake_prefix: str, at: datetime, segment: int, page: int, extension: str) -> str:
    """Deterministic per (snapshot, segment, page): a resumed page overwrites its own object."""
    return f"{partition_prefix(lake_prefix, at)}backfill-{snapshot_id(at)}-s{segment:04d}-p{page:06d}{extension}"


def tombstone_key(lake_prefix: str, at: datetime, page: int, extension: str) -> str:
    """A snapshot's tombstones, beside its pages and deterministic too: written again, a page overwrites itself."""
    return f"{partition_prefix(lake_prefix, at)}backfill-{snapshot_id(at)}-deleted-p{page:06d}{extension}"


def failed_key(error_prefix: str, at: datetime, segment: int, page: int) -> str:
    """Items the contract refuses, with their reasons, beside the pipeline's own error output."""
    return f"{error_prefix}backfill-failed/{snapshot_id(at)}/s{segment:04d}-p{page:06d}.json"


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [items[:0]]


# --- incremental export windows ----------------------------------------------------------------


def export_windows(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """[since, until) cut into equal windows of at most 24 h (one incremental export each, in order)."""
    span = until - since
    if span < EXPORT_MIN_WINDOW:
        raise TerminalError(f"SINCE={iso(since)} is less than 15 minutes before the table's latest restorable "
                            f"time ({iso(until)}); AWS's incremental export covers 15 minutes at least: "
                            "give an earlier SINCE, or run `make backfill` without SINCE")
    # The middle edges are whole seconds: flooring one moves it back by less than a second, so each window is
    # cut a second short of the maximum, and none grows past 24 h once its start has moved back.
    count = math.ceil(span / (EXPORT_MAX_WINDOW - timedelta(seconds=1)))
    step = span / count
    edges = [since, *(floor_second(since + step * i) for i in range(1, count)), until]
    return list(itertools.pairwise(edges))


# --- resumable progress ----------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """Where one segment (a Scan segment, or an export's data file) stands."""

    next_page: int = 0
    start_key: dict[str, Any] | None = None  # Scan's LastEvaluatedKey after the last saved page
    done: bool = False
    items: int = 0  # rows written so far
    failed: int = 0  # items the contract refused


@dataclass(frozen=True)
class Step:
    """One snapshot: the whole Scan, one full export, or one incremental export window."""

    at: str = ""  # the snapshot's time (ISO UTC); empty until an export says it
    since: str = ""  # incremental: the window's start
    until: str = ""  # incremental: the window's end (exclusive)
    export_arn: str = ""
    files: tuple[str, ...] = ()  # an export's data files, in manifest order
    total_segments: int = 0
    segments: Mapping[int, Segment] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.total_segments > 0 and all(self.segment(i).done for i in range(self.total_segments))

    def segment(self, index: int) -> Segment:
        return self.segments.get(index, Segment())

    def with_segment(self, index: int, state: Segment) -> Step:
        return replace(self, segments={**self.segments, index: state})


@dataclass(frozen=True)
class Progress:
    """A run: how (scan or export), with what, and each step's segments. Saved after every page."""

    mode: str  # "scan" | "export"
    table: str
    segments: int  # BACKFILL_SEGMENTS of a scan (an export's files decide its own)
    since: str = ""
    steps: tuple[Step, ...] = ()
    started: str = ""
    tombstones_done: bool = False  # the snapshot's tombstones are in the lake (a Scan's run only)
    tombstones: int = 0  # how many

    @property
    def writes_tombstones(self) -> bool:
        """A Scan reads the whole table, so what it did not find is gone; an export's run keeps its own rule
        (an incremental export reports its deletes; docs/backfill.md, Limits, for the full export)."""
        return self.mode == "scan"

    @property
    def segments_done(self) -> bool:
        return bool(self.steps) and all(step.done for step in self.steps)

    @property
    def done(self) -> bool:
        return self.segments_done and (self.tombstones_done or not self.writes_tombstones)

    def with_step(self, index: int, step: Step) -> Progress:
        return replace(self, steps=(*self.steps[:index], step, *self.steps[index + 1:]))

    def rows(self) -> int:
        return sum(s.items for step in self.steps for s in step.segments.values())

    def failed(self) -> int:
        return sum(s.failed for step in self.steps for s in step.segments.values())


def progress_json(progress: Progress) -> dict[str, Any]:
    return {
        "version": PROGRESS_VERSION, "mode": progress.mode, "table": progress.table, "segments": progress.segments,
        "since": progress.since, "started": progress.started,
        "tombstones_done": progress.tombstones_done, "tombstones": progress.tombstones,
        "steps": [{
            "at": s.at, "since": s.since, "until": s.until, "export_arn": s.export_arn, "files": list(s.files),
            "total_segments": s.total_segments,
            "segments": {str(i): {"next_page": g.next_page, "start_key": g.start_key, "done": g.done,
                                  "items": g.items, "failed": g.failed}
                         for i, g in sorted(s.segments.items())},
        } for s in progress.steps],
    }


def progress_from_json(data: Any) -> Progress:
    """The saved progress; ValueError when it is not one this module wrote."""
    if not isinstance(data, dict) or data.get("version") != PROGRESS_VERSION:
        raise ValueError("not a backfill checkpoint of this version")
    try:
        steps = tuple(Step(
            at=str(s["at"]), since=str(s["since"]), until=str(s["until"]), export_arn=str(s["export_arn"]),
            files=tuple(str(f) for f in s["files"]), total_segments=int(s["total_segments"]),
            segments={int(i): Segment(int(g["next_page"]), g["start_key"], bool(g["done"]), int(g["items"]),
                                      int(g["failed"]))
                      for i, g in s["segments"].items()},
        ) for s in data["steps"])
        # A checkpoint written before tombstones existed: a finished run stays finished, an unfinished one
        # writes them once its segments are done.
        tombstones_done = bool(data.get("tombstones_done", bool(steps) and all(s.done for s in steps)))
        return Progress(mode=str(data["mode"]), table=str(data["table"]), segments=int(data["segments"]),
                        since=str(data["since"]), steps=steps, started=str(data["started"]),
                        tombstones_done=tombstones_done, tombstones=int(data.get("tombstones", 0)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed backfill checkpoint ({type(exc).__name__}: {exc})") from None


def last_snapshot(progress: Progress | None) -> datetime | None:
    """When the newest snapshot of a saved run began (None: no run, or no step that says so yet)."""
    stamps = [parse_time("snapshot", step.at) for step in (progress.steps if progress else ()) if step.at]
    return max(stamps, default=None)


def resumable(saved: Progress | None, wanted: Progress) -> Progress | None:
    """The unfinished run to go on with, or None to start a new snapshot (nothing saved, or it finished).

    An unfinished run with other settings stops with one line rather than mixing two snapshots' segments.
    """
    if saved is None or saved.done:
        return None
    if (saved.mode, saved.table, saved.segments, saved.since) != (wanted.mode, wanted.table, wanted.segments,
                                                                   wanted.since):
        what = (f"SEGMENTS={saved.segments}" if saved.mode == "scan" else "") + (
            f" SINCE={saved.since}" if saved.since else "")
        raise TerminalError(f"an unfinished backfill of {saved.table} ({saved.mode}) is in the checkpoint; run "
                            f"`make backfill {what.strip()}` to finish it, or delete the checkpoint to start over")
    return saved
