"""The Firehose transformation event and the Lambda's answer, as AWS documents them.

The transform runs on the documented event for a Kinesis source (Lambda's "Using Lambda with
Firehose" page); its answer must follow Firehose's status model (data-transformation-status-model);
the event the firehose runner builds must carry the documented keys and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bootstrap.spec import desired_resources
from common.config import load_settings
from runners.firehose import SourceRecord, invoke_event
from runners.firehose_config import parse_config
from tests.unit.conformance.docs import aws_doc
from transform.handler import handler

OWN_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stream_records"


def run_handler(event: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The handler's answer, and the JSON lines it printed (its CloudWatch Logs lines)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        answer = handler(copy.deepcopy(event), None)
    lines = [json.loads(line) for line in printed.getvalue().splitlines() if line.startswith("{")]
    return answer, lines


def assert_documented_answer(event: dict[str, Any], answer: dict[str, Any]) -> None:
    model = aws_doc("firehose_lambda_response")
    assert set(answer) == {"records"}
    assert [r["recordId"] for r in answer["records"]] == [r["recordId"] for r in event["records"]]
    for record in answer["records"]:
        assert set(model["required_keys"]) <= set(record)
        assert set(record) <= set(model["required_keys"]) | {model["partitioning_keys_path"][0]}
        assert record["result"] in model["results"]
        binascii.a2b_base64(record["data"], strict_mode=True)
        if "metadata" in record:
            keys = record["metadata"][model["partitioning_keys_path"][1]]
            assert keys and all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())


def test_the_transform_answers_the_documented_kinesis_source_event_by_the_status_model() -> None:
    event = aws_doc("firehose_lambda_event_kinesis")["example"]

    answer, _ = run_handler(event)

    assert_documented_answer(event, answer)
    # "Hello World" is no DynamoDB stream record: each record fails, visibly, with its own data kept.
    assert [r["result"] for r in answer["records"]] == ["ProcessingFailed", "ProcessingFailed"]
    assert [r["data"] for r in answer["records"]] == [r["data"] for r in event["records"]]


def test_each_failure_is_logged_with_what_identifies_its_record_in_the_error_output() -> None:
    """AWS's processing-failed object has no recordId: the log line carries the record's Kinesis
    position and a digest of its data, so `make errors` can join the two."""
    event = aws_doc("firehose_lambda_event_kinesis")["example"]

    _, log_lines = run_handler(event)

    reasons = [line for line in log_lines if "reason" in line]
    assert [line["recordId"] for line in reasons] == ["record1", "record2"]
    for line, record in zip(reasons, event["records"], strict=True):
        meta = record["kinesisRecordMetadata"]
        assert line["invocationId"] == event["invocationId"]
        assert (line["shardId"], line["sequenceNumber"]) == (meta["shardId"], meta["sequenceNumber"])
        assert line["approximateArrivalTimestamp"] == record["approximateArrivalTimestamp"]
        assert line["dataSha256"] == hashlib.sha256(base64.b64decode(record["data"])).hexdigest()
        assert line["reason"]


def test_a_pipe_event_in_the_documented_envelope_is_ok_with_partition_keys() -> None:
    event = copy.deepcopy(aws_doc("firehose_lambda_event_kinesis")["example"])
    own = (OWN_FIXTURES / "insert_order.json").read_bytes()
    event["records"][0]["data"] = base64.b64encode(own).decode()

    answer, _ = run_handler(event)

    assert_documented_answer(event, answer)
    assert answer["records"][0]["result"] == "Ok"
    assert set(answer["records"][0]["metadata"]["partitionKeys"]) == {"year", "month", "day"}


def test_the_runners_invoke_event_has_the_documented_keys() -> None:
    doc = aws_doc("firehose_lambda_event_kinesis")
    documented = doc["example"]
    spec = {r.kind: r for r in desired_resources(load_settings(env={}), "000000000000")}["delivery_stream"].params
    arrival = datetime(2026, 1, 5, 9, 58, 11, tzinfo=UTC)
    record = SourceRecord.of("shardId-000000000000:4954", b'{"x":1}', arrival, ("shardId-000000000000", "4954"), "k")

    event = invoke_event([record], parse_config(spec), "us-west-2")

    assert set(documented) <= set(event) <= set(documented) | set(doc["optional_event_keys"])
    (sent,) = event["records"]
    assert set(sent) == set(documented["records"][0])
    assert set(sent["kinesisRecordMetadata"]) == set(documented["records"][0]["kinesisRecordMetadata"])
    assert_documented_answer(event, run_handler(event)[0])
