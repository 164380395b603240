"""The firehose runner's contract checks on the Lambda's answer, payload limits and error records."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from bootstrap.spec import desired_resources
from common.config import load_settings
from runners.firehose import (
    SourceRecord,
    error_document,
    invoke_event,
    parse_response,
    reasons_from_log,
    split_for_payload,
)
from runners.firehose_config import LAMBDA_SYNC_PAYLOAD_MAX, MIB, parse_config

ARRIVAL = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rec(i: int, data: bytes = b'{"x":1}') -> SourceRecord:
    return SourceRecord(f"shard-0:{i}", data, ARRIVAL, ("shard-0", str(i)), f"o-{i}")


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


def test_ok_rows_keep_their_partition_keys() -> None:
    (out,) = parse_response([rec(1)], {"records": [ok(1)]}, {})
    assert (out.result, out.data) == ("Ok", b'{"a":1}')
    assert out.partition_keys == {"year": "2026", "month": "11", "day": "26"}


def test_a_record_missing_from_the_answer_fails_instead_of_vanishing() -> None:
    outs = parse_response([rec(1), rec(2)], {"records": [ok(1)]}, {})
    assert [o.result for o in outs] == ["Ok", "ProcessingFailed"]
    assert outs[1].error_code == "Lambda.MissingRecordId"
    assert outs[1].record.data == b'{"x":1}'


def test_invalid_result_strings_and_bad_base64_fail() -> None:
    bad_result = {**ok(1), "result": "Success"}
    bad_data = {**ok(2), "data": "***"}
    outs = parse_response([rec(1), rec(2)], {"records": [bad_result, bad_data]}, {})
    assert [(o.result, o.error_code) for o in outs] == [
        ("ProcessingFailed", "Lambda.InvalidResult"), ("ProcessingFailed", "Lambda.InvalidData")]


def test_unknown_and_repeated_record_ids_are_ignored() -> None:
    outs = parse_response([rec(1)], {"records": [ok(9), ok(1), {**ok(1), "result": "Dropped"}]}, {})
    assert [o.result for o in outs] == ["Ok"]


def test_processing_failed_carries_the_reason_the_transform_logged() -> None:
    tail = "START\nrecordId=shard-0:1 reason=data: not valid JSON (Expecting value)\nEND\n"
    reasons = reasons_from_log(tail)
    assert reasons == {"shard-0:1": "data: not valid JSON (Expecting value)"}
    (out,) = parse_response([rec(1)], {"records": [{"recordId": "shard-0:1", "result": "ProcessingFailed",
                                                    "data": "eA=="}]}, reasons)
    assert out.error_message == "data: not valid JSON (Expecting value)"


def test_a_response_without_records_fails_every_record() -> None:
    outs = parse_response([rec(1), rec(2)], {"errorMessage": "boom"}, {})
    assert {o.error_code for o in outs} == {"Lambda.InvalidResponse"}


def test_error_documents_keep_the_original_payload() -> None:
    (out,) = parse_response([rec(7, b"not json")], {"records": []}, {})
    doc = json.loads(error_document(out, "arn:fn", ARRIVAL))
    assert base64.b64decode(doc["rawData"]) == b"not json"
    assert (doc["errorCode"], doc["lambdaArn"], doc["sequenceNumber"]) == ("Lambda.MissingRecordId", "arn:fn", "7")


def test_invokes_stay_under_lambdas_synchronous_payload_limit() -> None:
    records = [rec(i, b"x" * 400_000) for i in range(40)]  # ~21 MB of base64
    batches = split_for_payload(records)
    assert sum(len(b) for b in batches) == 40
    assert len(batches) > 1
    for batch in batches:
        size = len(json.dumps(invoke_event(batch, config(), "us-east-1")))
        assert size < LAMBDA_SYNC_PAYLOAD_MAX
