"""A complete Scan snapshot ends with tombstones: the orders the lake holds alive but the snapshot did not contain.

A Scan shows what exists, so an order deleted while the stream's records were out of the pipeline's reach
(down past the stream's 24 hours, or a lake that holds orders the table no longer has) would keep its last
lake row. Once every segment is written, each such order gets a snapshot row with `is_deleted`
(backfill/core.py `tombstone_rows`); the ordering rule lets a stream change in the snapshot's second or later
win over it, and it wins over older stream rows (docs/backfill.md).

Both sides are read from the lake, through the analytics engine (analytics/engine.py): the orders alive are
the `sales_orders_current` view's (the rule itself, not a copy of it), and what the snapshot contained is its
own rows, found by their event_id in the snapshot's day partition, so a resumed run (whose earlier pages
another process wrote) and a compacted day (whose objects were merged) both count. Items the contract refused
(kept under the error prefix) were in the table too: they get no tombstone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.engine import open_engine
from analytics.verify import lake_state
from backfill.core import (
    KEY,
    SNAPSHOT,
    chunks,
    floor_second,
    iso,
    parse_time,
    snapshot_event_prefix,
    snapshot_id,
    tombstone_ids,
    tombstone_rows,
)
from backfill.lake_out import LakeOut
from backfill.state import ProgressStore
from common.aws import Clients
from common.config import Settings
from common.console import Console
from transform.handler import partition_keys


@dataclass(frozen=True)
class SnapshotInLake:
    """What the lake says about one snapshot: the orders alive now, and the snapshot's own rows."""

    alive: frozenset[str]
    contained: frozenset[str]  # orders the snapshot holds a (not deleted) row of
    rows: int  # how many such rows (a page written twice under one name counts once)
    written: frozenset[str]  # orders the snapshot already holds a tombstone of


def read_lake(clients: Clients, settings: Settings, at: datetime) -> SnapshotInLake:
    """The lake's alive orders (the current-state view) and snapshot `at`'s rows, in one engine."""
    day = partition_keys(iso(floor_second(at)))  # the partition the snapshot's rows are in
    with open_engine(clients, settings) as engine:
        alive = frozenset(str(r[KEY]) for r in lake_state(engine.conn, (KEY,)))
        found = engine.query(
            "SELECT order_id, coalesce(is_deleted, false) AS deleted, count(*) FROM sales_orders_cdc "
            "WHERE year = ? AND month = ? AND day = ? AND event_type = ? AND starts_with(event_id, ?) "
            "GROUP BY 1, 2",
            [day["year"], day["month"], day["day"], SNAPSHOT, snapshot_event_prefix(snapshot_id(at))])
    return SnapshotInLake(
        alive=alive,
        contained=frozenset(str(order_id) for order_id, deleted, _ in found if not deleted),
        rows=sum(int(count) for _, deleted, count in found if not deleted),
        written=frozenset(str(order_id) for order_id, deleted, _ in found if deleted),
    )


def refused_keys(clients: Clients, bucket: str, settings: Settings, at: datetime) -> set[str] | None:
    """The keys of the items the contract refused in this snapshot; None when one of them has no readable key."""
    keys: set[str] = set()
    prefix = f"{settings.error_prefix}backfill-failed/{snapshot_id(at)}/"
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = clients.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8")
            for line in body.splitlines():
                key = _refused_key(json.loads(line)) if line.strip() else ""
                if key is None:
                    return None
                if key:
                    keys.add(key)
    return keys


def _refused_key(entry: Any) -> str | None:
    """The key of a refused item ({"item": DynamoDB JSON}) or of a row the table could not hold ({"row": ...})."""
    if isinstance(entry, Mapping) and isinstance(entry.get("row"), Mapping):
        key = entry["row"].get(KEY)
        return key if isinstance(key, str) and key else None
    return _item_key(entry.get("item") if isinstance(entry, Mapping) else None)


def _item_key(item: Any) -> str | None:
    value = item.get(KEY) if isinstance(item, Mapping) else None
    key = value.get("S") if isinstance(value, Mapping) else None
    return key if isinstance(key, str) and key else None


def write_tombstones(clients: Clients, settings: Settings, out: LakeOut, store: ProgressStore,
                     console: Console) -> int:
    """Tombstones for the run's snapshot, once all its segments are in the lake; how many were written.

    Refuses (with a warning, writing none) when the lake holds fewer of the snapshot's rows than the run
    wrote, or a refused item's key cannot be read: a tombstone for an order the table holds would delete it.
    """
    progress = store.progress
    at = parse_time("snapshot", progress.steps[0].at)
    lake = read_lake(clients, settings, at)
    refused = refused_keys(clients, out.bucket, settings, at) if progress.failed() else set()
    if lake.rows < progress.rows() or refused is None:
        why = (f"the lake holds {lake.rows:,} of its {progress.rows():,} rows" if lake.rows < progress.rows()
               else "an item the contract refused has no readable order_id")
        console.warn(f"no tombstones for snapshot {snapshot_id(at)}: {why}; an order deleted while the stream was "
                     "out of reach may stay in the lake (`make verify` names it): run `make backfill` again")
        store.finish_tombstones(0)
        return 0
    ids = tombstone_ids(lake.contained | refused, lake.alive, lake.written)
    rows = tombstone_rows(ids, at, int(time.time() * 1000), snapshot_id(at))
    for page, chunk in enumerate(chunks(rows, settings.backfill_page_items) if rows else []):
        out.write_tombstones(at, page, chunk)
    store.finish_tombstones(len(ids))
    return len(ids)
