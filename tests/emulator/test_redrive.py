"""`make redrive` against the emulator: a broken transform sends every change to processing-failed;
after the fix, redrive replays the error output (and a conversion failure and a pipe dead letter)
so the lake equals the table; a second redrive changes nothing."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bootstrap.plan import apply, build_plan
from chaos.drill import stream_records
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.state_dir import spec_file
from generator.seed import run_seed
from runners.firehose import FirehoseRunner
from runners.firehose_config import parse_config
from runners.pipe import PipeRunner
from runners.redrive import Redriver
from tests.emulator.test_pipeline import assert_lake_matches
from tests.emulator.test_schema_evolution import add_column
from tests.fixtures.runners import pump
from tests.fixtures.stack import named_stack
from transform.handler import transform_record

BROKEN = """
def handler(event, context):
    return {"records": [{"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]}
                        for r in event["records"]]}
"""


@pytest.fixture(scope="module")
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = named_stack(emulator_settings, "rd", tmp_path_factory.mktemp("redrive-state"),
                    buffer_interval_s=0, processor_interval_s=0)
    apply(Clients(s), build_plan(Clients(s), s), Console(capture=True))
    yield s


def deploy_broken_transform(clients: Clients) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("handler.py", BROKEN)
    return clients.client("lambda").create_function(
        FunctionName="rd-broken", Runtime="python3.12", Handler="handler.handler",
        Role=f"arn:aws:iam::{clients.account_id}:role/rd-cdc-lambda", Code={"ZipFile": buffer.getvalue()},
    )["FunctionArn"]




def keys(clients: Clients, prefix: str) -> list[str]:
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket="rd-lake", Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_redrive_replays_every_error_output_after_the_fix_and_a_second_run_changes_nothing(
    settings: Settings,
) -> None:
    clients = Clients(settings)
    pipe_spec = json.loads(spec_file(settings.runner_dir, "pipe").read_text())
    config = parse_config(json.loads(spec_file(settings.runner_dir, "delivery_stream").read_text()))
    checkpoints = Path(settings.runner_dir)
    pipe = PipeRunner(clients, pipe_spec, checkpoints / "pipe.ckpt.json")

    run_seed(clients, settings, orders=40, rate=None, duration=None, seed=3, console=Console(capture=True))
    broken = FirehoseRunner(clients, replace(config, lambda_arn=deploy_broken_transform(clients)),
                            checkpoints / "firehose.ckpt.json")
    pump(pipe, broken)
    assert keys(clients, "orders/") == []  # the broken transform let nothing through ...
    failed = keys(clients, "errors/processing-failed/")
    assert failed  # ... and nothing was lost: every change is in the error output

    # One row that failed conversion and one pipe dead letter, moved aside by hand from what failed:
    # redrive must replay those outputs too, each where its records left the pipeline.
    first = clients.s3.get_object(Bucket="rd-lake", Key=failed[0])["Body"].read().splitlines()
    event = json.loads(base64.b64decode(json.loads(first[0])["rawData"]))
    dead_letter = {"errorCode": "test", "originalEvents": [event]}
    clients.s3.put_object(Bucket="rd-lake", Key="errors/pipe-dead-letter/2026/01/01/00/rd-pipe-dl.json",
                          Body=json.dumps(dead_letter).encode())
    output = transform_record({"recordId": "r1", "approximateArrivalTimestamp": 1_767_225_600_000,
                               "data": base64.b64encode(json.dumps(event).encode()).decode()})
    row_doc = {"lastErrorCode": "DataFormatConversion.InvalidSchema", "rawData": output["data"]}
    clients.s3.put_object(Bucket="rd-lake", Key="errors/format-conversion-failed/2026/01/01/00/rd-fc",
                          Body=json.dumps(row_doc).encode() + b"\n")

    fixed = FirehoseRunner(clients, config, checkpoints / "firehose.ckpt.json")
    result = Redriver(clients, pipe_spec, config).run()
    assert result.left == []
    assert result.records["processing-failed"] >= 40 and result.records["pipe-dead-letter"] == 1
    assert result.records["format-conversion-failed"] == 1
    (converted,) = keys(clients, "orders/")  # written straight to its partition, before any runner ran
    assert converted.startswith("orders/year=") and converted.endswith(".parquet")
    assert keys(clients, "errors/processing-failed/") == []
    assert len(keys(clients, "errors/redriven/")) == result.objects
    pump(pipe, fixed)
    assert_lake_matches(clients, settings, stream_complete=True)

    lake_before = keys(clients, "orders/")
    again = Redriver(clients, pipe_spec, config).run()
    pump(pipe, fixed)
    assert (again.objects, again.left) == (0, [])
    assert keys(clients, "orders/") == lake_before


def test_an_aws_pointer_only_dead_letter_in_the_queue_is_read_back_from_the_stream_and_deleted(
    settings: Settings,
) -> None:
    """What a real Pipe sends to its SQS dead-letter queue: pointers to the records, not the records."""
    clients = Clients(settings)
    pipe_spec = json.loads(spec_file(settings.runner_dir, "pipe").read_text())
    config = parse_config(json.loads(spec_file(settings.runner_dir, "delivery_stream").read_text()))
    run_seed(clients, settings, orders=1, rate=None, duration=None, seed=77, console=Console(capture=True))
    stream_arn = clients.dynamodb.describe_table(TableName="rd_orders")["Table"]["LatestStreamArn"]
    record = list(stream_records(clients, settings))[-1]  # the pipe has not read it: only the queue names it
    shard = clients.client("dynamodbstreams").describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
    seq = record["dynamodb"]["SequenceNumber"]
    queue_arn = pipe_spec["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"]["Arn"]
    url = clients.sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
    clients.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
        "context": {"partnerResourceArn": "arn:aws:pipes:us-east-1:000000000000:pipe/rd-pipe",
                    "condition": "RetryAttemptsExhausted"},
        "version": "1.0", "timestamp": "2026-12-01T10:00:00.000Z",
        "DDBStreamBatchInfo": {"shardId": shard["ShardId"], "startSequenceNumber": seq, "endSequenceNumber": seq,
                               "approximateArrivalOfFirstRecord": "2026-12-01T10:00:00Z",
                               "approximateArrivalOfLastRecord": "2026-12-01T10:00:00Z", "batchSize": 1,
                               "streamArn": stream_arn}}))

    result = Redriver(clients, pipe_spec, config).run()
    assert (result.records["pipe-dead-letter-queue"], result.left) == (1, [])
    assert clients.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []
    firehose = FirehoseRunner(clients, config, Path(settings.runner_dir) / "firehose.ckpt.json")
    pump(None, firehose)  # the firehose alone: the record can only have come through the redrive
    assert record["eventID"] in lake_event_ids(clients)
    pump(PipeRunner(clients, pipe_spec, Path(settings.runner_dir) / "pipe.ckpt.json"), firehose)
    assert_lake_matches(clients, settings, stream_complete=True)


def lake_event_ids(clients: Clients) -> set[str]:
    ids: set[str] = set()
    for key in keys(clients, "orders/"):
        body = clients.s3.get_object(Bucket="rd-lake", Key=key)["Body"].read()
        ids.update(pq.read_table(io.BytesIO(body), columns=["event_id"]).column(0).to_pylist())
    return ids


def test_a_row_that_failed_conversion_is_redriven_with_the_tables_columns_of_today(settings: Settings) -> None:
    """The fix for a conversion failure is often a column added to the table: redrive converts with it."""
    clients = Clients(settings)
    pipe_spec = json.loads(spec_file(settings.runner_dir, "pipe").read_text())
    config = parse_config(json.loads(spec_file(settings.runner_dir, "delivery_stream").read_text()))
    add_column(clients, settings, "coupon_code", "string")
    rows = [{"order_id": f"o-coupon-{n}", "status": "PLACED", "coupon_code": f"SAVE{n}", "event_type": "INSERT",
             "event_id": f"ev-coupon-{n}", "sequence_number": "9" * 30, "event_ts": "2026-01-05T10:00:00.000Z",
             "is_deleted": False} for n in (10, 20)]
    docs = [{"rawData": base64.b64encode(json.dumps(row).encode()).decode()} for row in rows]
    clients.s3.put_object(Bucket="rd-lake", Key="errors/format-conversion-failed/2026/01/05/10/rd-coupon",
                          Body=b"".join(json.dumps(doc).encode() + b"\n" for doc in docs))

    result = Redriver(clients, pipe_spec, config).run()
    assert (result.records["format-conversion-failed"], result.left) == (2, [])
    (key,) = keys(clients, "orders/year=2026/month=01/day=05/")  # one object per partition, as Firehose writes
    table = pq.read_table(io.BytesIO(clients.s3.get_object(Bucket="rd-lake", Key=key)["Body"].read()))
    assert table.column("coupon_code").to_pylist() == ["SAVE10", "SAVE20"]
