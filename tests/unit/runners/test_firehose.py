"""The firehose runner's contract checks on the Lambda's answer, payload limits and error records."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from bootstrap.spec import desired_resources
from common.aws import Clients
from common.config import load_settings
from runners.firehose import (
    SourceRecord,
    error_document,
    invoke_event,
    parse_response,
    split_for_payload,
)
from runners.firehose_config import LAMBDA_SYNC_PAYLOAD_MAX, MIB, parse_config

ARRIVAL = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rec(i: int, data: bytes = b'{"x":1}') -> SourceRecord:
    return SourceRecord.of(f"shard-0:{i}", data, ARRIVAL, ("shard-0", str(i)), f"o-{i}")


def ok(i: int, row: bytes = b'{"a":1}', keys: dict | None = None) -> dict:
    return {"recordId": f"shard-0:{i}", "result": "Ok", "data": base64.b64encode(row).decode(),
            "metadata": {"partitionKeys": keys or {"year": "2026", "month": "11", "day": "26"}}}


def config():  # type: ignore[no-untyped-def]
    spec = {r.kind: r for r in desired_resources(load_settings(env={}), "000000000000")}["delivery_stream"].params
    return parse_config(spec)


def test_config_is_read_from_the_create_delivery_stream_request() -> None:
    c = config()
    assert (c.delivery_stream, c.source_stream, c.bucket) == (
        "sales-orders-firehose", "sales-orders-cdc", "sales-orders-lake-000000000000")
    assert (c.buffer_bytes, c.buffer_interval_s, c.processor_bytes, c.processor_interval_s) == (64 * MIB, 5, MIB, 1)
    assert (c.parquet, c.gzip, c.file_extension, c.lambda_retries) == (True, False, ".parquet", 3)


def test_negative_number_of_retries_is_refused() -> None:
    spec = {r.kind: r for r in desired_resources(load_settings(env={}), "000000000000")}["delivery_stream"].params
    processors = spec["ExtendedS3DestinationConfiguration"]["ProcessingConfiguration"]["Processors"]
    lam = next(p for p in processors if p["Type"] == "Lambda")
    for parameter in lam["Parameters"]:
        if parameter["ParameterName"] == "NumberOfRetries":
            parameter["ParameterValue"] = "-1"
    with pytest.raises(ValueError, match="NumberOfRetries=-1"):
        parse_config(spec)


@pytest.mark.parametrize("length", range(8))
def test_a_record_keeps_kinesiss_base64_and_counts_its_decoded_bytes(length: int) -> None:
    """Every padding case: BufferSizeInMBs and the payload limit count bytes, the Lambda gets Kinesis's text."""
    data = bytes(range(200, 200 + length))
    record = SourceRecord(f"shard-0:{length}", base64.b64encode(data).decode(), ARRIVAL, ("shard-0", "1"), "k")
    assert (record.size, record.data) == (len(data), data)
    assert invoke_event([record], config(), "us-east-1")["records"][0]["data"] is record.encoded
    assert SourceRecord.of(record.record_id, data, ARRIVAL, ("shard-0", "1"), "k") == record


def test_ok_rows_keep_their_partition_keys() -> None:
    (out,) = parse_response([rec(1)], {"records": [ok(1)]})
    assert (out.result, out.data) == ("Ok", b'{"a":1}')
    assert out.partition_keys == {"year": "2026", "month": "11", "day": "26"}


def test_a_record_missing_from_the_answer_fails_instead_of_vanishing() -> None:
    outs = parse_response([rec(1), rec(2)], {"records": [ok(1)]})
    assert [o.result for o in outs] == ["Ok", "ProcessingFailed"]
    assert outs[1].error_code == "Lambda.MissingRecordId"
    assert outs[1].record.data == b'{"x":1}'


def test_invalid_result_strings_and_bad_base64_fail() -> None:
    bad_result = {**ok(1), "result": "Success"}
    bad_data = {**ok(2), "data": "***"}
    outs = parse_response([rec(1), rec(2)], {"records": [bad_result, bad_data]})
    assert [(o.result, o.error_code) for o in outs] == [
        ("ProcessingFailed", "Lambda.JsonProcessingException"), ("ProcessingFailed", "Lambda.JsonProcessingException")]


def test_a_malformed_answer_fails_its_records_instead_of_stopping_the_runner() -> None:
    """Outside the status model (data-transformation-status-model.html) a record is a transformation failure:
    a recordId that is not a string answers no record, metadata that is not an object and an Ok without data
    fail theirs. Raising here instead stopped the runner at the same batch on every restart."""
    not_an_id = {**ok(1), "recordId": ["shard-0:1"]}
    bad_metadata = {**ok(2), "metadata": "year=2026"}
    no_data = {k: v for k, v in ok(3).items() if k != "data"}
    outs = parse_response([rec(1), rec(2), rec(3)], {"records": [not_an_id, bad_metadata, no_data]})
    assert [(o.result, o.error_code) for o in outs] == [
        ("ProcessingFailed", "Lambda.MissingRecordId"), ("ProcessingFailed", "Lambda.JsonProcessingException"),
        ("ProcessingFailed", "Lambda.JsonProcessingException")]
    assert [o.record.data for o in outs] == [b'{"x":1}'] * 3  # each keeps its original payload


def test_unknown_record_ids_are_ignored_and_a_repeated_one_fails_its_record() -> None:
    outs = parse_response([rec(1), rec(2)], {"records": [ok(9), ok(1), {**ok(1), "result": "Dropped"}, ok(2)]})
    assert [(o.result, o.error_code) for o in outs] == [
        ("ProcessingFailed", "Lambda.DuplicatedRecordId"), ("Ok", "")]


def test_processing_failed_keeps_awss_fixed_message_the_reason_stays_in_the_log_group() -> None:
    (out,) = parse_response([rec(1)], {"records": [{"recordId": "shard-0:1", "result": "ProcessingFailed",
                                                    "data": "eA=="}]})
    assert (out.error_code, out.error_message) == (
        "Lambda.ProcessingFailedStatus", "ProcessingFailed status set for record")


def test_a_response_without_records_fails_every_record() -> None:
    outs = parse_response([rec(1), rec(2)], {"errorMessage": "boom"})
    assert {o.error_code for o in outs} == {"Lambda.JsonProcessingException"}


def test_error_documents_keep_the_original_payload_and_only_awss_fields() -> None:
    (out,) = parse_response([rec(7, b"not json")], {"records": []})
    doc = json.loads(error_document(out, "arn:fn", ARRIVAL))
    assert base64.b64decode(doc["rawData"]) == b"not json"
    assert (doc["errorCode"], doc["lambdaArn"]) == ("Lambda.MissingRecordId", "arn:fn")
    assert "sequenceNumber" not in doc  # not a processing-failed field on AWS


def test_invokes_stay_under_lambdas_synchronous_payload_limit() -> None:
    records = [rec(i, b"x" * 400_000) for i in range(40)]  # ~21 MB of base64
    batches = split_for_payload(records)
    assert sum(len(b) for b in batches) == 40
    assert len(batches) > 1
    for batch in batches:
        size = len(json.dumps(invoke_event(batch, config(), "us-east-1")))
        assert size < LAMBDA_SYNC_PAYLOAD_MAX


# --- invoking the Lambda: one retry policy (NumberOfRetries, full-jitter exponential backoff) ----


class FakeLambda:
    """Lambda's Invoke, scripted: each call takes the next step (an exception, 'unhandled', 'handled', 'ok')."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls = 0

    def invoke(self, FunctionName: str, Payload: bytes, **_: Any) -> dict[str, Any]:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else "ok"
        if isinstance(step, Exception):
            raise step
        if step in ("unhandled", "handled"):
            body = b'{"errorMessage": "Task timed out after 3.00 seconds", "errorType": "Sandbox.Timedout"}'
            return {"StatusCode": 200, "FunctionError": step.capitalize(), "Payload": io.BytesIO(body)}
        event = json.loads(Payload)
        answer = {"records": [{"recordId": r["recordId"], "result": "Ok", "data": r["data"],
                               "metadata": {"partitionKeys": {"year": "2026", "month": "11", "day": "26"}}}
                              for r in event["records"]]}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Invoke")


def invoke_with(lam: FakeLambda, retries: int = 3, draw: float = 1.0) -> tuple[list[Any], list[float]]:
    """Run the runner's invoke of two records against `lam`; returns (outcomes, the backoff sleeps asked for)."""
    from runners.firehose import FirehoseRunner

    slept: list[float] = []
    runner = FirehoseRunner(CLIENTS, replace(config(), lambda_retries=retries), Path("/nonexistent/ckpt.json"),
                            lambda_client=lam, sleep=slept.append, draw=lambda: draw)
    return runner._invoke([rec(1), rec(2)]), slept


CLIENTS = Clients(load_settings(env={}))


@pytest.mark.parametrize(
    "hiccup",
    [
        client_error("TooManyRequestsException", 429),
        client_error("ServiceException", 500),
        client_error("EC2ThrottledException", 502),
        client_error("ENILimitReachedException", 502),
        client_error("ResourceConflictException", 409),  # the function is being updated
        EndpointConnectionError(endpoint_url="http://127.0.0.1:4566"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:4566"),
        "unhandled",  # Unhandled may be a timeout
    ],
)
def test_a_transient_invoke_failure_is_retried_with_growing_backoff_and_the_records_land(hiccup: Any) -> None:
    lam = FakeLambda(hiccup, hiccup, "ok")

    outcomes, slept = invoke_with(lam)

    assert [o.result for o in outcomes] == ["Ok", "Ok"]
    assert lam.calls == 3
    assert slept == [1.0, 2.0]  # base 1 s doubling, the draw (1.0 here) scaling each: full jitter


def test_an_endpoint_unreachable_through_every_retry_fails_the_pass_instead_of_the_records() -> None:
    """The emulator down (connection refused) is not the function failing: nothing goes to the error output."""
    lam = FakeLambda(*[EndpointConnectionError(endpoint_url="http://127.0.0.1:4566")] * 4)

    with pytest.raises(EndpointConnectionError):
        invoke_with(lam, retries=3)
    assert lam.calls == 4  # the retries were made first: a short outage still ends in Ok (above)


def test_a_function_that_keeps_timing_out_still_ends_in_processing_failed() -> None:
    lam = FakeLambda(*[ReadTimeoutError(endpoint_url="http://127.0.0.1:4566")] * 4)

    outcomes, _ = invoke_with(lam, retries=3)

    assert {o.result for o in outcomes} == {"ProcessingFailed"}


def test_backoff_is_full_jitter_capped_at_20_seconds() -> None:
    outcomes, slept = invoke_with(FakeLambda(*["unhandled"] * 7), retries=10, draw=0.5)

    assert [o.result for o in outcomes] == ["Ok", "Ok"]
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # 0.5 x min(20, 2**n)


def test_retries_exhausted_send_every_record_to_processing_failed_with_the_attempts_made() -> None:
    lam = FakeLambda(*[client_error("TooManyRequestsException", 429)] * 4)

    outcomes, slept = invoke_with(lam, retries=3)

    assert lam.calls == 4  # NumberOfRetries=3: the first attempt and three retries, nothing nested
    assert slept == [1.0, 2.0, 4.0]  # no wait after the last attempt
    assert {(o.result, o.error_code, o.attempts) for o in outcomes} == {
        ("ProcessingFailed", "Lambda.InvokeLimitExceeded", 4)}
    assert outcomes[0].record.data == b'{"x":1}'


@pytest.mark.parametrize(
    "failure",
    [
        client_error("ResourceNotFoundException", 404),
        client_error("InvalidRequestContentException", 400),
        client_error("RequestTooLargeException", 413),
        client_error("AccessDeniedException", 403),
        "handled",
    ],
)
def test_a_failure_that_another_attempt_cannot_fix_is_not_retried(failure: Any) -> None:
    lam = FakeLambda(failure, "ok")

    outcomes, slept = invoke_with(lam)

    assert (lam.calls, slept) == (1, [])
    assert {(o.result, o.attempts) for o in outcomes} == {("ProcessingFailed", 1)}


def test_number_of_retries_zero_makes_one_attempt() -> None:
    lam = FakeLambda("unhandled", "ok")

    outcomes, slept = invoke_with(lam, retries=0)

    assert (lam.calls, slept, outcomes[0].attempts) == (1, [], 1)


def test_the_runners_lambda_client_makes_one_attempt_per_call_so_the_policy_is_the_only_retry_loop(
    tmp_path: Path,
) -> None:
    from runners.firehose import FirehoseRunner

    runner = FirehoseRunner(CLIENTS, config(), tmp_path / "ckpt.json")

    assert runner.lam.meta.config.retries["total_max_attempts"] == 1
