"""make backfill on the embedded emulator: a table that already holds thousands of orders, whose stream
records the pipeline never sees (its checkpoint starts past them, as if they had aged out), enters the
lake as a snapshot while a writer keeps updating and deleting orders, some in the very second the
backfill begins; after the drain the lake's current state equals a DynamoDB scan. A backfill SIGKILLed
half way resumes from its checkpoint, and a second full run changes nothing in the current state."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from backfill import run_backfill
from backfill.core import SNAPSHOT, progress_from_json
from backfill.state import checkpoint_path
from bootstrap.plan import apply, build_plan
from common.aws import Clients, wait_until
from common.config import Settings, with_overrides
from common.console import Console
from generator.seed import run_seed
from runners import service
from runners.checkpoint import Checkpoint
from tests.fixtures.stack import changes_of, named_stack, verify_stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table_with_history(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Bootstrapped, 2,500 orders written with the runners stopped, the pipe's checkpoint at the stream's end."""
    settings = named_stack(emulator_settings, "bf", tmp_path_factory.mktemp("backfill-state"),
                           buffer_interval_s=1, processor_interval_s=0, backfill_segments=4, backfill_page_items=200)
    clients = Clients(settings)
    apply(clients, build_plan(clients, settings), Console(capture=True))
    summary = run_seed(clients, settings, orders=2500, rate=None, duration=None, seed=17, console=Console(capture=True))
    assert summary.deleted > 0
    # The records of that history are out of the pipeline's reach: its checkpoint starts after the last one.
    arn = clients.dynamodb.describe_table(TableName=settings.table_name)["Table"]["LatestStreamArn"]
    checkpoint = Checkpoint(settings.runner_dir / "pipe.checkpoint.json", scope=arn)
    checkpoint.advance(*stream_end(clients, settings, arn))
    checkpoint.save()
    service.start(settings)
    try:
        yield settings
    finally:
        service.stop(settings)


def stream_end(clients: Clients, settings: Settings, arn: str) -> tuple[str, str]:
    """The shard and sequence number of the stream's last record: one more change is written (an order's
    updated_ts touched), and it is the last (tests/fixtures/stack.py `changes_of`)."""
    (item,) = clients.dynamodb.scan(TableName=settings.table_name, Limit=1)["Items"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    shard, (touched,) = changes_of(clients, arn, lambda: clients.dynamodb.put_item(
        TableName=settings.table_name, Item={**item, "updated_ts": {"S": now}}), count=1)
    assert touched["eventName"] == "MODIFY" and touched["dynamodb"]["Keys"]["order_id"] == item["order_id"]
    return shard, touched["dynamodb"]["SequenceNumber"]


def lake_rows(clients: Clients, settings: Settings) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bucket = settings.lake_bucket_for(clients.account_id)
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=settings.lake_prefix):
        for obj in page.get("Contents", []):
            body = clients.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def snapshot_keys(clients: Clients, settings: Settings) -> list[str]:
    bucket = settings.lake_bucket_for(clients.account_id)
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=settings.lake_prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if "/backfill-" in o["Key"])


class Writer(threading.Thread):
    """Updates and deletes existing orders without pause until stopped; records when each write landed."""

    def __init__(self, clients: Clients, settings: Settings, items: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.ddb, self.table, self.items = clients.client("dynamodb"), settings.table_name, items
        self.stop = threading.Event()
        self.writes: list[tuple[float, str]] = []  # (time the write returned, kind)
        self.rng = random.Random(5)

    def run(self) -> None:
        live = list(self.items)
        while not self.stop.is_set() and live:
            item = live[self.rng.randrange(len(live))]
            if self.rng.random() < 0.25:
                self.ddb.delete_item(TableName=self.table, Key={"order_id": item["order_id"]})
                live.remove(item)
                self.writes.append((time.time(), "delete"))
                continue
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            item["status"] = {"S": self.rng.choice(["PAID", "SHIPPED", "DELIVERED", "CANCELLED"])}
            item["updated_ts"] = {"S": now}
            self.ddb.put_item(TableName=self.table, Item=item)
            self.writes.append((time.time(), "update"))


def test_backfill_while_orders_change_reconciles_exactly(table_with_history: Settings) -> None:
    settings = table_with_history
    clients = Clients(settings)
    items = clients.dynamodb.scan(TableName=settings.table_name, ConsistentRead=True)["Items"]
    assert len(items) > 500
    writer = Writer(clients, settings, items)
    writer.start()
    wait_until(lambda: len(writer.writes) >= 20, "the writer to be writing", timeout=30, interval=0.05)
    # Begin half way through a second, so writes land in the snapshot's second both before and after it began.
    wait_until(lambda: 0.45 <= time.time() % 1 < 0.6, "the middle of a second", timeout=5, interval=0.005)
    result = run_backfill(clients, settings, Console(capture=True))
    ended = time.time()
    wait_until(lambda: writer.writes[-1][0] > ended, "a write after the backfill", timeout=10, interval=0.05)
    writer.stop.set()
    writer.join(timeout=30)
    service.wait_drained(settings, timeout=180)

    began = datetime.fromisoformat(result.snapshot_at[0].replace("Z", "+00:00")).timestamp()
    second = int(began)
    in_second = [(t, kind) for t, kind in writer.writes if int(t) == second]
    assert any(t < began for t, _ in in_second) and any(t >= began for t, _ in in_second)
    assert {kind for t, kind in writer.writes if t >= began} == {"update", "delete"}

    reconciliation, _ = verify_stack(clients, settings)
    assert reconciliation.ok, reconciliation.report_lines()
    assert reconciliation.table_orders > 500
    rows = lake_rows(clients, settings)
    snapshots = [r for r in rows if r["event_type"] == SNAPSHOT and not r["is_deleted"]]
    deleted = sum(1 for _, kind in writer.writes if kind == "delete")
    assert len(items) - deleted <= result.rows == len(snapshots) <= len(items)
    # A tombstone goes to an order the lake still counts alive without the snapshot holding it: one whose
    # delete was still on its way through the pipeline when the backfill looked (the machine's load decides).
    tombstones = [r for r in rows if r["event_type"] == SNAPSHOT and r["is_deleted"]]
    assert len(tombstones) == result.tombstones <= deleted
    # The snapshot's second holds stream changes too: the edge the rule exists for was exercised.
    assert any(r["event_type"] != SNAPSHOT and int(r["event_ts"].replace(tzinfo=UTC).timestamp()) == second
               for r in rows)
    # None of the table's history before the pipeline's checkpoint reached the lake through the stream.
    assert not [r for r in rows if r["event_type"] != SNAPSHOT and r["event_ts"].replace(tzinfo=UTC).timestamp()
                < second - 60]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment `make backfill` would run the CLI with, for these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIPELINE_CONFIG"))}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if value in ("", None):
            continue
        env[f.name.upper()] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return {**env, **extra}


def test_a_killed_backfill_resumes_and_a_second_run_changes_nothing(table_with_history: Settings) -> None:
    settings = with_overrides(table_with_history, backfill_page_items=50)  # ~46 pages: a kill lands mid-run
    clients = Clients(settings)
    service.wait_drained(settings, timeout=120)
    before, state_before = verify_stack(clients, settings)
    assert before.ok, before.report_lines()
    path = checkpoint_path(settings)

    proc = subprocess.Popen([sys.executable, "-m", "cli", "backfill"], cwd=ROOT, env=cli_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def half_way() -> bool:
            try:
                progress = progress_from_json(json.loads(path.read_text()))
            except (OSError, ValueError):
                return False
            pages = [progress.steps[0].segment(i).next_page for i in range(progress.steps[0].total_segments)]
            return progress.started != before_started and sum(pages) >= 8 and not progress.done

        before_started = progress_from_json(json.loads(path.read_text())).started
        wait_until(half_way, "some pages of the backfill to be checkpointed", timeout=60, interval=0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = progress_from_json(json.loads(path.read_text()))
    assert not killed.done
    keys_at_kill = set(snapshot_keys(clients, settings))

    resumed = run_backfill(clients, settings, Console(capture=True))
    assert resumed.resumed and resumed.snapshot_at == (
        datetime.fromisoformat(killed.steps[0].at).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",)
    stamp = "backfill-" + datetime.fromisoformat(killed.steps[0].at).strftime("%Y%m%dT%H%M%SZ")
    run_keys = [k for k in snapshot_keys(clients, settings) if stamp in k]
    assert keys_at_kill & set(run_keys)  # what the killed run wrote was kept, or overwritten in place
    pages = sum(store.next_page for store in checkpoint_progress(path).steps[0].segments.values())
    assert len(run_keys) <= pages  # one object per page at most: nothing was written twice under two names
    assert resumed.rows == before.table_orders  # each item once, though the run was cut in two

    after, state_after = verify_stack(clients, settings)
    assert after.ok, after.report_lines()
    assert state_after == state_before

    again = run_backfill(clients, settings, Console(capture=True))
    assert not again.resumed and again.rows == before.table_orders
    final, state_final = verify_stack(clients, settings)
    assert final.ok, final.report_lines()
    assert state_final == state_before


def checkpoint_progress(path: Path) -> Any:
    return progress_from_json(json.loads(path.read_text()))
