"""make backfill on the embedded emulator marks deleted the orders the lake holds but the table no longer has.

A few hundred orders reach the lake through the running pipeline; then, with the runners stopped, some are
deleted and some updated, and the pipe's checkpoint is moved past those records (as if the stream had aged
them out), so the lake still holds the deleted orders alive: `make verify` names them extra. `make backfill`
ends its Scan snapshot with a tombstone per such order, and the reconciliation passes exactly. Running the
tombstone step of that snapshot again (a run killed before it finished) and a second full backfill change
nothing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from backfill import run_backfill
from backfill.core import SNAPSHOT, progress_from_json, progress_json
from backfill.state import checkpoint_path
from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.files import replace_file
from generator.seed import run_seed
from runners import service
from runners.checkpoint import Checkpoint
from tests.fixtures.stack import changes_of, named_stack, verify_stack

DELETED = 40  # orders deleted while the stream's records are out of reach
UPDATED = 10  # and orders changed then, which the snapshot itself brings back


@pytest.fixture(scope="module")
def lake_ahead_of_table(emulator_settings: Settings,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, list[str], list[str]]]:
    """The pipeline delivered 300 orders; then orders were deleted and updated where the stream cannot reach."""
    settings = named_stack(emulator_settings, "tb", tmp_path_factory.mktemp("tombstone-state"),
                           buffer_interval_s=1, processor_interval_s=0, backfill_segments=2, backfill_page_items=25)
    clients = Clients(settings)
    apply(clients, build_plan(clients, settings), Console(capture=True))
    service.start(settings)
    try:
        run_seed(clients, settings, orders=300, rate=None, duration=None, seed=29, console=Console(capture=True))
        service.wait_drained(settings, timeout=180)
        before, _ = verify_stack(clients, settings)
        assert before.ok and before.table_orders > DELETED + UPDATED, before.report_lines()
        service.stop(settings)

        # Those records will be out of the pipeline's reach: read from a LATEST iterator taken now, they are the
        # stream's last, and its checkpoint moves past them (as if the stream had aged them out).
        arn = clients.dynamodb.describe_table(TableName=settings.table_name)["Table"]["LatestStreamArn"]
        items = clients.dynamodb.scan(TableName=settings.table_name, ConsistentRead=True)["Items"]
        items.sort(key=lambda item: item["order_id"]["S"])
        deleted = [item["order_id"]["S"] for item in items[:DELETED]]
        updated = [item["order_id"]["S"] for item in items[DELETED:DELETED + UPDATED]]

        def write() -> None:
            for order_id in deleted:
                clients.dynamodb.delete_item(TableName=settings.table_name, Key={"order_id": {"S": order_id}})
            for item in items[DELETED:DELETED + UPDATED]:
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                clients.dynamodb.put_item(TableName=settings.table_name,
                                          Item={**item, "status": {"S": "RETURNED"}, "updated_ts": {"S": now}})

        shard, records = changes_of(clients, arn, write, count=DELETED + UPDATED)
        assert [r["eventName"] for r in records] == ["REMOVE"] * DELETED + ["MODIFY"] * UPDATED
        checkpoint = Checkpoint(settings.runner_dir / "pipe.checkpoint.json", scope=arn)
        checkpoint.advance(shard, records[-1]["dynamodb"]["SequenceNumber"])
        checkpoint.save()
        service.start(settings)
        yield settings, deleted, updated
    finally:
        service.stop(settings)


def tombstones(clients: Clients, settings: Settings) -> dict[str, list[str]]:
    """Each tombstone object of the lake -> the orders it marks deleted (snapshot rows with is_deleted)."""
    bucket = settings.lake_bucket_for(clients.account_id)
    found = {}
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=settings.lake_prefix):
        for obj in page.get("Contents", []):
            if "-deleted-p" not in obj["Key"]:
                continue
            body = clients.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows = pq.read_table(io.BytesIO(body)).to_pylist()
            assert all(r["event_type"] == SNAPSHOT and r["is_deleted"] and r["sequence_number"] == "0"
                       and r["status"] is None for r in rows)
            found[obj["Key"]] = [r["order_id"] for r in rows]
    return found


def test_orders_deleted_out_of_the_streams_reach_get_tombstones_and_reconcile_exactly(
        lake_ahead_of_table: tuple[Settings, list[str], list[str]]) -> None:
    settings, deleted, updated = lake_ahead_of_table
    clients = Clients(settings)
    service.wait_drained(settings, timeout=120)
    gap, _ = verify_stack(clients, settings)
    assert gap.extra_in_lake == tuple(sorted(deleted)) and not gap.missing_in_lake, gap.report_lines()
    assert {d.order_id for d in gap.differences} == set(updated)

    result = run_backfill(clients, settings, Console(capture=True))
    assert result.tombstones == DELETED and result.rows == gap.table_orders
    service.wait_drained(settings, timeout=120)
    after, state = verify_stack(clients, settings)
    assert after.ok, after.report_lines()
    assert after.table_orders == gap.table_orders
    written = tombstones(clients, settings)
    assert len(written) == 2  # 40 tombstones in pages of 25
    assert sorted(i for ids in written.values() for i in ids) == sorted(deleted)

    # Killed after its tombstones were written but before the checkpoint said so: the run resumes, and
    # writes the same tombstones under the same names, though the lake no longer counts those orders alive.
    path = checkpoint_path(settings)
    saved = progress_from_json(json.loads(path.read_text()))
    replace_file(path, json.dumps(progress_json(replace(saved, tombstones_done=False, tombstones=0))), durable=True)
    resumed = run_backfill(clients, settings, Console(capture=True))
    assert resumed.resumed and resumed.tombstones == DELETED and resumed.snapshot_at == result.snapshot_at
    assert tombstones(clients, settings) == written

    # A second full run: a new snapshot, which finds nothing left to mark deleted.
    again = run_backfill(clients, settings, Console(capture=True))
    assert not again.resumed and again.snapshot_at != result.snapshot_at and again.tombstones == 0
    final, state_final = verify_stack(clients, settings)
    assert final.ok, final.report_lines()
    assert state_final == state and tombstones(clients, settings) == written
