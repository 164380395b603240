"""Faults and poison input: throttling is retried (bounded), a failing or lying Lambda sends records to the
error output with their original payload, wrong types and huge items never stop the flow."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.state_dir import spec_file
from runners.error_output import list_errors
from runners.firehose import FirehoseRunner
from runners.firehose_config import parse_config
from runners.pipe import PipeRunner
from tests.fixtures.faults import Fault
from tests.fixtures.runners import pump
from tests.fixtures.stack import named_stack

GOOD = {
    "order_id": {"S": "o-good"}, "customer_id": {"S": "c1"}, "customer_name": {"S": "Ann"},
    "customer_region": {"S": "EU-WEST"}, "product_id": {"S": "p1"}, "product_name": {"S": "Book"},
    "category": {"S": "Books"}, "quantity": {"N": "2"}, "unit_price": {"N": "9.99"}, "discount": {"N": "0.1"},
    "order_total": {"N": "17.98"}, "currency": {"S": "USD"}, "status": {"S": "PLACED"},
    "payment_method": {"S": "card"}, "channel": {"S": "web"},
    "order_ts": {"S": "2026-11-26T10:00:00.000Z"}, "updated_ts": {"S": "2026-11-26T10:00:00.000Z"},
}


@pytest.fixture(scope="module")
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = named_stack(emulator_settings, "ft", tmp_path_factory.mktemp("faults-state"),
                    buffer_interval_s=0, processor_interval_s=0, lambda_retries=2)
    apply(Clients(s), build_plan(Clients(s), s), Console(capture=True))
    yield s


def runners(clients: Clients, settings: Settings, tag: str, **config_changes) -> tuple[PipeRunner, FirehoseRunner]:
    pipe_spec = json.loads(spec_file(settings.runner_dir, "pipe").read_text())
    fh_spec = json.loads(spec_file(settings.runner_dir, "delivery_stream").read_text())
    config = parse_config(fh_spec)
    if config_changes:
        from dataclasses import replace

        config = replace(config, **config_changes)
    ckpt = Path(settings.runner_dir)
    return (PipeRunner(clients, pipe_spec, ckpt / "pipe.ckpt.json"),
            FirehoseRunner(clients, config, ckpt / f"firehose-{tag}.ckpt.json"))




def objects(clients: Clients, prefix: str) -> list[bytes]:
    listing = clients.s3.list_objects_v2(Bucket="ft-lake", Prefix=prefix).get("Contents", [])
    return [clients.s3.get_object(Bucket="ft-lake", Key=o["Key"])["Body"].read() for o in listing]


def error_docs(clients: Clients, kind: str) -> list[dict]:
    return [json.loads(line) for body in objects(clients, f"errors/{kind}/") for line in body.splitlines()]


def lake_ids(clients: Clients) -> list[str]:
    return [r["order_id"] for body in objects(clients, "orders/") for r in pq.read_table(io.BytesIO(body)).to_pylist()]


def deploy_lambda(clients: Clients, name: str, source: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", source)
    fn = clients.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Handler="handler.handler",
        Role=f"arn:aws:iam::{clients.account_id}:role/ft-cdc-lambda", Code={"ZipFile": buffer.getvalue()})
    return fn["FunctionArn"]


def test_wrong_types_and_huge_items_do_not_stop_the_flow(settings: Settings) -> None:
    clients = Clients(settings)
    bad = {**GOOD, "order_id": {"S": "o-bad-types"}, "quantity": {"S": "two"}}
    huge = {**GOOD, "order_id": {"S": "o-huge"}, "notes": {"S": "x" * 350_000}}
    for item in (GOOD, bad, huge):
        clients.dynamodb.put_item(TableName="ft_orders", Item=item)
    pipe, firehose = runners(clients, settings, "types")
    pump(pipe, firehose)
    assert (pipe.discovered.loads, firehose.discovered.loads) == (1, 1)  # shards found once, not per poll

    assert sorted(lake_ids(clients)) == ["o-good", "o-huge"]
    # The transform checks the lake's row contract: the record fails there, its original data kept.
    (doc,) = error_docs(clients, "processing-failed")
    image = json.loads(base64.b64decode(doc["rawData"]))["dynamodb"]["NewImage"]
    assert (image["order_id"], image["quantity"]) == ({"S": "o-bad-types"}, {"S": "two"})
    # AWS's code and fixed message in the object; the transform's reason in its log group, where
    # `make errors` finds it.
    assert (doc["errorCode"], doc["errorMessage"]) == (
        "Lambda.ProcessingFailedStatus", "ProcessingFailed status set for record")
    (listed,) = [r for r in list_errors(clients, settings) if r.raw == base64.b64decode(doc["rawData"])]
    assert listed.reason.startswith("dynamodb.NewImage.quantity: got 'two', expected int64")
    assert listed.reason_from == "/aws/lambda/ft-transform"
    assert not error_docs(clients, "format-conversion-failed")


def test_throttling_everywhere_is_retried_and_nothing_is_lost(settings: Settings) -> None:
    clients = Clients(settings, max_attempts=1)  # so the runners' own bounded retries do the work
    for i in range(5):
        clients.dynamodb.put_item(TableName="ft_orders", Item={**GOOD, "order_id": {"S": f"o-thr-{i}"}})
    pipe, firehose = runners(clients, settings, "throttle")
    faults = [
        Fault(clients.kinesis, "PutRecords", "ProvisionedThroughputExceededException", times=2),
        Fault(firehose.lam, "Invoke", "TooManyRequestsException", times=2, status=429),  # its one-attempt client
        Fault(clients.s3, "PutObject", "SlowDown", times=2, status=503),
        Fault(clients.kinesis, "GetRecords", "ProvisionedThroughputExceededException", times=1),
        Fault(clients.client("dynamodbstreams"), "GetRecords", "LimitExceededException", times=1),
    ]
    # PutRecords that accepts the call but refuses every record, as Kinesis does under load.
    partial = Fault(clients.kinesis, "PutRecords", "", times=1, status=200, body={
        "FailedRecordCount": 1, "Records": [{"ErrorCode": "ProvisionedThroughputExceededException",
                                             "ErrorMessage": "Rate exceeded for shard"}]})
    for _ in range(10):
        try:
            pump(pipe, firehose)
            break
        except Exception as exc:  # a fault past the bounded retries surfaces to the loop, which backs off
            assert "ProvisionedThroughputExceeded" in str(exc) or "LimitExceeded" in str(exc)
    assert all(f.injected == f.times for f in [*faults, partial])
    assert {f"o-thr-{i}" for i in range(5)} <= set(lake_ids(clients))


def run_with_lambda(clients: Clients, settings: Settings, name: str, source: str, payloads: list[bytes]) -> None:
    """Deploy `source` as a Lambda, put `payloads` on Kinesis, and run a firehose runner that invokes it."""
    arn = deploy_lambda(clients, f"ft-{name}", source)
    for data in payloads:
        clients.kinesis.put_record(StreamName="ft-orders-cdc", Data=data, PartitionKey="k")
    _, firehose = runners(clients, settings, name, lambda_arn=arn)
    pump(None, firehose)


def test_a_failing_lambda_is_retried_then_records_go_to_errors_with_their_payload(settings: Settings) -> None:
    clients = Clients(settings)
    payloads = [b"first", b'{"json": true}', b"\x00\xffbinary"]
    before = len(error_docs(clients, "processing-failed"))
    run_with_lambda(clients, settings, "broken", "def handler(event, context):\n    raise RuntimeError('boom')\n",
                    payloads)
    docs = error_docs(clients, "processing-failed")[before:]
    mine = [d for d in docs if base64.b64decode(d["rawData"]) in payloads]
    assert sorted(base64.b64decode(d["rawData"]) for d in mine) == sorted(payloads)
    assert {d["attemptsMade"] for d in mine} == {3}  # NumberOfRetries=2 -> three attempts
    assert {d["errorCode"] for d in mine} == {"Lambda.FunctionError"}


def test_ok_rows_that_are_not_json_objects_go_to_format_conversion_failed(settings: Settings) -> None:
    clients = Clients(settings)
    source = ("import base64\n"
              "def handler(event, context):\n"
              "    print('returning rows Parquet conversion cannot read')\n"
              "    keys = {'partitionKeys': {'year': '2026', 'month': '11', 'day': '26'}}\n"
              "    return {'records': [{'recordId': r['recordId'], 'result': 'Ok', 'metadata': keys,\n"
              "                         'data': base64.b64encode(b'[1, 2]' if base64.b64decode(r['data']) == b'g-1'\n"
              "                                                  else b'not json').decode()}\n"
              "                        for r in event['records']]}\n")
    before = len(error_docs(clients, "format-conversion-failed"))
    run_with_lambda(clients, settings, "garbage", source, [b"g-1", b"g-2"])
    docs = error_docs(clients, "format-conversion-failed")[before:]
    assert {d["lastErrorCode"] for d in docs} == {"DataFormatConversion.InvalidSchema"}
    messages = {base64.b64decode(d["rawData"]): d["lastErrorMessage"] for d in docs}
    assert messages[b"[1, 2]"] == "a JSON list, not an object"
    assert messages[b"not json"].startswith("not JSON: ")


def test_a_lambda_answer_missing_records_fails_them_instead_of_losing_them(settings: Settings) -> None:
    clients = Clients(settings)
    # Answers a-1 with a result string that is not in the contract, and leaves every other record out.
    source = ("import base64\n"
              "def handler(event, context):\n"
              "    print('answering one record')\n"
              "    return {'records': [{'recordId': r['recordId'], 'result': 'Bogus', 'data': r['data']}\n"
              "                        for r in event['records'] if base64.b64decode(r['data']) == b'a-1']}\n")
    run_with_lambda(clients, settings, "liar", source, [b"a-1", b"a-2"])
    docs = {base64.b64decode(d["rawData"]): d["errorCode"] for d in error_docs(clients, "processing-failed")}
    assert (docs[b"a-1"], docs[b"a-2"]) == ("Lambda.JsonProcessingException", "Lambda.MissingRecordId")
