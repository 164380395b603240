"""The firehose runner against the emulator: deletes are never lost to a bad old attribute, a Lambda hiccup is
retried with backoff instead of failing the batch, and every failed record keeps its own reason (in the
function's log group, where `make errors` joins it to its error record)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from common.state_dir import spec_file
from runners.error_output import list_errors
from runners.firehose import FirehoseRunner
from runners.firehose_config import parse_config
from runners.pipe import PipeRunner
from tests.fixtures.faults import Fault
from tests.fixtures.runners import pump

BUCKET = "fr-lake"
ITEM = {
    "order_id": {"S": "o-1"}, "customer_id": {"S": "c1"}, "customer_name": {"S": "Ann"},
    "customer_region": {"S": "EU-WEST"}, "product_id": {"S": "p1"}, "product_name": {"S": "Book"},
    "category": {"S": "Books"}, "quantity": {"N": "2"}, "unit_price": {"N": "9.99"}, "discount": {"N": "0.1"},
    "order_total": {"N": "17.98"}, "currency": {"S": "USD"}, "status": {"S": "PLACED"},
    "payment_method": {"S": "card"}, "channel": {"S": "web"},
    "order_ts": {"S": "2026-11-26T10:00:00.000Z"}, "updated_ts": {"S": "2026-11-26T10:00:00.000Z"},
}


@pytest.fixture(scope="module")
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = with_overrides(
        emulator_settings, state_dir=tmp_path_factory.mktemp("reliability-state"),
        project="fr-cdc", table_name="fr_orders", stream_name="fr-orders-cdc", lambda_name="fr-transform",
        pipe_name="fr-pipe", delivery_stream="fr-firehose", glue_database="fr_db", crawler_name="fr-crawler",
        workgroup="fr-wg", lake_bucket=BUCKET, results_bucket="fr-results",
        buffer_interval_s=0, processor_interval_s=0,
    )
    apply(Clients(s), build_plan(Clients(s), s), Console(capture=True))
    yield s


def pipe_runner(clients: Clients, settings: Settings) -> PipeRunner:
    spec = json.loads(spec_file(settings.runner_dir, "pipe").read_text())
    return PipeRunner(clients, spec, Path(settings.runner_dir) / "pipe.ckpt.json")


def firehose_runner(clients: Clients, settings: Settings, tag: str, **kwargs: Any) -> FirehoseRunner:
    config = parse_config(json.loads(spec_file(settings.runner_dir, "delivery_stream").read_text()))
    return FirehoseRunner(clients, config, Path(settings.runner_dir) / f"firehose-{tag}.ckpt.json", **kwargs)




def bodies(clients: Clients, prefix: str) -> list[bytes]:
    listing = clients.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return [clients.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listing]


def lake_rows(clients: Clients) -> list[dict]:
    return [row for body in bodies(clients, "orders/") for row in pq.read_table(io.BytesIO(body)).to_pylist()]


def error_docs(clients: Clients, kind: str) -> list[dict]:
    return [json.loads(line) for body in bodies(clients, f"errors/{kind}/") for line in body.splitlines()]


def test_a_delete_lands_even_when_the_deleted_item_holds_a_value_the_lake_cannot(settings: Settings) -> None:
    clients = Clients(settings)
    table = "fr_orders"
    clients.dynamodb.put_item(TableName=table, Item={**ITEM, "order_id": {"S": "o-del"}})
    clients.dynamodb.update_item(TableName=table, Key={"order_id": {"S": "o-del"}},
                                 UpdateExpression="SET quantity = :q", ExpressionAttributeValues={":q": {"S": "two"}})
    clients.dynamodb.delete_item(TableName=table, Key={"order_id": {"S": "o-del"}})
    pump(pipe_runner(clients, settings), firehose_runner(clients, settings, "delete"))

    events = sorted((r for r in lake_rows(clients) if r["order_id"] == "o-del"), key=lambda r: r["sequence_number"])
    assert [(r["event_type"], r["is_deleted"], r["quantity"]) for r in events] == [
        ("INSERT", False, 2), ("REMOVE", True, None)]  # the latest event is the delete: the order is gone
    (failed,) = [d for d in error_docs(clients, "processing-failed") if b"o-del" in base64.b64decode(d["rawData"])]
    assert json.loads(base64.b64decode(failed["rawData"]))["eventName"] == "MODIFY"  # the original record, kept
    (listed,) = [r for r in list_errors(clients, settings) if r.raw == base64.b64decode(failed["rawData"])]
    assert listed.reason.startswith("dynamodb.NewImage.quantity: got 'two', expected int64")
    assert not error_docs(clients, "format-conversion-failed")


def test_a_throttled_invoke_is_retried_with_backoff_and_every_record_lands(settings: Settings) -> None:
    clients = Clients(settings)
    ids = [f"o-thr-{i}" for i in range(20)]
    for order_id in ids:
        clients.dynamodb.put_item(TableName="fr_orders", Item={**ITEM, "order_id": {"S": order_id}})
    slept: list[float] = []
    firehose = firehose_runner(clients, settings, "throttle", sleep=slept.append)  # no real waits
    throttle = Fault(firehose.lam, "Invoke", "TooManyRequestsException", times=2, status=429)

    pump(pipe_runner(clients, settings), firehose)

    assert throttle.injected == 2
    assert len(slept) == 2 and 0 <= slept[0] <= 1.0 and 0 <= slept[1] <= 2.0  # full jitter under 1 s, then 2 s
    assert set(ids) <= {r["order_id"] for r in lake_rows(clients)}
    failed = [base64.b64decode(d["rawData"]) for d in error_docs(clients, "processing-failed")]
    assert not [raw for raw in failed if any(order_id.encode() in raw for order_id in ids)]


def test_every_failed_record_of_one_big_invoke_keeps_its_own_reason(settings: Settings) -> None:
    """130 records fail in one invoke: `make errors` says why each one failed, not a 4 KB log tail's few."""
    clients = Clients(settings)
    payloads = {}
    for i in range(130):
        record = {"eventID": f"ev-r{i}", "eventName": f"UPSERT-{i}", "dynamodb": {}}
        payloads[json.dumps(record).encode()] = f"eventName: got 'UPSERT-{i}', expected INSERT, MODIFY or REMOVE"
    for start in range(0, len(payloads), 100):
        batch = list(payloads)[start:start + 100]
        clients.kinesis.put_records(StreamName="fr-orders-cdc",
                                    Records=[{"Data": data, "PartitionKey": "k"} for data in batch])
    invokes: list[int] = []
    firehose = firehose_runner(clients, settings, "reasons")
    firehose.lam.meta.events.register("before-send.lambda.Invoke", lambda **_: invokes.append(1))

    pump(None, firehose)

    assert len(invokes) == 1  # all of them in one invocation
    mine = {base64.b64decode(d["rawData"]): d for d in error_docs(clients, "processing-failed")
            if base64.b64decode(d["rawData"]) in payloads}
    assert len(mine) == len(payloads)
    assert {doc["errorCode"] for doc in mine.values()} == {"Lambda.ProcessingFailedStatus"}
    listed = {r.raw: r.reason for r in list_errors(clients, settings) if r.raw in payloads}
    assert listed == payloads
