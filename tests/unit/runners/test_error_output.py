"""`make errors` without a server: error records of every type read from S3, each joined with its reason.

The transform runs in this process and its printed lines become the function's log group, as Lambda
makes them on AWS and in the emulator; S3 and CloudWatch Logs are small fakes.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bootstrap.spec import desired_resources
from common.aws import Clients
from common.config import load_settings
from runners.error_output import (
    PROCESSING_FAILED_STATUS,
    ErrorRecord,
    join_reasons,
    list_errors,
    log_group_of,
    read_error_records,
    summarize,
)
from runners.firehose import FirehoseRunner, SourceRecord, error_document
from runners.firehose_config import parse_config
from tests.fixtures.fake_s3 import FakeS3
from transform.handler import handler

SETTINGS = load_settings(env={})
CLIENTS = Clients(SETTINGS)
GROUP = "/aws/lambda/sales-orders-transform"
ARRIVAL = datetime(2026, 1, 5, 9, 58, 11, tzinfo=UTC)


class InProcessLambda:
    """Invoke runs transform/handler.py here; what it prints lands in `log_group`, as on AWS."""

    def __init__(self) -> None:
        self.log_group: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, Payload: bytes, **_: Any) -> dict[str, Any]:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            answer = handler(json.loads(Payload), None)
        now = int(time.time() * 1000)
        lines = ["START RequestId: r1 Version: $LATEST", *printed.getvalue().splitlines(), "END RequestId: r1"]
        self.log_group += [{"timestamp": now, "message": line, "logStreamName": "s"} for line in lines]
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


class FakeLogs:
    """FilterLogEvents over a list of events: quoted-term filter, time window, pages of `page`."""

    def __init__(self, events: list[dict[str, Any]], page: int = 40, error: Exception | None = None) -> None:
        self.events, self.page, self.error = events, page, error
        self.calls: list[dict[str, Any]] = []

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(dict(kwargs))
        if self.error is not None:
            raise self.error
        term = kwargs.get("filterPattern", "").strip('"')
        matching = [e for e in self.events if term in e["message"]
                    and kwargs.get("startTime", 0) <= e["timestamp"] <= kwargs.get("endTime", 2**63)]
        start = int(kwargs.get("nextToken", 0))
        answer: dict[str, Any] = {"events": matching[start:start + self.page]}
        if start + self.page < len(matching):
            answer["nextToken"] = str(start + self.page)
        return answer


def config():  # type: ignore[no-untyped-def]
    spec = {r.kind: r for r in desired_resources(SETTINGS, "000000000000")}["delivery_stream"].params
    return parse_config(spec)


def stream_event(name: str, i: int) -> bytes:
    change = {"ApproximateCreationDateTime": 1767607091, "Keys": {"order_id": {"S": f"o-{i}"}},
              "NewImage": {"order_id": {"S": f"o-{i}"}}, "SequenceNumber": str(1000 + i)}
    return json.dumps({"eventID": f"ev-{i}", "eventName": name, "dynamodb": change}).encode()


def rec(i: int, data: bytes) -> SourceRecord:
    return SourceRecord.of(f"shard-0:{i}", data, ARRIVAL, ("shard-0", str(i)), f"o-{i}")


def failed_through_the_runner(records: list[SourceRecord]) -> tuple[list[ErrorRecord], InProcessLambda]:
    """Invoke the real transform through the runner; the processing-failed records it would write."""
    lam = InProcessLambda()
    runner = FirehoseRunner(CLIENTS, config(), Path("/nonexistent/ckpt.json"), lambda_client=lam)
    outcomes = runner._invoke(records)
    body = b"".join(error_document(o, runner.config.lambda_arn, datetime.now(UTC))
                    for o in outcomes if o.result == "ProcessingFailed")
    s3 = FakeS3({"errors/processing-failed/2026/01/05/09/fh-1-2026-01-05-09-58-20-x": body})
    return read_error_records(s3, "lake", "errors/"), lam


def test_every_processing_failed_record_is_joined_with_the_reason_its_function_logged() -> None:
    records = [rec(i, stream_event(f"UPSERT-{i}", i)) for i in range(150)] + [rec(150, stream_event("INSERT", 150))]
    failed, lam = failed_through_the_runner(records)
    logs = FakeLogs(lam.log_group)

    joined = join_reasons(failed, logs, GROUP)

    assert len(joined) == 150
    assert {r.code for r in joined} == {PROCESSING_FAILED_STATUS}
    assert {r.message for r in joined} == {"ProcessingFailed status set for record"}  # AWS's fixed text
    assert sorted(r.reason for r in joined) == sorted(
        f"eventName: got 'UPSERT-{i}', expected INSERT, MODIFY or REMOVE" for i in range(150))
    assert {r.reason_from for r in joined} == {GROUP}
    for record in joined:  # each reason belongs to its own record
        assert json.loads(record.raw)["eventName"] in record.reason
    assert logs.calls[0]["logGroupName"] == GROUP and len(logs.calls) > 1  # every page read


def test_the_same_data_failing_twice_takes_the_reason_logged_for_its_arrival() -> None:
    line = {"invocationId": "i", "recordId": "r", "dataSha256": "d" * 64}
    events = [{"timestamp": 1, "message": json.dumps({**line, "approximateArrivalTimestamp": t, "reason": why})}
              for t, why in ((1000, "early"), (5000, "late"))]
    from runners.error_output import _pick, reasons_from_log_events

    candidates = reasons_from_log_events(events)["d" * 64]

    assert (_pick(candidates, 5000), _pick(candidates, 1000), _pick(candidates, 4000)) == ("late", "early", "late")


def test_lines_of_other_records_never_lend_their_reason() -> None:
    failed, lam = failed_through_the_runner([rec(1, stream_event("UPSERT", 1))])
    stranger = {"invocationId": "local-other", "recordId": "shard-0:1", "dataSha256": "0" * 64, "reason": "stale"}
    lam.log_group.insert(0, {"timestamp": int(time.time() * 1000), "message": json.dumps(stranger)})

    (record,) = join_reasons(failed, FakeLogs(lam.log_group), GROUP)

    assert record.reason == "eventName: got 'UPSERT', expected INSERT, MODIFY or REMOVE"


def test_unreadable_logs_leave_the_objects_message_and_say_why() -> None:
    failed, _ = failed_through_the_runner([rec(i, stream_event("UPSERT", i)) for i in range(3)])
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "FilterLogEvents")

    joined = join_reasons(failed, FakeLogs([], error=denied), GROUP)

    assert {r.reason for r in joined} == {
        "ProcessingFailed status set for record; the function's reason could not be read from "
        "/aws/lambda/sales-orders-transform (AccessDeniedException)"}


def test_the_log_group_is_read_only_for_records_the_function_failed() -> None:
    doc = {"attemptsMade": 4, "arrivalTimestamp": 1, "errorCode": "Lambda.InvokeLimitExceeded",
           "errorMessage": "The Lambda concurrent execution limit is exceeded.", "attemptEndingTimestamp": 2,
           "rawData": "eA==", "lambdaArn": "arn"}
    s3 = FakeS3({"errors/processing-failed/2026/01/05/09/o": json.dumps(doc).encode()})
    logs = FakeLogs([])

    (record,) = join_reasons(read_error_records(s3, "lake", "errors/"), logs, GROUP)

    assert (record.code, record.reason, record.reason_from, logs.calls) == (
        "Lambda.InvokeLimitExceeded", doc["errorMessage"], "error object", [])


class FakeClients:
    def __init__(self, s3: FakeS3, logs: FakeLogs) -> None:
        self.s3, self._logs, self.account_id = s3, logs, "000000000000"

    def client(self, service: str) -> Any:
        assert service == "logs"
        return self._logs


def test_list_errors_lists_every_error_output_type_oldest_first_and_skips_replayed_objects() -> None:
    processing = {"attemptsMade": 1, "arrivalTimestamp": 1767607092000, "errorCode": "Lambda.MissingRecordId",
                  "errorMessage": "One or more record IDs were not returned.", "attemptEndingTimestamp": 1767607093000,
                  "rawData": base64.b64encode(b"a").decode(), "lambdaArn": "arn"}
    conversion = {"attemptsMade": 1, "arrivalTimestamp": 1767607091000, "lastErrorCode": "DataFormatConversion.x",
                  "lastErrorMessage": "a JSON list, not an object", "attemptEndingTimestamp": 1767607093000,
                  "rawData": base64.b64encode(b"[1]").decode(), "sequenceNumber": "7", "subSequenceNumber": 0,
                  "dataCatalogTable": {}}
    partitions = {**processing, "errorCode": "DynamicPartitioning.ActivePartitionExceeded",
                  "errorMessage": "more than 500 active partitions", "arrivalTimestamp": 1767607094000}
    letter = {"context": {"condition": "RetryAttemptsExhausted"}, "timestamp": "2026-01-05T09:58:10.000Z",
              "errorCode": "Kinesis.RecordTooLarge", "errorMessage": "the event is 2000000 bytes",
              "originalEvents": [{"eventID": "e"}]}
    bucket = "sales-orders-lake-000000000000"
    s3 = FakeS3({
        "errors/processing-failed/2026/01/05/09/p.gz": gzip.compress(json.dumps(processing).encode() + b"\n"),
        "errors/format-conversion-failed/2026/01/05/09/c": json.dumps(conversion).encode() + b"\n",
        "errors/activePartitionExceeded/2026/01/05/09/a": json.dumps(partitions).encode() + b"\n",
        "errors/pipe-dead-letter/2026/01/05/09/d.json": json.dumps(letter).encode(),
        "errors/redriven/processing-failed/2026/01/05/09/old": json.dumps(processing).encode(),
    })

    records = list_errors(FakeClients(s3, FakeLogs([])), replace(SETTINGS, lake_bucket=bucket))

    assert [(r.output, r.code, r.reason) for r in records] == [
        ("pipe-dead-letter", "Kinesis.RecordTooLarge", "the event is 2000000 bytes"),
        ("format-conversion-failed", "DataFormatConversion.x", "a JSON list, not an object"),
        ("processing-failed", "Lambda.MissingRecordId", "One or more record IDs were not returned."),
        ("activePartitionExceeded", "DynamicPartitioning.ActivePartitionExceeded", "more than 500 active partitions"),
    ]
    assert records[1].raw == b"[1]"
    assert summarize(records) == (
        "4 error record(s): 1 pipe-dead-letter (Kinesis.RecordTooLarge 1); 1 format-conversion-failed "
        "(DataFormatConversion.x 1); 1 processing-failed (Lambda.MissingRecordId 1); 1 activePartitionExceeded "
        "(DynamicPartitioning.ActivePartitionExceeded 1)")
    assert summarize([]) == "no error records"
    assert records[0].line().startswith("2026-01-05T09:58:10Z pipe-dead-letter Kinesis.RecordTooLarge: ")


def test_the_log_group_is_lambdas_for_a_name_or_an_arn() -> None:
    assert log_group_of("sales-orders-transform") == GROUP
    assert log_group_of("arn:aws:lambda:us-east-1:000000000000:function:sales-orders-transform") == GROUP
