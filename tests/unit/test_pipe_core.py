"""The pipe runner's pure parts: the event it sends, partition keys, shard lineage, batch limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.errors import TerminalError
from runners.pipe import Shard, chunk_entries, json_path, order_shards, pipe_event, stream_name_from_arn, wire_form

FIXTURES = Path(__file__).parent.parent / "fixtures"


def boto_record() -> dict:
    """A GetRecords record as boto3 returns it (datetime and bytes already decoded)."""
    return {
        "eventID": "e1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC),
            "Keys": {"order_id": {"S": "o-1"}},
            "NewImage": {"order_id": {"S": "o-1"}, "blob": {"B": b"\x00\x01"}, "tags": {"BS": [b"a"]}},
            "OldImage": {"order_id": {"S": "o-1"}},
            "SequenceNumber": "100", "SizeBytes": 50, "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_pipe_event_is_the_stream_record_in_wire_form() -> None:
    event = pipe_event(wire_form(boto_record()), "arn:aws:dynamodb:us-east-1:1:table/t/stream/x")
    assert event["dynamodb"]["ApproximateCreationDateTime"] == datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC).timestamp()
    assert event["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert event["dynamodb"]["NewImage"]["tags"] == {"BS": ["YQ=="]}
    assert event["eventSourceARN"] == "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"
    json.dumps(event)  # serialisable as is


def test_partition_key_comes_from_the_json_path() -> None:
    event = pipe_event(wire_form(boto_record()), "arn")
    assert json_path(event, "$.dynamodb.Keys.order_id.S") == "o-1"
    assert json_path(event, "static-key") == "static-key"
    with pytest.raises(TerminalError, match=r"PartitionKey path \$.dynamodb.Keys.nope.S does not exist"):
        json_path(event, "$.dynamodb.Keys.nope.S")


def test_children_wait_for_their_parent_shard() -> None:
    """Lineage from a recorded DescribeStream response shaped as AWS documents it."""
    desc = json.loads((FIXTURES / "describe_stream_lineage.json").read_text())["StreamDescription"]
    shards = [Shard(s["ShardId"], s.get("ParentShardId"), "EndingSequenceNumber" in s["SequenceNumberRange"])
              for s in desc["Shards"]]
    parent, child, other = (s.shard_id for s in shards)
    assert [s.shard_id for s in order_shards(shards, finished=set())] == [parent, other]
    assert [s.shard_id for s in order_shards(shards, finished={parent})] == [child, other]


def test_a_child_whose_parent_expired_is_read_at_once() -> None:
    shards = [Shard("child", "gone-parent", closed=False)]
    assert order_shards(shards, finished=set()) == shards


def test_put_records_batches_respect_kinesis_limits() -> None:
    entries = [{"Data": b"x" * 100, "PartitionKey": "k"} for _ in range(1201)]
    assert [len(b) for b in chunk_entries(entries)] == [500, 500, 201]
    big = [{"Data": b"x" * (1024 * 1024 - 10), "PartitionKey": "k"} for _ in range(6)]
    assert [len(b) for b in chunk_entries(big)] == [5, 1]  # five records of ~1 MiB fit in 5 MiB


def test_stream_name_from_arn() -> None:
    assert stream_name_from_arn("arn:aws:kinesis:eu-west-1:123:stream/sales-orders-cdc") == "sales-orders-cdc"
