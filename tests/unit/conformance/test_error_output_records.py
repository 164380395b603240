"""Error-output records with exactly the fields and codes AWS documents, per error-output type.

processing-failed: data-transformation-failure-handling.html (fields) and the Lambda invocation
errors of monitoring-with-cloudwatch-logs.html (codes, messages); format-conversion-failed:
record-format-conversion-error-handling.html; records beyond the active partition limit:
buffering.html (folder activePartitionExceeded). The runner's own code builds every record here.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from bootstrap.spec import desired_resources
from common.aws import Clients
from common.config import load_settings
from runners.firehose import FirehoseRunner, Outcome, SourceRecord, error_document, invoke_failure, parse_response
from runners.firehose_config import parse_config
from tests.unit.conformance.docs import aws_doc

ARRIVAL = datetime(2026, 1, 5, 9, 58, 11, 871000, tzinfo=UTC)
ENDED = datetime(2026, 1, 5, 9, 58, 14, tzinfo=UTC)
LAMBDA_ARN = "arn:aws:lambda:us-east-1:000000000000:function:sales-orders-transform"
SETTINGS = load_settings(env={})
CLIENTS = Clients(SETTINGS)


def config():  # type: ignore[no-untyped-def]
    spec = {r.kind: r for r in desired_resources(SETTINGS, "000000000000")}["delivery_stream"].params
    return parse_config(spec)


def rec(i: int, data: bytes = b'{"eventName":"INSERT"}') -> SourceRecord:
    return SourceRecord.of(f"shardId-000000000000:{i}", data, ARRIVAL, ("shardId-000000000000", str(i)), f"o-{i}")


def ok(i: int, keys: dict[str, str] | None = None) -> dict[str, Any]:
    return {"recordId": f"shardId-000000000000:{i}", "result": "Ok", "data": base64.b64encode(b'{"a":1}').decode(),
            "metadata": {"partitionKeys": keys or {"year": "2026", "month": "01", "day": "05"}}}


def processing_failed(outcome: Outcome) -> dict[str, Any]:
    return json.loads(error_document(outcome, LAMBDA_ARN, ENDED))


def documented_codes() -> dict[str, str]:
    return aws_doc("firehose_lambda_invocation_errors")["codes"]


def observed_codes() -> dict[str, str | None]:
    return aws_doc("firehose_lambda_invocation_errors")["observed"]


# --- processing-failed: the documented fields, nothing else ---------------------------------------

def test_a_processing_failed_record_has_exactly_the_documented_fields() -> None:
    doc = aws_doc("error_processing_failed")
    (outcome,) = parse_response([rec(7, b"not json")], {"records": []})

    record = processing_failed(outcome)

    assert list(record) == doc["fields"]
    assert base64.b64decode(record["rawData"]) == b"not json"  # the original record, as received
    assert record["lambdaArn"] == LAMBDA_ARN
    assert record["arrivalTimestamp"] == int(ARRIVAL.timestamp() * 1000)
    assert record["attemptEndingTimestamp"] == int(ENDED.timestamp() * 1000)
    assert isinstance(record["attemptsMade"], int)


def test_processing_failed_status_has_aws_code_and_fixed_message_the_reason_stays_in_the_logs() -> None:
    answer = {"records": [{"recordId": "shardId-000000000000:1", "result": "ProcessingFailed",
                           "data": base64.b64encode(b"x").decode()}]}

    (outcome,) = parse_response([rec(1)], answer)
    record = processing_failed(outcome)

    assert record["errorCode"] == "Lambda.ProcessingFailedStatus"
    assert record["errorMessage"] == observed_codes()["Lambda.ProcessingFailedStatus"]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"records": []}, "Lambda.MissingRecordId"),
        ({"records": [{"recordId": "shardId-000000000000:1", "result": "Success", "data": ""}]},
         "Lambda.JsonProcessingException"),
        ({"records": [{"recordId": "shardId-000000000000:1", "result": "Ok", "data": "***"}]},
         "Lambda.JsonProcessingException"),
        ({"errorMessage": "not the status model"}, "Lambda.JsonProcessingException"),
        ({"records": [ok(1), ok(1)]}, "Lambda.DuplicatedRecordId"),
    ],
)
def test_answers_outside_the_status_model_fail_with_the_documented_code_and_message(answer: Any, code: str) -> None:
    (outcome,) = parse_response([rec(1)], answer)

    assert (outcome.result, outcome.error_code, outcome.error_message) == (
        "ProcessingFailed", code, documented_codes()[code])


@pytest.mark.parametrize(
    ("sdk_code", "status", "code"),
    [
        ("AccessDeniedException", 403, "Lambda.InvokeAccessDenied"),
        ("ResourceNotFoundException", 404, "Lambda.ResourceNotFound"),
        ("TooManyRequestsException", 429, "Lambda.InvokeLimitExceeded"),
        ("ENILimitReachedException", 502, "Lambda.ENILimitReachedException"),
        ("SubnetIPAddressLimitReachedException", 502, "Lambda.SubnetIPAddressLimitReachedException"),
        ("InvalidSubnetIDException", 502, "Lambda.InvalidSubnetIDException"),
        ("InvalidSecurityGroupIDException", 502, "Lambda.InvalidSecurityGroupIDException"),
    ],
)
def test_invoke_errors_carry_the_documented_lambda_invocation_error(sdk_code: str, status: int, code: str) -> None:
    exc = ClientError({"Error": {"Code": sdk_code, "Message": "injected"},
                       "ResponseMetadata": {"HTTPStatusCode": status}}, "Invoke")

    failure = invoke_failure(exc)

    assert (failure.code, failure.message) == (code, documented_codes()[code])


class OneAnswer:
    """Lambda's Invoke answering every call with one function error (or raising one exception)."""

    def __init__(self, body: dict[str, Any] | None = None, raises: Exception | None = None) -> None:
        self.body, self.raises = body, raises

    def invoke(self, FunctionName: str, Payload: bytes, **_: Any) -> dict[str, Any]:
        if self.raises is not None:
            raise self.raises
        return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(self.body).encode())}


def invoke(lam: Any) -> list[Outcome]:
    runner = FirehoseRunner(CLIENTS, replace(config(), lambda_retries=1), Path("/nonexistent/ckpt.json"),
                            lambda_client=lam, sleep=lambda _s: None, draw=lambda: 0.0)
    return runner._invoke([rec(1), rec(2)])


def test_a_timed_out_function_is_lambda_function_timed_out_after_the_retries() -> None:
    outcomes = invoke(OneAnswer({"errorMessage": "2026-01-05T09:58:14Z 1a2b Task timed out after 3.00 seconds",
                                 "errorType": "Sandbox.Timedout"}))

    assert {(o.error_code, o.error_message, o.attempts) for o in outcomes} == {
        ("Lambda.FunctionTimedOut", observed_codes()["Lambda.FunctionTimedOut"], 2)}


def test_an_invoke_that_times_out_on_the_wire_is_lambda_function_timed_out_too() -> None:
    outcomes = invoke(OneAnswer(raises=ReadTimeoutError(endpoint_url="http://127.0.0.1:4566")))

    assert {(o.error_code, o.attempts) for o in outcomes} == {("Lambda.FunctionTimedOut", 2)}


def test_a_function_that_raises_is_lambda_function_error_with_the_message_lambda_returned() -> None:
    outcomes = invoke(OneAnswer({"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": []}))

    assert {(o.error_code, o.error_message) for o in outcomes} == {("Lambda.FunctionError", "RuntimeError: boom")}


# --- format-conversion-failed: its own documented shape ----------------------------------------

def test_a_format_conversion_failed_record_has_exactly_the_documented_fields() -> None:
    doc = aws_doc("error_format_conversion_failed")
    runner = FirehoseRunner(CLIENTS, config(), Path("/nonexistent/ckpt.json"))

    runner._conversion_failed(b'[1, 2]', ("shardId-000000000000", "4954"), ARRIVAL, "a JSON list, not an object")

    (buffer,) = runner.errors.buffers.values()
    assert buffer.key == doc["error_output_type"]
    record = json.loads(buffer.items[0])
    assert list(record) == doc["fields"]
    assert list(record["dataCatalogTable"]) == doc["data_catalog_table_fields"]
    assert (record["sequenceNumber"], record["subSequenceNumber"]) == ("4954", 0)
    assert base64.b64decode(record["rawData"]) == b"[1, 2]"
    assert record["lastErrorMessage"] == "a JSON list, not an object"
    table = record["dataCatalogTable"]
    assert (table["databaseName"], table["tableName"], table["region"], table["catalogId"]) == (
        SETTINGS.glue_database, SETTINGS.glue_table, "us-east-1", "000000000000")
    assert "lambdaArn" not in record and "errorCode" not in record


class NoColumns:
    """The Glue table as conversion reads it, without a Glue to ask."""

    def for_rows(self, rows: list[dict]) -> pa.Schema:
        return pa.schema([])

    def known(self) -> pa.Schema:
        return pa.schema([])


def test_each_format_conversion_failed_record_carries_its_own_arrival_time() -> None:
    """The document is written per record (record-format-conversion-error-handling.html): two bad rows that
    arrived 30 s apart in one buffer keep 30 s apart, not the buffer's oldest time twice."""
    runner = FirehoseRunner(CLIENTS, config(), Path("/nonexistent/ckpt.json"))
    runner.table_schema = NoColumns()
    later = ARRIVAL + timedelta(seconds=30)
    runner.rows.add("orders/year=2026/month=01/day=05/", b"not json", ("shardId-000000000000", "1"), 0.0, ARRIVAL)
    runner.rows.add("orders/year=2026/month=01/day=05/", b"[1, 2]", ("shardId-000000000000", "2"), 1.0, later)
    (buffer,) = runner.rows.take_due(1.0, force=True)

    runner._flush_rows(buffer.key, buffer.items, buffer.sources, buffer.arrivals)

    (errors,) = runner.errors.buffers.values()
    assert [json.loads(line)["arrivalTimestamp"] for line in errors.items] == [
        int(ARRIVAL.timestamp() * 1000), int(later.timestamp() * 1000)]


# --- dynamic partitioning: documented folders only ---------------------------------------------

def test_records_beyond_the_active_partition_limit_go_to_active_partition_exceeded() -> None:
    runner = FirehoseRunner(CLIENTS, replace(config(), max_active_partitions=1), Path("/nonexistent/ckpt.json"))
    first = Outcome(rec(1), "Ok", data=b'{"a":1}', partition_keys={"year": "2026", "month": "01", "day": "05"})
    second = Outcome(rec(2), "Ok", data=b'{"a":2}', partition_keys={"year": "2026", "month": "01", "day": "06"})

    runner._route([first, second], 0.0)

    assert set(runner.errors.buffers) == {aws_doc("error_active_partition_exceeded")["error_output_type"]}
    (line,) = runner.errors.buffers["activePartitionExceeded"].items
    assert list(json.loads(line)) == aws_doc("error_processing_failed")["fields"]
    assert base64.b64decode(json.loads(line)["rawData"]) == rec(2).data


def test_a_record_without_its_partition_keys_goes_to_a_documented_folder() -> None:
    documented = set(aws_doc("s3_object_name")["error_output_types"])
    runner = FirehoseRunner(CLIENTS, config(), Path("/nonexistent/ckpt.json"))

    runner._route([Outcome(rec(1), "Ok", data=b'{"a":1}', partition_keys={"year": "2026"})], 0.0)

    assert set(runner.errors.buffers) <= documented
    (line,) = next(iter(runner.errors.buffers.values())).items
    assert list(json.loads(line)) == aws_doc("error_processing_failed")["fields"]
