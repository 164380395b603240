"""Pipe runner: DynamoDB Streams -> Kinesis, as an EventBridge Pipe with a DynamoDB source delivers.

Reads every shard through the public Streams API (DescribeStream, GetShardIterator, GetRecords),
parents before children (shard lineage), sends each stream record as the JSON event a Pipe
delivers, partitioned by the configured JSON path so one order's changes share a Kinesis shard,
and checkpoints per shard after each successful PutRecords (at-least-once, like the Pipe).
Checkpoints are kept per (stream ARN, shard): a re-created table's stream has a new ARN but may reuse
the old shard ids (the emulator does). A closed shard counts as finished (its children may start) only
once every record of its last page is in Kinesis and checkpointed; a shard with no checkpoint yet starts
at StartingPosition only on the pipe's first start, later (a child shard, a checkpoint file that was
unreadable) at TRIM_HORIZON, which can repeat records but never skip one.
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-dynamodb.html
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.KCLAdapter.html (lineage)
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from common.aws import Clients, error_code, retrying
from common.errors import TerminalError, TransientError
from runners.checkpoint import Checkpoint
from runners.loop import Stats, log
from runners.refresh import Refreshing

GET_RECORDS_LIMIT = 1000  # AWS's maximum for DynamoDB Streams GetRecords
PUT_RECORDS_MAX = 500  # Kinesis PutRecords: at most 500 records ...
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024  # ... and 5 MiB per call
KINESIS_RECORD_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parent_id: str | None
    closed: bool


def stream_name_from_arn(arn: str) -> str:
    """arn:aws:kinesis:region:acct:stream/NAME -> NAME."""
    return arn.split(":", 5)[5].split("/", 1)[1]


def json_path(document: dict[str, Any], path: str) -> str:
    """Evaluate the simple `$.a.b.c` paths a Pipe's PartitionKey accepts."""
    if not path.startswith("$."):
        return path  # a static partition key
    value: Any = document
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            raise TerminalError(f"PartitionKey path {path} does not exist in the record; fix the pipe's PartitionKey")
        value = value[part]
    return str(value)


def wire_form(value: Any) -> Any:
    """A record as boto3 parses it, back in AWS's wire form: epoch seconds, base64 binary.

    The runner reads GetRecords raw (already wire form); this serves records that went through boto3.
    """
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: wire_form(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [wire_form(v) for v in value]
    return value


def pipe_event(record: dict[str, Any], source_arn: str) -> dict[str, Any]:
    """The event a Pipe delivers for one stream record in wire form (the record, plus its source ARN)."""
    event = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion"),
        "dynamodb": record["dynamodb"],
        "eventSourceARN": source_arn,
    }
    if "userIdentity" in record:
        event["userIdentity"] = record["userIdentity"]
    return event


def order_shards(shards: Iterable[Shard], finished: set[str]) -> list[Shard]:
    """Shards that may be read now: a child waits until its parent (if still listed) is finished."""
    listed = {s.shard_id for s in shards}
    return [
        s for s in shards
        if s.shard_id not in finished and (s.parent_id is None or s.parent_id not in listed or s.parent_id in finished)
    ]


def chunk_entries(entries: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    """Split PutRecords entries by Kinesis's per-call limits (500 records, 5 MiB)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["Data"]) + len(entry["PartitionKey"])
        if batch and (len(batch) == PUT_RECORDS_MAX or size + entry_size > PUT_RECORDS_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


class PipeRunner:
    """Moves stream records of one DynamoDB stream into one Kinesis stream, from a CreatePipe request."""

    name = "pipe"

    def __init__(self, clients: Clients, spec: dict[str, Any], checkpoint_path: Path) -> None:
        self.clients = clients
        self.streams = clients.client("dynamodbstreams")
        self.kinesis = clients.kinesis
        self.source_arn: str = spec["Source"]
        self.target = stream_name_from_arn(spec["Target"])
        source_params = spec.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        self.starting_position = source_params.get("StartingPosition", "TRIM_HORIZON")
        self.batch_size = min(int(source_params.get("BatchSize", 100)), PUT_RECORDS_MAX)
        self.partition_path = spec["TargetParameters"]["KinesisStreamParameters"]["PartitionKey"]
        self.checkpoint = Checkpoint(checkpoint_path, scope=self.source_arn)
        self.iterators: dict[str, str | None] = {}
        self.discovered = Refreshing(self._describe_shards)
        self.stats = Stats()

    # -- reading ---------------------------------------------------------------------------------
    def shards(self) -> list[Shard]:
        return self.discovered.get()

    def _describe_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamArn": self.source_arn}
        while True:
            desc = self.streams.describe_stream(**kwargs)["StreamDescription"]
            for s in desc.get("Shards", []):
                closed = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                shards.append(Shard(s["ShardId"], s.get("ParentShardId"), closed))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def _iterator(self, shard_id: str) -> str:
        position = self.checkpoint.get(shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.source_arn, "ShardId": shard_id}
        if position:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
        else:  # StartingPosition is where a new pipe starts; a shard found later is read from its start
            kwargs.update(ShardIteratorType="TRIM_HORIZON" if self.checkpoint.started else self.starting_position)
        try:
            return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        except ClientError as exc:
            if error_code(exc) == "TrimmedDataAccessException":
                # Our checkpoint is older than the 24 h retention: say so, then go on from the oldest record.
                self.stats.errors += 1
                self.stats.last_error = (
                    f"shard {shard_id}: the stream no longer holds the records after checkpoint {position} "
                    "(trimmed, or the emulator restarted without them): changes in between are lost; "
                    "run `make verify` to see which orders differ"
                )
                self.stats.data_loss = [*self.stats.data_loss, self.stats.last_error][-5:]
                log.error("pipe: %s", self.stats.last_error)
                kwargs = {"StreamArn": self.source_arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}
                return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
            raise

    def _read(self, shard: Shard) -> tuple[list[dict[str, Any]], bool]:
        """One page of records, and whether it is the last page of a closed shard."""
        if self.iterators.get(shard.shard_id) is None:
            self.iterators[shard.shard_id] = self._iterator(shard.shard_id)
        try:
            resp = retrying(attempts=4, reconnect=False)(self.clients.raw_json)(
                "dynamodbstreams", "GetRecords",
                {"ShardIterator": self.iterators[shard.shard_id], "Limit": GET_RECORDS_LIMIT})
        except ClientError as exc:
            if error_code(exc) in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                self.iterators[shard.shard_id] = None  # re-open from the checkpoint next pass
                raise TransientError(f"shard {shard.shard_id}: {error_code(exc)}, reopening from checkpoint") from exc
            if error_code(exc) == "ResourceNotFoundException":
                self.iterators.pop(shard.shard_id, None)
                raise TransientError(f"shard {shard.shard_id} vanished (stream deleted or re-created?)") from exc
            raise
        next_iterator = resp.get("NextShardIterator")
        self.iterators[shard.shard_id] = next_iterator
        return resp.get("Records", []), next_iterator is None

    # -- writing ---------------------------------------------------------------------------------
    def _entries(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries = []
        for record in records:
            event = pipe_event(record, self.source_arn)
            data = json.dumps(event, separators=(",", ":")).encode()
            if len(data) > KINESIS_RECORD_MAX_BYTES:
                raise TerminalError(
                    f"stream record {record['eventID']} is {len(data)} bytes, over Kinesis's 1 MiB record limit"
                )
            entries.append({"Data": data, "PartitionKey": json_path(event, self.partition_path)[:256]})
        return entries

    def _put(self, entries: list[dict[str, Any]], attempts: int = 8) -> None:
        """PutRecords, retrying only the entries that failed (throttling), with jittered backoff."""
        for batch in chunk_entries(entries):
            pending = batch
            for attempt in range(attempts):
                resp = self.kinesis.put_records(StreamName=self.target, Records=pending)
                if not resp.get("FailedRecordCount"):
                    break
                pending = [e for e, r in zip(pending, resp["Records"], strict=True) if "ErrorCode" in r]
                time.sleep(random.uniform(0, min(5.0, 0.1 * 2**attempt)))
            else:
                raise TransientError(f"{len(pending)} records still refused by Kinesis after {attempts} attempts")

    def run_once(self) -> bool:
        moved = 0
        try:
            for shard in order_shards(self.shards(), self.checkpoint.finished):
                moved += self._move(shard)
        except Exception:
            # Re-open every shard from its checkpoint next pass: what was read past it is read again
            # (at-least-once, never a gap), and an endpoint that came back empty is noticed there.
            self.iterators.clear()
            self.discovered.expire()
            raise
        self.stats.records_in += moved
        self.stats.records_out += moved
        return moved == 0

    def _move(self, shard: Shard) -> int:
        records, ended = self._read(shard)
        for start in range(0, len(records), self.batch_size):
            batch = records[start:start + self.batch_size]
            self._put(self._entries(batch))
            last = batch[-1]["dynamodb"]["SequenceNumber"]
            self.checkpoint.advance(shard.shard_id, last)
            self.stats.position[shard.shard_id] = last
            self.checkpoint.save()
        if ended:  # a closed shard read to its end, its last page in Kinesis: only now may its children start
            self.checkpoint.finish(shard.shard_id)
            self.checkpoint.save()
            self.discovered.expire()
        return len(records)

    def close(self) -> None:
        self.checkpoint.save()
