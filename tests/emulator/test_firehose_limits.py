"""The firehose runner's Lambda limits against the emulator's Lambda (the deployed transform, its Timeout).

- Each invocation carries at most the processor's BufferSizeInMBs of records (data-transformation.html):
  with 0.2 MB, a backlog of ~0.6 MB is invoked in several batches, not one, and every record lands.
- An invocation that runs out of its function's Timeout is retried (NumberOfRetries), then its records go
  to the error output as processing-failed with Lambda.FunctionTimedOut, the original data kept.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bootstrap.plan import apply, build_plan
from bootstrap.resources.local import kinesis_tips
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from common.state_dir import spec_file
from runners.firehose import FirehoseRunner
from runners.firehose_config import MIB, parse_config
from runners.pipe import encode_event

BUCKET = "fl-lake"
STREAM = "fl-orders-cdc"


@pytest.fixture(scope="module")
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = with_overrides(
        emulator_settings, state_dir=tmp_path_factory.mktemp("limits-state"),
        project="fl-cdc", table_name="fl_orders", stream_name=STREAM, lambda_name="fl-transform",
        pipe_name="fl-pipe", delivery_stream="fl-firehose", glue_database="fl_db", crawler_name="fl-crawler",
        workgroup="fl-wg", lake_bucket=BUCKET, results_bucket="fl-results",
        buffer_interval_s=0, processor_interval_s=0, processor_buffer_mb=0.2, lambda_retries=1,
    )
    apply(Clients(s), build_plan(Clients(s), s), Console(capture=True))
    yield s


def event(order_id: str, note: str = "") -> bytes:
    image = {
        "order_id": {"S": order_id}, "customer_id": {"S": "c1"}, "customer_name": {"S": "Ann" + note},
        "customer_region": {"S": "EU"}, "product_id": {"S": "p1"}, "product_name": {"S": "Pen"},
        "category": {"S": "Books"}, "quantity": {"N": "2"}, "unit_price": {"N": "9.99"}, "discount": {"N": "0.1"},
        "order_total": {"N": "17.98"}, "currency": {"S": "USD"}, "status": {"S": "PLACED"},
        "payment_method": {"S": "card"}, "channel": {"S": "web"},
        "order_ts": {"S": "2026-11-26T10:00:00.000Z"}, "updated_ts": {"S": "2026-11-26T10:00:00.000Z"},
    }
    return encode_event({
        "eventID": f"ev-{order_id}", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/s",
        "dynamodb": {"ApproximateCreationDateTime": 1764151200, "Keys": {"order_id": {"S": order_id}},
                     "NewImage": image, "SequenceNumber": "1", "SizeBytes": 300,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"},
    })


def put(clients: Clients, payloads: list[bytes]) -> None:
    for start in range(0, len(payloads), 100):
        clients.kinesis.put_records(StreamName=STREAM, Records=[
            {"Data": data, "PartitionKey": "k"} for data in payloads[start:start + 100]])


def firehose(clients: Clients, settings: Settings, tag: str, **changes: Any) -> FirehoseRunner:
    """A runner whose delivery stream is created now: it reads what is put from here on (LATEST now)."""
    config = replace(parse_config(json.loads(spec_file(settings.runner_dir, "delivery_stream").read_text())),
                     starting_positions=kinesis_tips(clients.kinesis, STREAM), **changes)
    return FirehoseRunner(clients, config, Path(settings.runner_dir) / f"firehose-{tag}.ckpt.json",
                          sleep=lambda _: None)


def pump(runner: FirehoseRunner, passes: int = 30) -> None:
    quiet = 0
    for _ in range(passes):
        quiet = quiet + 1 if runner.run_once() else 0
        if quiet >= 2:
            break
    runner.close()


def objects(clients: Clients, prefix: str) -> list[bytes]:
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [clients.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for page in pages for o in page.get("Contents", [])]


def test_each_invocation_carries_at_most_the_processors_buffer_and_every_record_lands(settings: Settings) -> None:
    clients = Clients(settings)
    runner = firehose(clients, settings, "buffer")
    ids = [f"o-buf-{i:04d}" for i in range(600)]
    put(clients, [event(order_id, note="x" * 400) for order_id in ids])  # ~1 KB each: ~0.6 MB, three buffers
    assert runner.config.processor_bytes == int(0.2 * MIB)
    invocations: list[int] = []

    def measure(request: Any, **_: Any) -> None:
        records = json.loads(request.body)["records"]
        invocations.append(sum(len(base64.b64decode(r["data"])) for r in records))

    runner.lam.meta.events.register("before-send.lambda.Invoke", measure)
    pump(runner)

    assert len(invocations) >= 3
    assert max(invocations) <= 0.2 * MIB
    rows = [row for body in objects(clients, "orders/") for row in pq.read_table(io.BytesIO(body)).to_pylist()]
    assert set(ids) <= {r["order_id"] for r in rows}


SLOW = "import time\ndef handler(event, context):\n    time.sleep(5)\n    return {'records': []}\n"


def test_an_invocation_that_outlives_its_timeout_is_retried_then_processing_failed(settings: Settings) -> None:
    clients = Clients(settings)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", SLOW)
    arn = clients.client("lambda").create_function(
        FunctionName="fl-slow", Runtime="python3.12", Handler="handler.handler", Timeout=1,
        Role=f"arn:aws:iam::{clients.account_id}:role/fl-cdc-lambda", Code={"ZipFile": buffer.getvalue()},
    )["FunctionArn"]
    runner = firehose(clients, settings, "slow", lambda_arn=arn)
    payloads = [event("o-slow-1"), event("o-slow-2")]
    put(clients, payloads)
    invokes: list[int] = []
    runner.lam.meta.events.register("before-send.lambda.Invoke", lambda **_: invokes.append(1))

    pump(runner)

    docs = []
    for body in objects(clients, "errors/processing-failed/"):
        body = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        docs += [json.loads(line) for line in body.splitlines()]
    mine = {base64.b64decode(d["rawData"]): d for d in docs if base64.b64decode(d["rawData"]) in payloads}
    assert set(mine) == set(payloads)
    assert {(d["errorCode"], d["attemptsMade"]) for d in mine.values()} == {("Lambda.FunctionTimedOut", 2)}
    assert len(invokes) == 2  # NumberOfRetries=1: one retry, then the records are processing-failed
