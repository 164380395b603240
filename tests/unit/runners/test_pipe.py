"""The pipe runner: the event it sends, partition keys, shard lineage, batch limits, and (against an
in-memory stream and Kinesis) what it does when a pass fails or a record cannot be delivered."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from common.errors import TerminalError, TransientError
from runners.pipe import (
    PipeRunner,
    chunk_entries,
    dead_letter_key,
    dead_letter_message,
    encode_event,
    events_to_redrive,
    json_path,
    kinesis_entry,
    pipe_event,
    raw_put_records,
    read_stream_range,
    stream_name_from_arn,
    wire_form,
)
from runners.shards import Shard, order_shards

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


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


def test_the_event_sent_is_the_bytes_the_json_module_writes_compact_in_utf8() -> None:
    """encode_event uses orjson for speed; what reaches Kinesis is what json.dumps writes, to the byte."""
    record = wire_form(boto_record())
    record["dynamodb"]["NewImage"]["note"] = {"S": 'é "q" \\ \x00\x1f\x7f \u2028 \U0001F600 </'}
    record["dynamodb"]["ApproximateCreationDateTime"] = 1767571200.123
    record["dynamodb"]["SizeBytes"] = 2**63 - 1
    event = pipe_event(record, "arn:aws:dynamodb:us-east-1:1:table/t/stream/x")
    assert encode_event(event) == json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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


# --- the runner against an in-memory stream and Kinesis ---------------------------------------------

STREAM_A = "arn:aws:dynamodb:us-east-1:123456789012:table/sales_orders/stream/2026-11-26T12:00:00.000"
STREAM_B = "arn:aws:dynamodb:us-east-1:123456789012:table/sales_orders/stream/2026-11-27T08:00:00.000"
TARGET = "arn:aws:kinesis:us-east-1:123456789012:stream/sales-orders-cdc"
SHARD = "shardId-00000001795700000000-aaaaaaaa"


def stream_record(seq: int, order_id: str = "o-1", **image: dict) -> dict:
    """A GetRecords record in wire form, as the runner reads it."""
    new = {"order_id": {"S": order_id}, **image}
    return {"eventID": f"e{seq}", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": time.time(), "Keys": {"order_id": {"S": order_id}},
                         "NewImage": new, "SequenceNumber": f"{seq:021d}", "SizeBytes": 50,
                         "StreamViewType": "NEW_AND_OLD_IMAGES"}}


class FakeStreams:
    """DynamoDB Streams in memory: a closed shard's last page comes without a NextShardIterator."""

    def __init__(self, arn: str, shards: dict[str, tuple[bool, list[dict]]]) -> None:
        self.arn, self.shards = arn, shards

    def describe_stream(self, StreamArn: str, **_: object) -> dict:
        assert StreamArn == self.arn
        return {"StreamDescription": {"Shards": [
            {"ShardId": sid, "SequenceNumberRange": {"StartingSequenceNumber": "1",
                                                     **({"EndingSequenceNumber": "9" * 21} if closed else {})}}
            for sid, (closed, _) in self.shards.items()]}}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                           SequenceNumber: str | None = None) -> dict:
        assert StreamArn == self.arn
        records = self.shards[ShardId][1]
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
            if SequenceNumber not in seqs:
                error = {"Error": {"Code": "TrimmedDataAccessException", "Message": "not in this stream"}}
                raise ClientError(error, "GetShardIterator")
            return {"ShardIterator": f"{ShardId}|{seqs.index(SequenceNumber) + 1}"}
        start = len(records) if ShardIteratorType == "LATEST" else 0
        return {"ShardIterator": f"{ShardId}|{start}"}

    def get_records(self, params: dict) -> dict:
        shard, at = params["ShardIterator"].split("|")
        closed, records = self.shards[shard]
        page = records[int(at):int(at) + params["Limit"]]
        end = int(at) + len(page)
        more = not closed or end < len(records)
        return {"Records": page, **({"NextShardIterator": f"{shard}|{end}"} if more else {})}


class FakeKinesis:
    """PutRecords in memory; `fail_calls` raise as a whole (a crash), `refuse` refuses entries by a predicate."""

    def __init__(self, fail_calls: frozenset[int] = frozenset(), refuse=lambda entry: None) -> None:
        self.fail_calls, self.refuse = fail_calls, refuse
        self.calls = 0
        self.put: list[dict] = []

    def put_records(self, StreamName: str, Records: list[dict]) -> dict:
        self.calls += 1
        if self.calls in self.fail_calls:
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "crash"}}, "PutRecords")
        results = []
        for entry in Records:
            code = self.refuse(entry)
            if code:
                results.append({"ErrorCode": code, "ErrorMessage": "Rate exceeded for shard"})
            else:
                self.put.append(entry)
                results.append({"SequenceNumber": str(len(self.put)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}

    def sequences(self) -> list[str]:
        return [json.loads(e["Data"])["dynamodb"]["SequenceNumber"] for e in self.put]


class FakeClients:
    def __init__(self, streams: FakeStreams, kinesis: FakeKinesis) -> None:
        self.streams, self.kinesis = streams, kinesis

    def client(self, service: str) -> FakeStreams:
        assert service == "dynamodbstreams"
        return self.streams

    def raw_json(self, service: str, operation: str, params: dict) -> dict:
        assert (service, operation) == ("dynamodbstreams", "GetRecords")
        return self.streams.get_records(params)


def pipe_spec(source: str = STREAM_A, batch_size: int = 100, partition_key: str = "$.dynamodb.Keys.order_id.S",
              **stream_params: object) -> dict:
    """A CreatePipe request as the bootstrap writes it to <state>/runners/pipe.json."""
    return {"Name": "sales-orders-pipe", "Source": source, "Target": TARGET,
            "SourceParameters": {"DynamoDBStreamParameters": {
                "StartingPosition": "TRIM_HORIZON", "BatchSize": batch_size, **stream_params}},
            "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": partition_key}}}


def test_a_closed_shard_is_finished_only_once_its_last_page_is_in_kinesis(tmp_path: Path) -> None:
    """A crash between two PutRecords of a closed shard's last page must not skip the rest of the shard."""
    records = [stream_record(i) for i in (1, 2, 3)]
    streams = FakeStreams(STREAM_A, {SHARD: (True, records)})
    crashing = FakeKinesis(fail_calls=frozenset({2}))
    with pytest.raises(ClientError):
        PipeRunner(FakeClients(streams, crashing), pipe_spec(batch_size=2), tmp_path / "pipe.json").run_once()
    assert crashing.sequences() == [f"{1:021d}", f"{2:021d}"]

    kinesis = FakeKinesis()
    restarted = PipeRunner(FakeClients(streams, kinesis), pipe_spec(batch_size=2), tmp_path / "pipe.json")
    restarted.run_once()
    assert kinesis.sequences() == [f"{3:021d}"]  # resumed after 2: nothing skipped, nothing repeated
    assert restarted.checkpoint.finished == {SHARD}  # and only now is the shard done
    assert restarted.run_once() is True


def test_a_recreated_table_s_stream_is_read_although_it_reuses_the_shard_ids(tmp_path: Path) -> None:
    """The emulator reuses shard ids: a stale 'finished' (or position) of the old stream must not apply."""
    old = FakeStreams(STREAM_A, {SHARD: (True, [stream_record(1)])})
    first = PipeRunner(FakeClients(old, FakeKinesis()), pipe_spec(STREAM_A), tmp_path / "pipe.json")
    first.run_once()
    assert first.checkpoint.finished == {SHARD}

    new = FakeStreams(STREAM_B, {SHARD: (False, [stream_record(1, "o-2"), stream_record(2, "o-2")])})
    kinesis = FakeKinesis()
    runner = PipeRunner(FakeClients(new, kinesis), pipe_spec(STREAM_B), tmp_path / "pipe.json")
    runner.run_once()
    assert kinesis.sequences() == [f"{1:021d}", f"{2:021d}"]
    assert runner.stats.data_loss == []  # no false alarm about the old stream's checkpoint either


def test_after_an_unreadable_checkpoint_the_pipe_rereads_from_trim_horizon_even_if_it_started_at_latest(
        tmp_path: Path) -> None:
    (tmp_path / "pipe.json").write_text('{"version": 2, "scopes": {')  # torn by a crash
    streams = FakeStreams(STREAM_A, {SHARD: (False, [stream_record(1), stream_record(2)])})
    kinesis = FakeKinesis()
    runner = PipeRunner(FakeClients(streams, kinesis), pipe_spec(StartingPosition="LATEST"), tmp_path / "pipe.json")
    runner.run_once()
    assert kinesis.sequences() == [f"{1:021d}", f"{2:021d}"]  # duplicates are possible, a gap is not
    assert list(tmp_path.glob("pipe.json.corrupt-*"))


def test_a_new_pipe_starts_at_latest_when_asked_but_a_shard_found_later_starts_at_its_oldest_record(
        tmp_path: Path) -> None:
    streams = FakeStreams(STREAM_A, {SHARD: (False, [stream_record(1)])})
    kinesis = FakeKinesis()
    runner = PipeRunner(FakeClients(streams, kinesis), pipe_spec(StartingPosition="LATEST"), tmp_path / "pipe.json")
    runner.run_once()
    assert kinesis.sequences() == []  # LATEST: what was there before the pipe started is not read
    streams.shards[SHARD][1].append(stream_record(2))
    streams.shards["child"] = (False, [stream_record(3)])
    runner.discovered.expire()
    runner.run_once()
    assert sorted(kinesis.sequences()) == [f"{2:021d}", f"{3:021d}"]


# --- MaximumBatchingWindowInSeconds: a partial batch waits, a full one goes -------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def windowed_pipe(tmp_path: Path, records: list[dict], batch_size: int, window_s: int,
                  closed: bool = False) -> tuple[PipeRunner, FakeStreams, FakeKinesis, Clock]:
    streams = FakeStreams(STREAM_A, {SHARD: (closed, records)})
    kinesis = FakeKinesis()
    runner = PipeRunner(FakeClients(streams, kinesis), pipe_spec(batch_size=batch_size,
                                                                 MaximumBatchingWindowInSeconds=window_s),
                        tmp_path / "pipe.json")
    runner.clock = clock = Clock()
    return runner, streams, kinesis, clock


def test_a_partial_batch_waits_out_the_batching_window_then_goes_in_one_put(tmp_path: Path) -> None:
    """AWS's poller gathers records until the batch is full or the window ends: a few records are not sent
    on the read that found them, and the ones read meanwhile join the same batch."""
    runner, streams, kinesis, clock = windowed_pipe(tmp_path, [stream_record(1), stream_record(2)], 100, 2)
    assert (runner.run_once(), runner.stats.pending) == (False, 2)  # not idle: a drain waits for what is held
    assert (kinesis.calls, runner.checkpoint.get(SHARD)) == (0, None)  # held, and not checkpointed
    clock.now += 1.5
    streams.shards[SHARD][1].append(stream_record(3))
    runner.run_once()
    assert kinesis.calls == 0
    clock.now += 0.5  # two seconds since the first record was read
    runner.run_once()
    assert (kinesis.calls, kinesis.sequences()) == (1, [f"{n:021d}" for n in (1, 2, 3)])
    assert runner.checkpoint.get(SHARD) == f"{3:021d}"
    assert (runner.run_once(), runner.stats.pending) == (True, 0)


def test_full_batches_go_at_once_and_only_the_remainder_waits(tmp_path: Path) -> None:
    runner, _, kinesis, clock = windowed_pipe(tmp_path, [stream_record(n) for n in (1, 2, 3, 4, 5)], 2, 1)
    runner.run_once()
    assert kinesis.sequences() == [f"{n:021d}" for n in (1, 2, 3, 4)]
    clock.now += 1
    runner.run_once()
    assert kinesis.sequences()[-1] == f"{5:021d}"


def test_a_closed_shard_s_last_records_go_without_waiting_and_its_children_may_start(tmp_path: Path) -> None:
    runner, _, kinesis, _ = windowed_pipe(tmp_path, [stream_record(1)], 100, 300, closed=True)
    runner.run_once()
    assert kinesis.sequences() == [f"{1:021d}"]
    assert runner.checkpoint.finished == {SHARD}


def test_held_records_are_read_again_after_a_failed_pass_never_lost(tmp_path: Path) -> None:
    runner, _, kinesis, clock = windowed_pipe(tmp_path, [stream_record(1)], 100, 1)
    runner.run_once()
    kinesis.fail_calls = frozenset({1})
    clock.now += 1
    with pytest.raises(ClientError):
        runner.run_once()
    runner.run_once()  # re-read from the checkpoint: the held record is in this pass's batch
    clock.now += 1
    runner.run_once()
    assert kinesis.sequences() == [f"{1:021d}"]


def test_a_batching_window_outside_create_pipe_s_range_is_refused_naming_the_field_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match=r"MaximumBatchingWindowInSeconds is 301.*0 to 300"):
        windowed_pipe(tmp_path, [], 100, 301)


# --- records that cannot be delivered: never a stall, never a drop ----------------------------------

DLQ = "arn:aws:sqs:us-east-1:123456789012:sales-orders-pipe-dlq"


class FakeDeadLetters:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def send(self, message: dict) -> str:
        self.messages.append(json.loads(json.dumps(message)))  # what goes out is plain JSON
        return f"memory://{len(self.messages)}"


def run_pipe(tmp_path: Path, records: list[dict], kinesis: FakeKinesis | None = None,
             **stream_params: object) -> tuple[PipeRunner, FakeKinesis, FakeDeadLetters, list[float]]:
    """One pass over an open shard holding `records`; dead letters and backoff sleeps are captured."""
    kinesis = kinesis or FakeKinesis()
    streams = FakeStreams(STREAM_A, {SHARD: (False, records)})
    params = {"DeadLetterConfig": {"Arn": DLQ}, **stream_params}
    runner = PipeRunner(FakeClients(streams, kinesis), pipe_spec(**params), tmp_path / "pipe.json")
    runner.dead_letters = letters = FakeDeadLetters()
    slept: list[float] = []
    runner.sleep = slept.append
    runner.run_once()
    return runner, kinesis, letters, slept


def modify_of_two_big_binary_images(seq: int) -> dict:
    """NEW_AND_OLD_IMAGES of an item near DynamoDB's 400 KB limit: base64 makes each image ~532 KB."""
    record = stream_record(seq, "o-big", blob={"B": base64.b64encode(b"\x01" * 399_000).decode()})
    record["eventName"] = "MODIFY"
    record["dynamodb"]["OldImage"] = {"order_id": {"S": "o-big"},
                                      "blob": {"B": base64.b64encode(b"\x02" * 399_000).decode()}}
    return record


def test_size_is_measured_on_the_utf8_bytes_sent_so_a_396_kb_item_of_emoji_flows(tmp_path: Path) -> None:
    emoji = stream_record(1, note={"S": "\U0001F600" * 99_000})  # 396 KB in UTF-8, 1.2 MB as \\ud83d\\ude00
    _, kinesis, letters, _ = run_pipe(tmp_path, [emoji, stream_record(2)])
    first = kinesis.put[0]["Data"]
    assert b"\\u" not in first and "\U0001F600".encode() in first  # compact UTF-8, not ASCII escapes
    assert len(first) < 400_000
    assert json.loads(first) == pipe_event(emoji, STREAM_A)
    assert kinesis.sequences() == [f"{1:021d}", f"{2:021d}"] and letters.messages == []


def test_a_record_over_kinesis_s_limit_goes_to_the_dead_letter_with_its_payload_and_the_pipe_goes_on(
        tmp_path: Path) -> None:
    big = modify_of_two_big_binary_images(2)
    runner, kinesis, letters, _ = run_pipe(tmp_path, [stream_record(1), big, stream_record(3)])
    assert kinesis.sequences() == [f"{1:021d}", f"{3:021d}"]
    (letter,) = letters.messages
    assert letter["context"] == {"partnerResourceArn": "arn:aws:pipes:us-east-1:123456789012:pipe/sales-orders-pipe",
                                 "condition": "RetryAttemptsExhausted"}
    info = letter["DDBStreamBatchInfo"]
    assert (info["shardId"], info["streamArn"], info["batchSize"]) == (SHARD, STREAM_A, 1)
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == f"{2:021d}"
    assert letter["errorCode"] == "Kinesis.RecordTooLarge" and "1048576" in letter["errorMessage"]
    assert letter["originalEvents"] == [pipe_event(big, STREAM_A)]
    assert runner.checkpoint.get(SHARD) == f"{3:021d}"  # moved past it: no stall
    assert "dead-letter" in runner.stats.last_error


def test_an_over_long_partition_key_is_never_truncated_it_goes_to_the_dead_letter_naming_the_partition_key(
        tmp_path: Path) -> None:
    long_key = stream_record(1, "o" * 300)
    _, kinesis, letters, _ = run_pipe(tmp_path, [long_key, stream_record(2)])
    assert kinesis.sequences() == [f"{2:021d}"]
    assert all(len(e["PartitionKey"]) <= 256 for e in kinesis.put)
    (letter,) = letters.messages
    assert letter["errorCode"] == "PartitionKey.OutOfRange"
    assert "PartitionKey $.dynamodb.Keys.order_id.S" in letter["errorMessage"] and "300" in letter["errorMessage"]
    assert letter["originalEvents"] == [pipe_event(long_key, STREAM_A)]


def test_a_partition_key_path_missing_from_a_record_dead_letters_that_record_instead_of_stopping_the_pipe(
        tmp_path: Path) -> None:
    kinesis = FakeKinesis()
    streams = FakeStreams(STREAM_A, {SHARD: (False, [stream_record(1), stream_record(2)])})
    spec = pipe_spec(partition_key="$.dynamodb.NewImage.region.S", DeadLetterConfig={"Arn": DLQ})
    runner = PipeRunner(FakeClients(streams, kinesis), spec, tmp_path / "pipe.json")
    runner.dead_letters = letters = FakeDeadLetters()
    runner.run_once()
    assert [m["errorCode"] for m in letters.messages] == ["PartitionKey.NotFound"] * 2
    assert runner.checkpoint.get(SHARD) == f"{2:021d}"


def test_a_static_partition_key_over_256_characters_is_refused_as_create_pipe_refuses_it(tmp_path: Path) -> None:
    streams = FakeStreams(STREAM_A, {SHARD: (False, [])})
    with pytest.raises(TerminalError, match="PartitionKey"):
        PipeRunner(FakeClients(streams, FakeKinesis()), pipe_spec(partition_key="k" * 257), tmp_path / "p.json")


def test_an_entry_kinesis_keeps_refusing_is_retried_with_jittered_backoff_then_dead_lettered(tmp_path: Path) -> None:
    def refuse_two(entry: dict) -> str | None:
        return "ProvisionedThroughputExceededException" if b'"SequenceNumber":"%021d"' % 2 in entry["Data"] else None

    kinesis = FakeKinesis(refuse=refuse_two)
    runner, kinesis, letters, slept = run_pipe(
        tmp_path, [stream_record(i) for i in (1, 2, 3)], kinesis, MaximumRetryAttempts=2)
    assert kinesis.calls == 3  # the first attempt and MaximumRetryAttempts=2 retries, of the refused entry only
    assert len(slept) == 2 and all(0 <= s <= 5.0 for s in slept)
    assert kinesis.sequences() == [f"{1:021d}", f"{3:021d}"]
    (letter,) = letters.messages
    assert letter["context"]["condition"] == "RetryAttemptsExhausted"
    assert letter["errorCode"] == "ProvisionedThroughputExceededException"
    assert letter["DDBStreamBatchInfo"]["startSequenceNumber"] == f"{2:021d}"
    assert runner.checkpoint.get(SHARD) == f"{3:021d}"


def test_unbounded_retries_keep_a_refused_entry_in_the_stream_and_never_dead_letter_it(tmp_path: Path) -> None:
    kinesis = FakeKinesis(refuse=lambda entry: "ProvisionedThroughputExceededException")
    streams = FakeStreams(STREAM_A, {SHARD: (False, [stream_record(1)])})
    runner = PipeRunner(FakeClients(streams, kinesis), pipe_spec(MaximumRetryAttempts=-1), tmp_path / "pipe.json")
    runner.dead_letters = letters = FakeDeadLetters()
    runner.sleep = lambda s: None
    with pytest.raises(TransientError):
        runner.run_once()  # the pass fails and the loop backs off; the next pass re-reads from the checkpoint
    assert letters.messages == [] and runner.checkpoint.get(SHARD) is None


def test_a_call_kinesis_fails_as_a_whole_is_the_pipe_s_own_error_retried_never_dead_lettered(tmp_path: Path) -> None:
    kinesis = FakeKinesis(fail_calls=frozenset({1}))
    streams = FakeStreams(STREAM_A, {SHARD: (False, [stream_record(1)])})
    runner = PipeRunner(FakeClients(streams, kinesis), pipe_spec(MaximumRetryAttempts=0), tmp_path / "pipe.json")
    runner.dead_letters = letters = FakeDeadLetters()
    with pytest.raises(ClientError):
        runner.run_once()
    runner.run_once()
    assert kinesis.sequences() == [f"{1:021d}"] and letters.messages == []


def test_a_record_older_than_maximum_record_age_goes_to_the_dead_letter(tmp_path: Path) -> None:
    old = stream_record(1)
    old["dynamodb"]["ApproximateCreationDateTime"] = time.time() - 7200
    _, kinesis, letters, _ = run_pipe(tmp_path, [old, stream_record(2)], MaximumRecordAgeInSeconds=3600)
    assert kinesis.sequences() == [f"{2:021d}"]
    (letter,) = letters.messages
    assert (letter["context"]["condition"], letter["errorCode"]) == ("RecordAgeExceeded", "RecordAgeExceeded")
    assert letter["originalEvents"] == [pipe_event(old, STREAM_A)]


def test_the_dead_letter_message_is_aws_s_shape_plus_the_reason_and_the_original_events() -> None:
    record = stream_record(7)
    record["dynamodb"]["ApproximateCreationDateTime"] = 1795700001.0
    event = pipe_event(record, STREAM_A)
    message = dead_letter_message(
        [record], [event], shard_id=SHARD, stream_arn=STREAM_A,
        pipe_arn="arn:aws:pipes:us-east-1:123456789012:pipe/p", condition="RetryAttemptsExhausted",
        error_code="Kinesis.RecordTooLarge", error_message="too big",
        now=datetime(2026, 11, 26, 13, 5, 7, 250_000, tzinfo=UTC))
    assert message == {
        "context": {"partnerResourceArn": "arn:aws:pipes:us-east-1:123456789012:pipe/p",
                    "condition": "RetryAttemptsExhausted"},
        "version": "1.0",
        "timestamp": "2026-11-26T13:05:07.250Z",
        "DDBStreamBatchInfo": {
            "shardId": SHARD, "startSequenceNumber": f"{7:021d}", "endSequenceNumber": f"{7:021d}",
            "approximateArrivalOfFirstRecord": "2026-11-26T13:33:21.000Z",
            "approximateArrivalOfLastRecord": "2026-11-26T13:33:21.000Z",
            "batchSize": 1, "streamArn": STREAM_A},
        "errorCode": "Kinesis.RecordTooLarge", "errorMessage": "too big", "originalEvents": [event],
    }
    assert events_to_redrive(message) == [event]
    assert dead_letter_key("errors/", "sales-orders-pipe", datetime(2026, 11, 26, 13, 5, 7, tzinfo=UTC)).startswith(
        "errors/pipe-dead-letter/2026/11/26/13/sales-orders-pipe-2026-11-26-13-05-07-")


def test_an_aws_dead_letter_carries_only_pointers_and_redrive_reads_the_records_back_from_the_stream() -> None:
    record = stream_record(7)
    aws_message = {"context": {"partnerResourceArn": "arn:aws:pipes:us-east-1:123456789012:pipe/p",
                               "condition": "RetryAttemptsExhausted"},
                   "version": "1.0", "timestamp": "2026-11-26T13:05:07.250Z",
                   "DDBStreamBatchInfo": {"shardId": SHARD, "startSequenceNumber": f"{7:021d}",
                                          "endSequenceNumber": f"{7:021d}", "batchSize": 1, "streamArn": STREAM_A,
                                          "approximateArrivalOfFirstRecord": "2026-11-26T13:05:01Z",
                                          "approximateArrivalOfLastRecord": "2026-11-26T13:05:01Z"}}
    asked: list[tuple] = []

    def read_range(stream_arn: str, shard_id: str, first: str, last: str) -> list[dict]:
        asked.append((stream_arn, shard_id, first, last))
        return [record]

    assert events_to_redrive(aws_message, read_range) == [pipe_event(record, STREAM_A)]
    assert asked == [(STREAM_A, SHARD, f"{7:021d}", f"{7:021d}")]
    with pytest.raises(TerminalError, match="24 h"):
        events_to_redrive(aws_message)


class PagedStreams:
    """GetShardIterator / GetRecords of one open shard, served in pages as given (an empty page included)."""

    def __init__(self, pages: list[list[dict]]) -> None:
        self.pages, self.reads = pages, 0

    def get_shard_iterator(self, **_: object) -> dict:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict:
        self.reads += 1
        at = int(ShardIterator)
        page = self.pages[at] if at < len(self.pages) else []
        return {"Records": page, "NextShardIterator": str(at + 1)}


def test_a_dead_letter_s_range_is_read_to_its_last_record_or_not_at_all() -> None:
    """DynamoDB Streams may answer empty pages before a shard's later records: a range read that gave up then
    returned what it had, and the redrive deleted the queue message with the rest of the range unsent."""
    records = [stream_record(n) for n in (1, 2, 3)]
    streams = PagedStreams([[records[0]], [], [records[1], records[2]]])
    assert read_stream_range(streams, STREAM_A, SHARD, f"{1:021d}", f"{2:021d}") == [wire_form(records[0]),
                                                                                       wire_form(records[1])]
    assert streams.reads == 3  # stopped at the range's last record, not at the page after it
    stalled = PagedStreams([[records[0]]])  # nothing more, however often it is read
    with pytest.raises(TransientError, match=rf"read up to {1:021d} of {1:021d}\.\.{3:021d}"):
        read_stream_range(stalled, STREAM_A, SHARD, f"{1:021d}", f"{3:021d}")


def test_a_call_kinesis_rejects_for_one_record_is_bisected_until_that_record_alone_goes_to_the_dead_letter(
        tmp_path: Path) -> None:
    """AUTOMATIC_BISECT: a PutRecords refused as a whole (ValidationException) is halved until the culprit is alone."""
    class Strict(FakeKinesis):
        def put_records(self, StreamName: str, Records: list[dict]) -> dict:
            if any(b'"o-bad"' in e["Data"] for e in Records):
                self.calls += 1
                error = {"Code": "ValidationException", "Message": "1 validation error detected: Value at 'data'"}
                raise ClientError({"Error": error}, "PutRecords")
            return super().put_records(StreamName, Records)

    records = [stream_record(1), stream_record(2), stream_record(3, "o-bad"), stream_record(4)]
    runner, kinesis, letters, _ = run_pipe(tmp_path, records, Strict())
    assert kinesis.sequences() == [f"{i:021d}" for i in (1, 2, 4)]
    (letter,) = letters.messages
    assert (letter["errorCode"], letter["DDBStreamBatchInfo"]["startSequenceNumber"]) == (
        "ValidationException", f"{3:021d}")
    assert "validation error" in letter["errorMessage"]
    assert runner.checkpoint.get(SHARD) == f"{4:021d}"


class RawKinesis:
    """Clients whose raw_json is Kinesis PutRecords in wire form: base64 data in, JSON answer out."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        self.calls: list[dict] = []

    def raw_json(self, service: str, operation: str, params: dict) -> dict:
        assert (service, operation) == ("kinesis", "PutRecords")
        self.calls.append(params)
        if self.errors:
            raise self.errors.pop(0)
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": str(i), "ShardId": "shardId-000000000000"}
                                                     for i, _ in enumerate(params["Records"])]}


def _refused(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutRecords")


def test_raw_put_records_sends_base64_data_and_retries_what_botocore_would() -> None:
    entry = kinesis_entry(pipe_event(stream_record(1, "ö-😀"), STREAM_A), "$.dynamodb.Keys.order_id.S")
    raw = RawKinesis([_refused("ProvisionedThroughputExceededException", 400), _refused("InternalFailure", 500)])
    answer = raw_put_records(raw, "cdc", [entry], sleep=lambda s: None)
    assert answer["FailedRecordCount"] == 0 and len(raw.calls) == 3
    (sent,) = raw.calls[-1]["Records"]
    assert raw.calls[-1]["StreamName"] == "cdc"
    assert base64.b64decode(sent["Data"]) == entry["Data"] and sent["PartitionKey"] == "ö-😀"


def test_raw_put_records_raises_a_call_refused_for_its_content_at_once() -> None:
    """The runner bisects such a call (AUTOMATIC_BISECT): it must see the refusal, not retries of it."""
    raw = RawKinesis([_refused("ValidationException", 400)])
    with pytest.raises(ClientError, match="ValidationException"):
        raw_put_records(raw, "cdc", [], sleep=lambda s: None)
    assert len(raw.calls) == 1
