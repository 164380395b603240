"""The DynamoDB stream record and the Pipe's event, as AWS documents them, through the pipe runner's code.

Pages: API_streams_Record / the Lambda DynamoDB example event, and the EventBridge Pipes DynamoDB
source page (tests/fixtures/aws_docs/dynamodb_stream_record.json, pipe_dynamodb_event.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.pipe import pipe_event
from tests.unit.conformance.docs import aws_doc

STREAM_ARN = "arn:aws:dynamodb:us-west-2:111122223333:table/TestTable/stream/2015-05-11T21:21:33.291"
OWN_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stream_records"


def documented_record() -> dict:
    """The documented example as GetRecords returns it: eventSourceARN is the event source mapping's addition."""
    record = dict(aws_doc("dynamodb_stream_record")["example"])
    record.pop("eventSourceARN")
    return record


def test_the_documented_record_has_only_documented_members() -> None:
    doc = aws_doc("dynamodb_stream_record")
    record = documented_record()
    assert set(record) <= set(doc["members"])
    assert set(record["dynamodb"]) <= set(doc["stream_record_members"])
    assert record["eventName"] in doc["event_names"]


def test_pipe_event_of_the_documented_record_has_exactly_the_documented_pipe_event_keys() -> None:
    documented = aws_doc("pipe_dynamodb_event")["example"]
    keys = {frozenset(event) for event in documented}
    assert len(keys) == 1  # both documented events carry the same keys

    event = pipe_event(documented_record(), STREAM_ARN)

    assert set(event) == set(documented[0])
    assert event["dynamodb"] == documented_record()["dynamodb"]  # the stream record's body, untouched
    assert event["eventSourceARN"] == STREAM_ARN


@pytest.mark.parametrize("name", ["insert_order.json", "modify_order.json", "remove_order.json"])
def test_this_projects_own_pipe_event_fixtures_have_the_documented_shape(name: str) -> None:
    documented = aws_doc("pipe_dynamodb_event")["example"][0]
    members = aws_doc("dynamodb_stream_record")
    event = json.loads((OWN_FIXTURES / name).read_text(encoding="utf-8"))
    assert set(event) <= set(documented) | set(members["members"])
    assert set(event["dynamodb"]) <= set(members["stream_record_members"])
