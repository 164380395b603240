"""The shard reader both runners share, against one in-memory stream served through each API's adapter:
DynamoDB Streams (DescribeStream pages, SequenceNumber) and Kinesis (ListShards pages, StartingSequenceNumber)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from common.errors import TransientError
from runners.checkpoint import Checkpoint
from runners.loop import Stats
from runners.shards import (
    GET_RECORDS_ATTEMPTS,
    DynamoDBStreamsApi,
    KinesisStreamApi,
    Shard,
    ShardReader,
    order_shards,
)

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-12-01T00:00:00.000"


def error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


class Stream:
    """One stream in memory, spoken to in either API's words. A shard is (parent, closed, sequence numbers);
    iterators are "<shard>|<index>"; `faults` holds errors the next GetRecords calls raise, in order."""

    def __init__(self, api: str, shards: dict[str, tuple[str | None, bool, list[int]]], page_size: int = 1) -> None:
        self.api, self.shards, self.page_size = api, shards, page_size
        self.faults: list[Exception] = []
        self.iterator_calls: list[dict[str, Any]] = []
        self.listings = 0
        self.trimmed_before: dict[str, int] = {}  # shard -> oldest sequence number still held

    # -- discovery, one shard per page so both paginations are exercised
    def _shard(self, sid: str) -> dict[str, Any]:
        parent, closed, _ = self.shards[sid]
        seq_range = {"StartingSequenceNumber": "1", **({"EndingSequenceNumber": "999"} if closed else {})}
        return {"ShardId": sid, **({"ParentShardId": parent} if parent else {}), "SequenceNumberRange": seq_range}

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict:
        assert self.api == "dynamodbstreams" and StreamArn == ARN
        ids = list(self.shards)
        at = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        self.listings += at == 0
        more = {"LastEvaluatedShardId": ids[at]} if at + 1 < len(ids) else {}
        return {"StreamDescription": {"Shards": [self._shard(ids[at])], **more}}

    def list_shards(self, StreamName: str | None = None, NextToken: str | None = None) -> dict:
        assert self.api == "kinesis" and (StreamName == "cdc" or NextToken)
        ids = list(self.shards)
        at = int(NextToken) if NextToken else 0
        self.listings += at == 0
        more = {"NextToken": str(at + 1)} if at + 1 < len(ids) else {}
        return {"Shards": [self._shard(ids[at])], **more}

    # -- reading
    def get_shard_iterator(self, ShardId: str, ShardIteratorType: str, **kwargs: str) -> dict:
        self.iterator_calls.append({"ShardId": ShardId, "ShardIteratorType": ShardIteratorType, **kwargs})
        name = "SequenceNumber" if self.api == "dynamodbstreams" else "StartingSequenceNumber"
        assert set(kwargs) <= {"StreamArn", "StreamName", name}
        seqs = self.shards[ShardId][2]
        if ShardIteratorType == "TRIM_HORIZON":
            return {"ShardIterator": f"{ShardId}|0"}
        if ShardIteratorType == "LATEST":
            return {"ShardIterator": f"{ShardId}|{len(seqs)}"}
        after = int(kwargs[name])
        if after < self.trimmed_before.get(ShardId, 0) - 1:
            raise error("TrimmedDataAccessException", "GetShardIterator")
        return {"ShardIterator": f"{ShardId}|{sum(1 for s in seqs if s <= after)}"}

    def raw_json(self, service: str, operation: str, params: dict) -> dict:
        assert (service, operation) == (self.api, "GetRecords")
        if self.faults:
            raise self.faults.pop(0)
        shard, at = params["ShardIterator"].split("|")
        _, closed, seqs = self.shards[shard]
        page = seqs[int(at):int(at) + min(self.page_size, params["Limit"])]
        end = int(at) + len(page)
        records = [self.record(s) for s in page]
        more = not closed or end < len(seqs)
        return {"Records": records, **({"NextShardIterator": f"{shard}|{end}"} if more else {}),
                **({"MillisBehindLatest": 0} if self.api == "kinesis" else {})}

    def record(self, seq: int) -> dict:
        if self.api == "kinesis":
            return {"SequenceNumber": str(seq), "Data": "e30=", "PartitionKey": "k"}
        return {"eventID": str(seq), "dynamodb": {"SequenceNumber": str(seq)}}

    def sequence(self, record: dict) -> int:
        return int(record["SequenceNumber"] if self.api == "kinesis" else record["dynamodb"]["SequenceNumber"])


def reader(stream: Stream, tmp_path: Path, *, lineage: bool = True, start: str = "TRIM_HORIZON",
           slept: list[float] | None = None) -> ShardReader:
    api: Any = DynamoDBStreamsApi(stream, ARN) if stream.api == "dynamodbstreams" else KinesisStreamApi(stream, "cdc")
    checkpoint = Checkpoint(tmp_path / "ckpt.json", scope=api.scope)
    return ShardReader(api, stream.raw_json, checkpoint, Stats(), name="test", start_at=lambda _: (start, None),
                       lineage=lineage, sleep=(slept if slept is not None else []).append)


def drain(r: ShardReader, stream: Stream, shard: str, pages: int = 10) -> list[int]:
    """Read `shard` until it ends or is idle, checkpointing each page as a runner would."""
    seen: list[int] = []
    for _ in range(pages):
        page = r.read(shard)
        seen += [stream.sequence(rec) for rec in page.records]
        if page.records:
            r.checkpoint.advance(shard, str(seen[-1]))
        if page.ended:
            r.finish(shard)
            break
        if not page.records:
            break
    return seen


API = pytest.mark.parametrize("api", ["dynamodbstreams", "kinesis"])


@API
def test_every_page_of_shards_is_discovered_with_parents_and_closed_shards(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"a": (None, True, []), "b": ("a", False, []), "c": (None, False, [])})
    assert reader(stream, tmp_path).shards() == [Shard("a", None, True), Shard("b", "a", False),
                                                 Shard("c", None, False)]


@API
def test_a_child_is_read_only_once_its_parent_is_read_to_its_end_and_finished(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"parent": (None, True, [1, 2]), "child": ("parent", False, [3])})
    r = reader(stream, tmp_path)
    assert [s.shard_id for s in r.readable()] == ["parent"]
    assert drain(r, stream, "parent") == [1, 2]
    assert r.checkpoint.finished == {"parent"}
    assert Checkpoint(tmp_path / "ckpt.json", scope=r.api.scope).finished == {"parent"}  # saved: a restart knows
    assert [s.shard_id for s in r.readable()] == ["child"]
    assert drain(r, stream, "child") == [3]


@API
def test_without_lineage_children_are_read_alongside_their_parents(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"parent": (None, True, [1]), "child": ("parent", False, [2])})
    assert [s.shard_id for s in reader(stream, tmp_path, lineage=False).readable()] == ["parent", "child"]


def test_a_parent_no_longer_listed_does_not_hold_its_child_back() -> None:
    assert order_shards([Shard("child", "expired-parent")], finished=set()) == [Shard("child", "expired-parent")]


@API
def test_a_shard_resumes_after_its_checkpoint_in_each_api_s_own_words(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [1, 2, 3])})
    first = reader(stream, tmp_path)
    assert drain(first, stream, "s", pages=2) == [1, 2]
    first.checkpoint.save()

    again = reader(stream, tmp_path, start="LATEST")  # a restart: the checkpoint wins over the start position
    assert drain(again, stream, "s") == [3]
    name = "SequenceNumber" if api == "dynamodbstreams" else "StartingSequenceNumber"
    assert stream.iterator_calls[-1]["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert stream.iterator_calls[-1][name] == "2"


@API
def test_a_shard_without_a_checkpoint_starts_where_the_runner_says(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [1, 2])})
    r = reader(stream, tmp_path, start="LATEST")
    assert drain(r, stream, "s") == []
    stream.shards["s"][2].append(3)
    assert drain(r, stream, "s") == [3]


@API
def test_a_checkpoint_the_stream_no_longer_holds_is_a_data_loss_notice_then_trim_horizon(
        api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [5, 6])})
    stream.trimmed_before["s"] = 5
    r = reader(stream, tmp_path)
    r.checkpoint.advance("s", "2")  # records 3 and 4 are gone
    assert drain(r, stream, "s") == [5, 6]
    (notice,) = r.stats.data_loss
    assert "shard s" in notice and "checkpoint 2" in notice and "make verify" in notice
    assert r.stats.errors == 1


@API
def test_an_expired_iterator_fails_the_pass_and_the_shard_reopens_from_its_checkpoint(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [1, 2, 3])})
    r = reader(stream, tmp_path)
    assert drain(r, stream, "s", pages=1) == [1]
    listings = stream.listings
    stream.faults = [error("ExpiredIteratorException", "GetRecords")]
    with pytest.raises(TransientError, match="shard s: ExpiredIteratorException; reopening from the checkpoint"):
        r.read("s")
    r.shards()
    assert stream.listings == listings + 1  # the shards are listed again
    assert drain(r, stream, "s") == [2, 3]  # from the checkpoint (1), not from the dropped iterator
    assert stream.iterator_calls[-1]["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"


@API
def test_a_vanished_shard_is_transient_the_stream_listing_decides_what_is_gone(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [1])})
    r = reader(stream, tmp_path)
    stream.faults = [error("ResourceNotFoundException", "GetRecords")]
    with pytest.raises(TransientError, match="vanished"):
        r.read("s")


@API
def test_throttled_reads_are_retried_a_few_times_with_backoff_and_then_fail_the_pass(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [1])})
    slept: list[float] = []
    r = reader(stream, tmp_path, slept=slept)
    throttled = "ProvisionedThroughputExceededException" if api == "kinesis" else "LimitExceededException"
    stream.faults = [error(throttled, "GetRecords")] * 2
    assert [stream.sequence(rec) for rec in r.read("s").records] == [1]
    assert len(slept) == 2 and all(0 <= s <= 5.0 for s in slept)

    stream.faults = [error(throttled, "GetRecords")] * GET_RECORDS_ATTEMPTS
    with pytest.raises(ClientError):
        r.read("s")
    assert stream.faults == []  # exactly GET_RECORDS_ATTEMPTS calls, no loop nested inside another


@API
def test_a_lost_connection_is_not_retried_on_an_iterator_the_endpoint_may_have_lost(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [1])})
    r = reader(stream, tmp_path)
    stream.faults = [EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), error("Throttling", "GetRecords")]
    with pytest.raises(EndpointConnectionError):
        r.read("s")
    assert len(stream.faults) == 1  # one attempt; the pass fails and rewind() re-opens every shard


@API
def test_rewind_reopens_every_shard_from_its_checkpoint(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, False, [1, 2])})
    r = reader(stream, tmp_path)
    r.read("s")  # read 1, never checkpointed (the pass then failed downstream)
    r.rewind()
    assert drain(r, stream, "s") == [1, 2]  # read again: duplicates possible, a gap is not


@API
def test_reads_are_counted_and_paced_per_shard(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"a": (None, False, [1]), "b": (None, False, [])})
    now = [100.0]
    r = reader(stream, tmp_path)
    r.pacer = type(r.pacer)(r.api.reads_per_shard_s, lambda: now[0])
    assert r.ready_in() == 0.0
    r.read("a")
    r.read("b")
    assert r.stats.reads == {"a": 1, "b": 1}
    assert r.ready_in() == pytest.approx(1 / r.api.reads_per_shard_s)
    now[0] += 1.0
    assert r.ready_in() == 0.0


@API
def test_the_end_of_a_closed_shard_lists_the_shards_again_once(api: str, tmp_path: Path) -> None:
    stream = Stream(api, {"s": (None, True, [1])}, page_size=10)
    r = reader(stream, tmp_path, lineage=False)
    r.shards()
    page = r.read("s")
    assert page.ended and [stream.sequence(rec) for rec in page.records] == [1]
    r.shards()
    assert stream.listings == 2
    if api == "kinesis":
        assert page.millis_behind == 0


@API
def test_a_closed_shard_read_to_its_end_is_not_read_again_until_a_rewind(api: str, tmp_path: Path) -> None:
    """Without lineage (the firehose) nothing finishes a closed shard: its checkpoint lags what the runner still
    buffers, so re-opening it from there on the next pass would read the buffered records a second time."""
    stream = Stream(api, {"closed": (None, True, [1, 2]), "open": (None, False, [3])}, page_size=10)
    r = reader(stream, tmp_path, lineage=False)
    assert r.read("closed").ended  # records 1 and 2 now sit in the runner's buffers; no checkpoint yet
    assert [s.shard_id for s in r.readable()] == ["open"]
    r.rewind()  # a failed pass drops the buffers: the shard is read again from its checkpoint
    assert [s.shard_id for s in r.readable()] == ["closed", "open"]
    assert [stream.sequence(rec) for rec in r.read("closed").records] == [1, 2]
