"""Clients.raw_json: the same answer as boto3 (in wire form), and AWS errors as ClientError codes."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from common.aws import Clients, error_code
from runners.pipe import wire_form


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
