"""The pipeline's health for the dashboard: pure functions compute the figures, a thin shell gathers inputs.

Inputs, and where each comes from (the shell `gather_health`):
- lake rows: event_id, event_type, event_ts, arrival_ts and the key of the object that holds the row,
  read through the engine's Arrow dataset of the Glue table (the catalog's columns and types; a JSON
  lake's timestamps are cast as the `sales_orders_cdc` view casts them), `lake_events`;
- an S3 listing of the lake bucket: every object's key, size and LastModified, `list_objects`;
- the runners' status files, `<state>/runners/<name>.status.json` (what `make status` shows), read
  as plain JSON (analytics never imports the runners), `read_runner_statuses`;
- the last `make verify` result, `<state>/verify.json`, written by `save_verify_result`.

Figures (the pure part, `compute_health`, unit-tested without a server):
- end-to-end freshness: per lake row, the time from the change (event_ts) to its object landing in S3
  (the object's LastModified), as p50 / p95 / max per time bucket of LastModified, beside the
  change -> Firehose p95 (arrival_ts - event_ts) the KPI reports. Percentiles are exact (nearest rank).
  S3's LastModified has a resolution of one second, so a delay below it can come out negative: it
  is counted as 0. Rows in compacted files (`make compact`) are left out: their object's time is the
  compaction's, not the delivery's.
- changes in and out per minute: in = distinct change events by the time of the change (event_ts),
  out = lake rows (redeliveries included) by the time their object landed (LastModified), each as a
  rate per minute over buckets sized so the lake's whole span fits in at most MAX_POINTS buckets.
- the change mix: distinct change events per event_type (INSERT / MODIFY / REMOVE), and the snapshot
  rows `make backfill` wrote (SNAPSHOT) if any. Snapshot rows are not changes: freshness and the
  changes in and out per minute leave them out (their event_ts is the snapshot's start, not a change's).
- objects per partition and mean object size, with the partitions `make compact` would rewrite
  (more than `more_than` small objects, the rule of lake.compact.partitions_to_compact).
- error output: objects and bytes per type, the first folder under the error prefix
  (processing-failed, format-conversion-failed, pipe-dead-letter, redriven, ...).
- each runner's lag, pending records, records in/out, objects, errors and dead letters, as its status
  file says, and how long ago it wrote it.
- the last verify result: ok, lake and table order counts, when, and its report lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from common.files import replace_file
from common.state_dir import status_files, verify_file
from lake.compact import (
    DEFAULT_LARGE_BYTES,
    DEFAULT_TARGET_ROWS,
    LakeObject,
    compacted_rows,
    is_settled,
    object_format,
)
from lake.partitions import day_partition
from lake.schema import SNAPSHOT_EVENT_TYPE

RUNNER_ORDER = ("pipe", "firehose")  # pipeline order, for display only; other status files follow by name
CHANGE_TYPES = ("INSERT", "MODIFY", "REMOVE")
COMPACT_MORE_THAN = 10  # `make compact`'s default: partitions holding more small objects than this
MAX_POINTS = 120  # time buckets per series at most
BUCKET_CHOICES_S = (1, 5, 10, 30, 60, 300, 900, 1800, 3600, 6 * 3600, 12 * 3600, 86400)
EVENT_COLUMNS = ("event_id", "event_type", "event_ts", "arrival_ts")
EVENTS_SCHEMA = pa.schema([
    pa.field("event_id", pa.string()),
    pa.field("event_type", pa.string()),
    pa.field("event_ts", pa.timestamp("ms")),
    pa.field("arrival_ts", pa.timestamp("ms")),
    pa.field("key", pa.string()),
])


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Object:
    """One object of a listing: key, size in bytes, LastModified (UTC)."""

    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class Freshness:
    """Change -> S3 delay over some rows, in ms; firehose_p95_ms is change -> Firehose (arrival_ts)."""

    rows: int
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None
    firehose_p95_ms: int | None = None


@dataclass(frozen=True)
class FreshnessPoint:
    at: datetime  # the bucket's start (UTC, naive)
    freshness: Freshness


@dataclass(frozen=True)
class FlowPoint:
    """Changes in (by event_ts) and lake rows out (by their object's LastModified) in one bucket."""

    at: datetime
    changes_in: int
    changes_out: int
    bucket_s: int

    @property
    def in_per_minute(self) -> float:
        return self.changes_in * 60 / self.bucket_s

    @property
    def out_per_minute(self) -> float:
        return self.changes_out * 60 / self.bucket_s


@dataclass(frozen=True)
class PartitionHealth:
    day: str  # YYYY-MM-DD
    objects: int  # data objects in the partition
    bytes: int
    small_objects: int  # the ones `make compact` would rewrite (not large, not a full compacted file)
    compact: bool  # more than the threshold of small objects: `make compact` rewrites this day

    @property
    def mean_bytes(self) -> float:
        return self.bytes / self.objects if self.objects else 0.0


@dataclass(frozen=True)
class ErrorOutput:
    type: str  # the first folder under the error prefix
    objects: int
    bytes: int


@dataclass(frozen=True)
class RunnerHealth:
    """A runner's status file, as `make status` shows it, plus the age of the file."""

    name: str
    lag_ms: int | None
    pending: int
    records_in: int
    records_out: int
    objects_out: int
    errors: int
    dead_letters: int
    age_s: float | None  # seconds between the status file's last write and the health's time
    last_error: str = ""
    data_loss: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyResult:
    """The last `make verify`: the JSON of <state>/verify.json."""

    ok: bool
    lake_orders: int
    table_orders: int
    at: str  # ISO 8601 UTC, e.g. 2026-01-05T10:00:00Z
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Health:
    generated_at: datetime
    bucket_s: int
    freshness: Freshness  # over every delivered row
    freshness_series: tuple[FreshnessPoint, ...]
    flow: tuple[FlowPoint, ...]
    mix: tuple[tuple[str, int], ...]  # (event_type, distinct events)
    partitions: tuple[PartitionHealth, ...]
    compact_more_than: int
    errors: tuple[ErrorOutput, ...]
    runners: tuple[RunnerHealth, ...]
    verify: VerifyResult | None
    lake_rows: int  # rows in the lake, redeliveries included
    lake_events: int  # distinct change events in the lake

    @property
    def error_objects(self) -> int:
        return sum(e.objects for e in self.errors)


class ReconciliationLike(Protocol):
    """What save_verify_result needs (analytics.verify.Reconciliation satisfies it)."""

    @property
    def ok(self) -> bool: ...

    @property
    def lake_orders(self) -> int: ...

    @property
    def table_orders(self) -> int: ...

    def report_lines(self) -> list[str]: ...


# --- the last verify result ----------------------------------------------------------------------


def _iso_utc(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_record(reconciliation: ReconciliationLike, at: datetime) -> dict[str, Any]:
    """Pure: the JSON document of one verify result."""
    return {
        "ok": bool(reconciliation.ok),
        "lake_orders": int(reconciliation.lake_orders),
        "table_orders": int(reconciliation.table_orders),
        "at": _iso_utc(at),
        "lines": [str(line) for line in reconciliation.report_lines()],
    }


def save_verify_result(state_dir: Path, reconciliation: ReconciliationLike, at: datetime | None = None) -> Path:
    """Write <state_dir>/verify.json atomically (a reader never sees half a file); returns its path."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = verify_file(state_dir)
    body = json.dumps(verify_record(reconciliation, at or datetime.now(UTC)), indent=2) + "\n"
    replace_file(path, body)
    return path


def parse_verify_result(document: Any) -> VerifyResult | None:
    """Pure: a verify.json document as a VerifyResult; None when it is not one."""
    if not isinstance(document, Mapping):
        return None
    try:
        ok, lake, table = document["ok"], document["lake_orders"], document["table_orders"]
        at, lines = document.get("at", ""), document.get("lines", [])
    except KeyError:
        return None
    if not isinstance(ok, bool) or not all(isinstance(n, int) and not isinstance(n, bool) for n in (lake, table)):
        return None
    if not isinstance(lines, list):
        return None
    return VerifyResult(ok, lake, table, str(at), tuple(str(line) for line in lines))


def load_verify_result(state_dir: Path) -> VerifyResult | None:
    """The last `make verify` result, or None when verify has not run here (or its file is unreadable)."""
    path = verify_file(Path(state_dir))
    try:
        return parse_verify_result(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


# --- runners -------------------------------------------------------------------------------------


def read_runner_statuses(runner_dir: Path) -> dict[str, dict[str, Any]]:
    """Every `<name>.status.json` in the runners' directory, by runner name (unreadable files skipped)."""
    found: dict[str, dict[str, Any]] = {}
    for name, path in status_files(Path(runner_dir)).items():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict):
            found[name] = document
    return found


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def runner_health(statuses: Mapping[str, Mapping[str, Any]], now: datetime) -> tuple[RunnerHealth, ...]:
    """Pure: one RunnerHealth per status file, in pipeline order (pipe, firehose, then by name)."""
    order = {name: i for i, name in enumerate(RUNNER_ORDER)}
    stamp = now.timestamp() if now.tzinfo else now.replace(tzinfo=UTC).timestamp()
    out = []
    for name in sorted(statuses, key=lambda n: (order.get(n, len(order)), n)):
        s = statuses[name]
        lag = s.get("lag_ms")
        updated = s.get("updated")
        age = max(stamp - float(updated), 0.0) if isinstance(updated, int | float) and updated > 0 else None
        out.append(RunnerHealth(
            name=name,
            lag_ms=int(lag) if isinstance(lag, int | float) and not isinstance(lag, bool) else None,
            pending=_int(s.get("pending")), records_in=_int(s.get("records_in")),
            records_out=_int(s.get("records_out")), objects_out=_int(s.get("objects_out")),
            errors=_int(s.get("errors")), dead_letters=_int(s.get("dead_letters")), age_s=age,
            last_error=str(s.get("last_error") or ""), data_loss=tuple(str(x) for x in s.get("data_loss") or ()),
        ))
    return tuple(out)


# --- the S3 listing ------------------------------------------------------------------------------


def partition_health(objects: Iterable[S3Object], lake_prefix: str,
                     more_than: int = COMPACT_MORE_THAN) -> tuple[PartitionHealth, ...]:
    """Pure: data objects per day partition, their bytes, and whether `make compact` would rewrite the day.

    Small objects are the ones `make compact` rewrites (lake.compact.is_settled: neither large nor a full
    compacted file); a day with more than `more_than` of them is the one lake.compact.partitions_to_compact
    lists.
    """
    days: dict[str, list[S3Object]] = {}
    for o in objects:
        part = day_partition(o.key, lake_prefix)
        if part is not None and object_format(o.key) is not None:
            days.setdefault(f"{part.year}-{part.month}-{part.day}", []).append(o)
    out = []
    for day in sorted(days):
        members = days[day]
        small = sum(not is_settled(LakeObject(o.key, o.size, ""), DEFAULT_TARGET_ROWS, DEFAULT_LARGE_BYTES)
                    for o in members)
        out.append(PartitionHealth(day, len(members), sum(o.size for o in members), small, small > more_than))
    return tuple(out)


def error_outputs(objects: Iterable[S3Object], error_prefix: str) -> tuple[ErrorOutput, ...]:
    """Pure: objects and bytes per error-output type (the first folder under the prefix), by type name."""
    counts: dict[str, list[int]] = {}
    for o in objects:
        if not o.key.startswith(error_prefix) or o.key.endswith("/"):
            continue
        rest = o.key[len(error_prefix):]
        if "/" not in rest:
            continue
        kind = rest.split("/", 1)[0]
        entry = counts.setdefault(kind, [0, 0])
        entry[0] += 1
        entry[1] += o.size
    return tuple(ErrorOutput(kind, n, size) for kind, (n, size) in sorted(counts.items()))


# --- lake rows -----------------------------------------------------------------------------------


def events_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Pure: lake rows (event_id, event_type, event_ts, arrival_ts, key) as the table compute_health reads."""
    rows = list(rows)
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in EVENTS_SCHEMA},
                    schema=EVENTS_SCHEMA)


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def objects_table(objects: Iterable[S3Object], lake_prefix: str) -> pa.Table:
    """Pure: the lake's delivered data objects (compacted files left out) with their LastModified."""
    keys, times = [], []
    for o in objects:
        if day_partition(o.key, lake_prefix) and object_format(o.key) and compacted_rows(o.key) is None:
            keys.append(o.key)
            times.append(_naive_utc(o.last_modified))
    return pa.table({"key": pa.array(keys, pa.string()), "last_modified": pa.array(times, pa.timestamp("ms"))})


def bucket_seconds(span_s: float, max_points: int = MAX_POINTS) -> int:
    """Pure: the smallest bucket width that fits `span_s` into at most `max_points` buckets. Buckets start on
    whole multiples of the width, so a span touches up to ceil(span / width) + 1 of them."""
    for width in BUCKET_CHOICES_S:
        if math.ceil(span_s / width) + 1 <= max_points:
            return width
    days = math.ceil(span_s / max_points / 86400) + 1
    return days * 86400


_ROWS_SQL = f"""
SELECT e.event_ts, e.arrival_ts, o.last_modified,
       greatest(date_diff('millisecond', e.event_ts, o.last_modified), 0) AS e2e_ms,
       date_diff('millisecond', e.event_ts, e.arrival_ts) AS firehose_ms
FROM events AS e JOIN objects AS o ON e.key = o.key
WHERE e.event_ts IS NOT NULL AND coalesce(e.event_type, '') <> '{SNAPSHOT_EVENT_TYPE}'
"""


def _bucket(column: str, width: int) -> str:
    return f"to_timestamp(floor(epoch({column}) / {width}) * {width})::TIMESTAMP"


def _freshness(row: Sequence[Any]) -> Freshness:
    rows, p50, p95, top, fh = row
    as_int = [None if v is None else int(v) for v in (p50, p95, top, fh)]
    return Freshness(int(rows or 0), as_int[0], as_int[1], as_int[2], as_int[3])


_FRESHNESS_COLUMNS = ("count(*), quantile_disc(e2e_ms, 0.5), quantile_disc(e2e_ms, 0.95), max(e2e_ms), "
                      "quantile_disc(firehose_ms, 0.95)")


def compute_health(
    events: pa.Table,
    objects: Sequence[S3Object],
    statuses: Mapping[str, Mapping[str, Any]],
    verify: VerifyResult | None,
    *,
    lake_prefix: str,
    error_prefix: str,
    generated_at: datetime,
    compact_more_than: int = COMPACT_MORE_THAN,
    max_points: int = MAX_POINTS,
) -> Health:
    """Pure: every health figure from the inputs (DuckDB in memory does the per-row arithmetic)."""
    events = events.select(list(EVENTS_SCHEMA.names)).cast(EVENTS_SCHEMA)
    delivered = objects_table(objects, lake_prefix)
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.register("events", events)
        conn.register("objects", delivered)
        conn.execute(f"CREATE TEMP VIEW delivered AS {_ROWS_SQL}")
        overall = _freshness(conn.execute(f"SELECT {_FRESHNESS_COLUMNS} FROM delivered").fetchone() or (0,) * 5)
        low, high = conn.execute(
            "SELECT least(min(t), (SELECT min(last_modified) FROM delivered)),"
            " greatest(max(t), (SELECT max(last_modified) FROM delivered))"
            " FROM (SELECT event_ts AS t FROM events WHERE event_ts IS NOT NULL"
            f" AND coalesce(event_type, '') <> '{SNAPSHOT_EVENT_TYPE}')"
        ).fetchone() or (None, None)
        width = bucket_seconds((high - low).total_seconds() if low and high else 0, max_points)
        series = tuple(
            FreshnessPoint(at, _freshness(rest)) for at, *rest in conn.execute(
                f"SELECT {_bucket('last_modified', width)} AS bucket_at, {_FRESHNESS_COLUMNS} "
                "FROM delivered GROUP BY bucket_at ORDER BY bucket_at").fetchall()
        )
        ins = dict(conn.execute(f"SELECT {_bucket('event_ts', width)} AS bucket_at, count(DISTINCT event_id) "
                                "FROM events WHERE event_ts IS NOT NULL "
                                f"AND coalesce(event_type, '') <> '{SNAPSHOT_EVENT_TYPE}' "
                                "GROUP BY bucket_at").fetchall())
        outs = dict(conn.execute(f"SELECT {_bucket('last_modified', width)} AS bucket_at, count(*) FROM delivered "
                                 "GROUP BY bucket_at").fetchall())
        mix_counts = dict(conn.execute("SELECT coalesce(event_type, '(none)'), count(DISTINCT event_id) FROM events "
                                       "GROUP BY 1").fetchall())
        lake_rows, lake_events = conn.execute(  # snapshot rows are rows of the lake, not changes
            "SELECT count(*), count(DISTINCT event_id) FILTER (WHERE coalesce(event_type, '') <> "
            f"'{SNAPSHOT_EVENT_TYPE}') FROM events").fetchone() or (0, 0)
    finally:
        conn.close()
    flow: list[FlowPoint] = []
    if ins or outs:
        first, last = min([*ins, *outs]), max([*ins, *outs])
        at = first
        while at <= last:
            flow.append(FlowPoint(at, int(ins.get(at, 0)), int(outs.get(at, 0)), width))
            at += timedelta(seconds=width)
    mix = [(t, int(mix_counts.pop(t, 0))) for t in CHANGE_TYPES]
    mix += sorted((t, int(n)) for t, n in mix_counts.items())
    return Health(
        generated_at=generated_at,
        bucket_s=width,
        freshness=overall,
        freshness_series=series,
        flow=tuple(flow),
        mix=tuple(mix),
        partitions=partition_health(objects, lake_prefix, compact_more_than),
        compact_more_than=compact_more_than,
        errors=error_outputs(objects, error_prefix),
        runners=runner_health(statuses, generated_at),
        verify=verify,
        lake_rows=int(lake_rows),
        lake_events=int(lake_events),
    )


# --- the I/O shell -------------------------------------------------------------------------------


def list_objects(s3: Any, bucket: str, prefix: str = "") -> list[S3Object]:
    """Every object of the bucket under `prefix` (ListObjectsV2, page by page)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found.append(S3Object(item["Key"], int(item.get("Size", 0)), item["LastModified"]))
    return found


def lake_events(engine: Any, settings: Any) -> pa.Table:
    """Every lake row's event columns and object key, read through the engine (`analytics.engine.Engine`).

    The rows come from the Glue table's objects through an Arrow dataset (the engine's own, or one over
    the table location when the engine reads with httpfs), each batch tagged with its object; DuckDB
    casts the event columns as the `sales_orders_cdc` view does (a JSON lake's timestamps are strings).
    """
    from analytics.catalog import Column
    from analytics.dialect import to_duckdb
    from analytics.engine import lake_dataset, s3_filesystem
    from analytics.views import cdc_view_sql

    table = engine.table
    dataset = engine.dataset
    if dataset is None:
        dataset = lake_dataset(table, s3_filesystem(settings), f"{table.bucket}/{table.prefix}")
    present = [c for c in EVENT_COLUMNS if c in dataset.schema.names]
    root = f"{table.bucket}/"
    batches = []
    for tagged in dataset.scanner(columns=present).scan_batches():
        batch = tagged.record_batch
        path = tagged.fragment.path
        key = path[len(root):] if path.startswith(root) else path
        keys = pa.DictionaryArray.from_arrays(pa.array([0] * batch.num_rows, pa.int32()), pa.array([key]))
        batches.append(pa.RecordBatch.from_arrays([*batch.columns, keys], names=[*present, "object_key"]))
    schema = pa.schema([dataset.schema.field(c) for c in present]
                       + [pa.field("object_key", pa.dictionary(pa.int32(), pa.string()))])
    raw = pa.Table.from_batches(batches, schema=schema)
    info = replace(table, name="__health_events", partition_keys=(),
                   columns=(*(c for c in table.columns if c.name in present), Column("object_key", "string")))
    select = to_duckdb("SELECT event_id, event_type, event_ts, arrival_ts, object_key AS key "
                       f"FROM ({cdc_view_sql(info)})")
    conn = engine.conn
    conn.register("__health_events_arrow", raw)
    try:
        conn.execute(f"CREATE OR REPLACE VIEW {info.qualified_name} AS SELECT * FROM __health_events_arrow")
        try:
            result = conn.sql(select).to_arrow_table()
        finally:
            conn.execute(f"DROP VIEW IF EXISTS {info.qualified_name}")
    finally:
        conn.unregister("__health_events_arrow")
    return result


def gather_health(
    clients: Any,
    settings: Any,
    engine: Any = None,
    *,
    generated_at: datetime | None = None,
    compact_more_than: int = COMPACT_MORE_THAN,
) -> Health:
    """The thin shell: lake rows via the engine, a listing of the lake bucket, status files, verify.json.

    `engine` is an open analytics.engine.Engine (`make analyze` passes its own); without one (ENGINE=athena)
    an engine is opened over the Glue table for the lake rows and closed again.
    """
    if engine is None:
        from analytics.engine import open_engine

        with open_engine(clients, settings) as opened:
            return gather_health(clients, settings, opened, generated_at=generated_at,
                                 compact_more_than=compact_more_than)
    bucket = settings.lake_bucket_for(clients.account_id)
    objects = list_objects(clients.s3, bucket)
    return compute_health(
        lake_events(engine, settings),
        objects,
        read_runner_statuses(settings.runner_dir),
        load_verify_result(settings.state_dir),
        lake_prefix=engine.table.prefix if engine.table.bucket == bucket else settings.lake_prefix,
        error_prefix=settings.error_prefix,
        generated_at=generated_at or datetime.now(UTC),
        compact_more_than=compact_more_than,
    )


__all__ = [
    "ErrorOutput",
    "FlowPoint",
    "Freshness",
    "FreshnessPoint",
    "Health",
    "PartitionHealth",
    "RunnerHealth",
    "S3Object",
    "VerifyResult",
    "compute_health",
    "events_table",
    "gather_health",
    "list_objects",
    "load_verify_result",
    "read_runner_statuses",
    "save_verify_result",
]
