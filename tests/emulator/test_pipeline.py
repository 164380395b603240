"""End to end on the embedded emulator: generator -> DynamoDB -> pipe runner -> Kinesis -> firehose
runner (transform Lambda via Invoke) -> S3 lake. Every change event arrives exactly once after dedup,
the lake's current state equals a DynamoDB scan, a poison record lands in the error output, and a
SIGKILL of both runners mid-seed loses nothing."""

from __future__ import annotations

import base64
import gzip
import io
import json
import threading
from collections.abc import Iterator
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from bootstrap.plan import apply, build_plan
from chaos.drill import stream_records
from common.aws import Clients, wait_until
from common.config import Settings
from common.console import Console
from generator.seed import run_seed
from runners import service
from runners.error_output import list_errors
from runners.loop import read_status
from tests.fixtures.stack import named_stack


@pytest.fixture(scope="module")
def pipeline(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = named_stack(emulator_settings, "e2e", tmp_path_factory.mktemp("pipeline-state"),
                           buffer_interval_s=1, processor_interval_s=0)
    clients = Clients(settings)
    apply(clients, build_plan(clients, settings), Console(capture=True))
    service.start(settings)
    try:
        yield settings
    finally:
        service.stop(settings)


def stream_event_ids(clients: Clients, settings: Settings) -> set[str]:
    """Every change event DynamoDB Streams holds for the table, read independently of the runners."""
    return {r["eventID"] for r in stream_records(clients, settings)}


def lake_rows(clients: Clients, bucket: str, prefix: str) -> list[dict]:
    rows: list[dict] = []
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = clients.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def current_state(rows: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for row in rows:
        seen = latest.get(row["order_id"])
        if seen is None or int(row["sequence_number"]) > int(seen["sequence_number"]):
            latest[row["order_id"]] = row
    return {k: v for k, v in latest.items() if not v["is_deleted"]}


def normal(item: dict) -> dict:
    """DynamoDB scan item and lake row, on common ground: strings, ms timestamps, exact money."""
    out = {}
    for key in ("order_id", "customer_id", "customer_name", "customer_region", "product_id", "product_name",
                "category", "currency", "status", "payment_method", "channel"):
        out[key] = item[key]
    out["quantity"] = int(item["quantity"])
    for key in ("unit_price", "discount", "order_total"):
        out[key] = Decimal(str(item[key])).normalize()
    for key in ("order_ts", "updated_ts"):
        value = item[key]
        out[key] = value if isinstance(value, str) else value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return out


def table_scan(clients: Clients, table: str) -> dict[str, dict]:
    from boto3.dynamodb.types import TypeDeserializer

    des = TypeDeserializer()
    items = {}
    for page in clients.dynamodb.get_paginator("scan").paginate(TableName=table):
        for raw in page["Items"]:
            item = {k: des.deserialize(v) for k, v in raw.items()}
            items[item["order_id"]] = item
    return items


def assert_lake_matches(clients: Clients, settings: Settings, stream_complete: bool = True) -> list[dict]:
    """The lake holds every event the stream holds (and, if the stream is complete, nothing else);
    its current state equals a scan of the table."""
    bucket = settings.lake_bucket_for(clients.account_id)
    rows = lake_rows(clients, bucket, settings.lake_prefix)
    in_lake, in_stream = {r["event_id"] for r in rows}, stream_event_ids(clients, settings)
    assert in_stream <= in_lake
    if stream_complete:  # duplicates only from at-least-once, never an event the stream does not have
        assert in_lake == in_stream
    lake = {k: normal(v) for k, v in current_state(rows).items()}
    table = {k: normal(v) for k, v in table_scan(clients, settings.table_name).items()}
    assert lake.keys() == table.keys()
    assert lake == table
    return rows


def test_changes_flow_to_the_lake_exactly_once_and_poison_goes_to_errors(pipeline: Settings) -> None:
    clients = Clients(pipeline)
    summary = run_seed(clients, pipeline, orders=600, rate=None, duration=None, seed=11,
                       console=Console(capture=True))
    assert summary.deleted > 0 and summary.updated > 0
    clients.kinesis.put_record(StreamName=pipeline.stream_name, Data=b"this is not json", PartitionKey="poison")
    service.wait_drained(pipeline, timeout=120)

    rows = assert_lake_matches(clients, pipeline)
    assert len({r["event_id"] for r in rows}) == summary.writes
    assert {r["event_type"] for r in rows} == {"INSERT", "MODIFY", "REMOVE"}
    keys = [o["Key"] for o in clients.s3.list_objects_v2(Bucket="e2e-lake", Prefix="orders/")["Contents"]]
    assert all(k.startswith("orders/year=") and "/month=" in k and "/day=" in k for k in keys)
    assert all(k.split("/")[-1].startswith("e2e-firehose-1-") and k.endswith(".parquet") for k in keys)

    errors = clients.s3.list_objects_v2(Bucket="e2e-lake", Prefix="errors/processing-failed/").get("Contents", [])
    docs = []
    for obj in errors:
        body = clients.s3.get_object(Bucket="e2e-lake", Key=obj["Key"])["Body"].read()
        body = gzip.decompress(body) if obj["Key"].endswith(".gz") else body
        docs += [json.loads(line) for line in body.splitlines()]
    (poison,) = docs
    assert base64.b64decode(poison["rawData"]) == b"this is not json"
    assert poison["errorCode"] == "Lambda.ProcessingFailedStatus"  # AWS's code; the reason is in the logs
    (listed,) = [r for r in list_errors(clients, pipeline) if r.raw == b"this is not json"]
    assert "JSON" in listed.reason


def test_sigkill_of_both_runners_mid_seed_loses_nothing(pipeline: Settings) -> None:
    clients = Clients(pipeline)
    done = threading.Event()
    result = {}

    def seed() -> None:
        result["summary"] = run_seed(clients, pipeline, orders=800, rate=200, duration=None, seed=12,
                                     console=Console(capture=True))
        done.set()

    def delivered() -> int:
        return (read_status(pipeline.runner_dir, "firehose") or {}).get("records_in", 0)

    before = delivered()
    thread = threading.Thread(target=seed)
    thread.start()
    # Mid-seed: this seed's changes are flowing through both runners (the firehose has read some) when they die.
    wait_until(lambda: delivered() > before, "the firehose runner to read the seed's first changes", timeout=60,
               interval=0.05)
    assert service.stop(pipeline, kill=True) == ["pipe", "firehose"]
    service.start(pipeline)
    thread.join(timeout=120)
    assert done.is_set()
    service.wait_drained(pipeline, timeout=120)
    rows = assert_lake_matches(clients, pipeline)
    assert len(rows) >= len({r["event_id"] for r in rows})  # duplicates allowed, never losses
