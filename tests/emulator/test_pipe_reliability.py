"""The pipe runner against the emulator: records Kinesis cannot take go to dead letters in S3 (payload and reason
kept) while the pipe goes on, and a re-created table's stream (same shard ids, new ARN) is read from its start."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.spec import desired_resources, resolve
from common.aws import Clients
from common.config import Settings, with_overrides
from runners.pipe import PipeRunner, events_to_redrive, read_dead_letters, read_stream_range
from tests.fixtures.faults import Fault

LAKE = "pr-lake"


@pytest.fixture(scope="module")
def base(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = with_overrides(emulator_settings, state_dir=tmp_path_factory.mktemp("pipe-reliability"),
                       project="pr-cdc", pipe_name="pr-pipe", lake_bucket=LAKE)
    Clients(s).s3.create_bucket(Bucket=LAKE)
    yield s


def make_table(clients: Clients, settings: Settings) -> str:
    """The table (with its stream) and the Kinesis stream the pipe request names; returns the stream's ARN."""
    ddb = clients.dynamodb
    desc = ddb.create_table(TableName=settings.table_name, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.get_waiter("table_exists").wait(TableName=settings.table_name)
    return desc["TableDescription"]["LatestStreamArn"]


def make_stream(clients: Clients, settings: Settings) -> None:
    clients.kinesis.create_stream(StreamName=settings.stream_name, ShardCount=1)
    clients.kinesis.get_waiter("stream_exists").wait(StreamName=settings.stream_name)


def pipe_spec(clients: Clients, settings: Settings, stream_arn: str) -> dict:
    """The very CreatePipe request the bootstrap writes for the runner, pointed at this table's stream."""
    (pipe,) = [r for r in desired_resources(settings, clients.account_id) if r.kind == "pipe"]
    return resolve(pipe.params, {"table_stream_arn": stream_arn})


def pump(pipe: PipeRunner, passes: int = 20) -> None:
    """Run passes until two in a row find nothing to do."""
    quiet = 0
    for _ in range(passes):
        quiet = quiet + 1 if pipe.run_once() else 0
        if quiet >= 2:
            return
    raise AssertionError(f"the pipe was still busy after {passes} passes")


def kinesis_events(clients: Clients, stream: str) -> list[dict]:
    kinesis = clients.kinesis
    events = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=1000)
            events += [json.loads(r["Data"]) for r in page["Records"]]
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            it = page.get("NextShardIterator")
    return events


def dead_letters_of(clients: Clients, stream_arn: str) -> list[tuple[str, dict]]:
    """This stream's dead letters in stream order (object names order them by second, then by a random uuid)."""
    mine = [(key, m) for key, m in read_dead_letters(clients.s3, LAKE, "errors/")
            if m["DDBStreamBatchInfo"]["streamArn"] == stream_arn]
    return sorted(mine, key=lambda letter: int(letter[1]["DDBStreamBatchInfo"]["startSequenceNumber"]))


def item(order_id: str, **attrs: dict) -> dict:
    return {"order_id": {"S": order_id}, "status": {"S": "PLACED"}, **attrs}


def test_records_kinesis_cannot_take_go_to_dead_letters_in_s3_and_the_pipe_goes_on(base: Settings) -> None:
    settings = with_overrides(base, table_name="pr_sizes", stream_name="pr-sizes-cdc")
    clients = Clients(settings)
    stream_arn = make_table(clients, settings)
    make_stream(clients, settings)
    ddb = clients.dynamodb
    ddb.put_item(TableName="pr_sizes", Item=item("o-emoji", note={"S": "\U0001F600" * 99_000}))  # 396 KB UTF-8
    ddb.put_item(TableName="pr_sizes", Item=item("o-big", blob={"B": b"\x01" * 399_000}))  # 532 KB in base64
    ddb.put_item(TableName="pr_sizes", Item=item("o-big", blob={"B": b"\x02" * 399_000}))  # both images: > 1 MiB
    ddb.put_item(TableName="pr_sizes", Item=item("k" * 300))  # a valid DynamoDB key, too long for Kinesis
    ddb.put_item(TableName="pr_sizes", Item=item("o-after"))

    pipe = PipeRunner(clients, pipe_spec(clients, settings, stream_arn), settings.runner_dir / "sizes.json")
    pump(pipe)

    delivered = [(e["eventName"], e["dynamodb"]["Keys"]["order_id"]["S"])
                 for e in kinesis_events(clients, "pr-sizes-cdc")]
    assert delivered == [("INSERT", "o-emoji"), ("INSERT", "o-big"), ("INSERT", "o-after")]
    letters = dead_letters_of(clients, stream_arn)
    assert [m["errorCode"] for _, m in letters] == ["Kinesis.RecordTooLarge", "PartitionKey.OutOfRange"]
    (key, big), (_, long_key) = letters
    assert key.startswith("errors/pipe-dead-letter/") and len(key.split("/")) == 7  # .../YYYY/MM/dd/HH/<name>
    assert big["context"] == {"partnerResourceArn": f"arn:aws:pipes:us-east-1:{clients.account_id}:pipe/pr-pipe",
                              "condition": "RetryAttemptsExhausted"}
    assert big["DDBStreamBatchInfo"]["batchSize"] == 1
    (event,) = events_to_redrive(big)  # the payload survives the stream: both images, byte for byte
    assert (event["eventName"], event["dynamodb"]["OldImage"]["blob"]["B"][:4]) == ("MODIFY", "AQEB")
    assert event["dynamodb"]["SequenceNumber"] == big["DDBStreamBatchInfo"]["startSequenceNumber"]
    pointers_only = {k: big[k] for k in ("context", "version", "timestamp", "DDBStreamBatchInfo")}  # as AWS sends it
    streams = clients.client("dynamodbstreams")
    assert events_to_redrive(pointers_only, lambda *where: read_stream_range(streams, *where)) == [event]
    assert "PartitionKey" in long_key["errorMessage"] and "300" in long_key["errorMessage"]
    assert pipe.checkpoint.get(pipe.shards()[0].shard_id) == pipe.stats.position[pipe.shards()[0].shard_id]
    assert (pipe.stats.records_in, pipe.stats.records_out, pipe.stats.dead_letters) == (5, 3, 2)


def test_an_entry_kinesis_keeps_refusing_is_dead_lettered_after_maximum_retry_attempts(base: Settings) -> None:
    settings = with_overrides(base, table_name="pr_refused", stream_name="pr-refused-cdc")
    clients = Clients(settings, max_attempts=1)
    stream_arn = make_table(clients, settings)
    make_stream(clients, settings)
    clients.dynamodb.put_item(TableName="pr_refused", Item=item("o-refused"))
    spec = copy.deepcopy(pipe_spec(clients, settings, stream_arn))
    spec["SourceParameters"]["DynamoDBStreamParameters"]["MaximumRetryAttempts"] = 2
    refused = {"FailedRecordCount": 1, "Records": [{"ErrorCode": "ProvisionedThroughputExceededException",
                                                    "ErrorMessage": "Rate exceeded for shard shardId-000000000000"}]}
    fault = Fault(clients.kinesis, "PutRecords", "", times=3, status=200, body=refused)
    pipe = PipeRunner(clients, spec, settings.runner_dir / "refused.json")
    pump(pipe)
    assert fault.injected == 3  # the first attempt and two retries
    assert kinesis_events(clients, "pr-refused-cdc") == []
    ((_, letter),) = dead_letters_of(clients, stream_arn)
    assert letter["errorCode"] == "ProvisionedThroughputExceededException"
    assert letter["originalEvents"][0]["dynamodb"]["Keys"] == {"order_id": {"S": "o-refused"}}
    clients.dynamodb.put_item(TableName="pr_refused", Item=item("o-next"))
    pump(pipe)  # the pipe did not stall: the next change flows
    assert [e["dynamodb"]["Keys"]["order_id"]["S"] for e in kinesis_events(clients, "pr-refused-cdc")] == ["o-next"]


def test_a_recreated_table_s_stream_is_read_from_its_start_without_a_false_data_loss_notice(base: Settings) -> None:
    settings = with_overrides(base, table_name="pr_again", stream_name="pr-again-cdc")
    clients = Clients(settings)
    make_stream(clients, settings)
    checkpoint: Path = settings.runner_dir / "again.json"
    first_arn = make_table(clients, settings)
    clients.dynamodb.put_item(TableName="pr_again", Item=item("o-first"))
    pump(PipeRunner(clients, pipe_spec(clients, settings, first_arn), checkpoint))

    clients.dynamodb.delete_table(TableName="pr_again")
    clients.dynamodb.get_waiter("table_not_exists").wait(TableName="pr_again")
    second_arn = make_table(clients, settings)
    assert second_arn != first_arn  # a new stream label ...
    shard_ids = [s["ShardId"] for s in clients.client("dynamodbstreams").describe_stream(
        StreamArn=second_arn)["StreamDescription"]["Shards"]]
    clients.dynamodb.put_item(TableName="pr_again", Item=item("o-second"))

    pipe = PipeRunner(clients, pipe_spec(clients, settings, second_arn), checkpoint)
    assert pipe.checkpoint.get(shard_ids[0]) is None  # ... though the emulator reuses the shard id
    pump(pipe)
    keys = [e["dynamodb"]["Keys"]["order_id"]["S"] for e in kinesis_events(clients, "pr-again-cdc")]
    assert keys == ["o-first", "o-second"]
    assert pipe.stats.data_loss == []  # the old stream's position is not mistaken for a trimmed one
