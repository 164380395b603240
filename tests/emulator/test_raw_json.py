"""Clients.raw_json: the same answer as boto3 (in wire form), AWS errors as ClientError codes, botocore's hooks."""

from __future__ import annotations

import base64

import pytest
from botocore.exceptions import ClientError

from common.aws import Clients, error_code
from runners.pipe import wire_form
from tests.fixtures.faults import Fault


def test_raw_get_records_equals_boto3_in_wire_form(emulator_clients: Clients) -> None:
    ddb = emulator_clients.dynamodb
    ddb.create_table(TableName="raw_json_t", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    try:
        ddb.put_item(TableName="raw_json_t", Item={"k": {"S": "a"}, "b": {"B": b"\x00\x01"}, "n": {"N": "1.50"}})
        streams = emulator_clients.client("dynamodbstreams")
        arn = ddb.describe_table(TableName="raw_json_t")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

        def iterator() -> str:
            return streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

        parsed = streams.get_records(ShardIterator=iterator())["Records"]
        raw = emulator_clients.raw_json("dynamodbstreams", "GetRecords", {"ShardIterator": iterator()})["Records"]
        assert raw == wire_form(parsed)
        assert raw[0]["dynamodb"]["NewImage"]["b"] == {"B": "AAE="}

        with pytest.raises(ClientError) as err:
            emulator_clients.raw_json("dynamodbstreams", "DescribeStream", {"StreamArn": arn + "-nope"})
        assert error_code(err.value) == "ResourceNotFoundException"
    finally:
        ddb.delete_table(TableName="raw_json_t")


def test_raw_kinesis_get_records_equals_boto3_in_wire_form(emulator_clients: Clients) -> None:
    kinesis = emulator_clients.kinesis
    kinesis.create_stream(StreamName="raw-json-k", ShardCount=1)
    try:
        kinesis.get_waiter("stream_exists").wait(StreamName="raw-json-k", WaiterConfig={"Delay": 0.2})
        kinesis.put_record(StreamName="raw-json-k", Data=b'{"x":1}\x00\xff', PartitionKey="p")

        def iterator() -> str:
            return kinesis.get_shard_iterator(StreamName="raw-json-k", ShardId="shardId-000000000000",
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

        (parsed,) = kinesis.get_records(ShardIterator=iterator())["Records"]
        (raw,) = emulator_clients.raw_json("kinesis", "GetRecords", {"ShardIterator": iterator()})["Records"]
        assert raw["Data"] == base64.b64encode(parsed["Data"]).decode()
        assert raw["ApproximateArrivalTimestamp"] == parsed["ApproximateArrivalTimestamp"].timestamp()
        assert (raw["SequenceNumber"], raw["PartitionKey"]) == (parsed["SequenceNumber"], "p")
    finally:
        kinesis.delete_stream(StreamName="raw-json-k")


def test_raw_calls_pass_through_botocore_before_send_hooks(emulator_clients: Clients) -> None:
    """What hooks a boto3 client (moto, the tests' fault injector) hooks its raw calls too."""
    clients = Clients(emulator_clients.settings)
    fault = Fault(clients.client("dynamodbstreams"), "ListStreams", "LimitExceededException", times=1)
    with pytest.raises(ClientError) as err:
        clients.raw_json("dynamodbstreams", "ListStreams", {})
    assert error_code(err.value) == "LimitExceededException" and fault.injected == 1
    assert "Streams" in clients.raw_json("dynamodbstreams", "ListStreams", {})  # the next call reaches the emulator
