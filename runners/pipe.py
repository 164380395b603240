"""Pipe runner: DynamoDB Streams -> Kinesis, as an EventBridge Pipe with a DynamoDB source delivers.

Reads every shard through the public Streams API (DescribeStream, GetShardIterator, GetRecords),
parents before children (shard lineage; the reader both runners share, runners/shards.py), sends
each stream record as the JSON event a Pipe delivers, partitioned by the configured JSON path so one
order's changes share a Kinesis shard, and checkpoints per shard after each batch is delivered
(at-least-once, like the Pipe).
Checkpoints are kept per (stream ARN, shard): a re-created table's stream has a new ARN but may reuse
the old shard ids (the emulator does). A closed shard counts as finished (its children may start) only
once every record of its last page is in Kinesis and checkpointed; a shard with no checkpoint yet starts
at StartingPosition only on the pipe's first start, later (a child shard, a checkpoint file that was
unreadable) at TRIM_HORIZON, which can repeat records but never skip one.
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-dynamodb.html
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.KCLAdapter.html (lineage)
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html

Delivery follows the stream-source settings of the CreatePipe request
(https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_PipeSourceDynamoDBStreamParameters.html):
- Each event is sent as compact UTF-8 JSON, and its size is measured on those very bytes (plus the
  partition key) against Kinesis's 1 MiB record limit: a 396 KB item of emoji is 396 KB, not the
  1.2 MB its ASCII escapes would weigh.
- An entry PutRecords refuses is retried alone, with jittered backoff, up to MaximumRetryAttempts
  (-1: without limit; the pass then fails after a few attempts and re-reads from the checkpoint).
  A call that fails as a whole (endpoint gone, permissions, a throttled call) is the pipe's own
  ("internal") error: retried without limit and never dead-lettered, as AWS does
  (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-error-troubleshooting.html).
- A batch goes when it holds BatchSize records, or once MaximumBatchingWindowInSeconds has passed since its
  first record was read (0: what each read finds), or when a closed shard is read to its end. What waits
  is held in memory and not checkpointed, so a failed pass or a restart reads it again.
- A record older than MaximumRecordAgeInSeconds is not sent (condition RecordAgeExceeded).
- A record no retry can deliver is not retried: over 1 MiB as sent, or a PartitionKey path that is
  missing from it or yields a key outside Kinesis's 1..256 characters (Kinesis refuses such a key
  and the pipe never truncates one; CreatePipe itself refuses a PartitionKey over 256 characters).
  AWS would retry it to MaximumRetryAttempts and report RetryAttemptsExhausted; this runner reports
  the same condition without the futile retries.
- OnPartialBatchItemFailure AUTOMATIC_BISECT halves a failing batch until the failing record is
  alone. PutRecords reports each entry's outcome, so the runner retries exactly the failing entries,
  which is where bisection ends; a call Kinesis refuses as a whole for its content (ValidationException,
  InvalidArgumentException: a limit measured otherwise than here) is halved until the record at fault is
  alone, and that record alone is dead-lettered.
Each undeliverable record goes to the dead-letter destination, one message per record with its own
reason, and the checkpoint then moves past it: the pipe never stalls on a record and never drops one.
The spec's LogConfiguration (Level ERROR to a log group) is played by the runner's log file
(<state>/runners/pipe.log), where each dead letter is one ERROR line.

Dead letters. For a stream source AWS sends them to the SQS queue or SNS topic named by
DeadLetterConfig (https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_DeadLetterConfig.html),
and the message carries pointers into the stream, not the record. The EventBridge guide does not print
the message; this is the shape Pipes users report, whose DDBStreamBatchInfo is the one Lambda documents
for stream sources (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html):

    {"context": {"partnerResourceArn": "arn:aws:pipes:REGION:ACCOUNT:pipe/NAME",
                 "condition": "RetryAttemptsExhausted" | "RecordAgeExceeded"},
     "version": "1.0", "timestamp": "2026-11-26T13:05:07.250Z",
     "DDBStreamBatchInfo": {"shardId": ..., "startSequenceNumber": ..., "endSequenceNumber": ...,
                            "approximateArrivalOfFirstRecord": ..., "approximateArrivalOfLastRecord": ...,
                            "batchSize": 1, "streamArn": ...}}

Locally (a deviation) the runner writes that message, field for field, as a JSON object in the lake
bucket under `<ERROR_PREFIX>pipe-dead-letter/YYYY/MM/dd/HH/<pipe>-<time>-<uuid>.json`, beside Firehose's
error output, and adds three fields AWS does not send: `errorCode` and `errorMessage` (the record's own
reason) and `originalEvents` (the events exactly as they would have been put), so a redrive still works
after the stream's 24 h retention, or after an emulator restart that empties the stream. Not the SQS
queue the spec names (the plan creates it on every target, so `make plan` is the same everywhere, but
locally nothing sends to it): an SQS message is capped at 1 MiB, so the records that most need a dead
letter (over Kinesis's 1 MiB) could not carry their payload; Lambda's S3 on-failure destination keeps
the payload beside the metadata in the same way. `dead_letter_message` builds a message;
`events_to_redrive` turns one (local, or AWS's pointers read back from the stream with
`read_stream_range`) into the events to put again, and `kinesis_entry` into their PutRecords entries;
`read_dead_letters` lists the local ones.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from common.aws import Clients
from common.errors import TerminalError, TransientError
from common.retry import Backoff, error_code, retry_as_sdk
from runners.checkpoint import Checkpoint
from runners.loop import Stats, log
from runners.shards import DYNAMODB_STREAMS_GET_LIMIT as GET_RECORDS_LIMIT
from runners.shards import STREAMS_READS_PER_SHARD_S as STREAMS_READS_PER_SHARD_S  # bench reads it from here
from runners.shards import DynamoDBStreamsApi, ReadsShards, Shard, ShardReader

PUT_RECORDS_MAX = 500  # Kinesis PutRecords: at most 500 records ...
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024  # ... and 5 MiB per call, partition keys included
KINESIS_RECORD_MAX_BYTES = 1024 * 1024  # per record; counted here with its partition key, to be safe
PARTITION_KEY_MAX_CHARS = 256  # Kinesis: 1 to 256 Unicode characters
BATCHING_WINDOW_MAX_S = 300  # MaximumBatchingWindowInSeconds: 0 to 300
UNBOUNDED_ATTEMPTS_PER_PASS = 8  # MaximumRetryAttempts -1: then the pass fails and re-reads from the checkpoint
PUT_BACKOFF = Backoff(base_s=0.1, cap_s=5.0)  # between attempts of the entries a PutRecords refused
# A PutRecords refused as a whole because of what it carries: bisected down to the record at fault.
REFUSED_CALL_CODES = frozenset({"ValidationException", "InvalidArgumentException"})

RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
DEAD_LETTER_OUTPUT = "pipe-dead-letter"  # under the lake's ERROR_PREFIX, beside Firehose's error outputs

T = TypeVar("T")


@dataclass
class _Held:
    records: list[dict[str, Any]]
    since: float  # when the first of them was read (the pipe's clock)


class Undeliverable(Exception):
    """Kinesis could never accept this event, however often it is sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class DeadLetters(Protocol):
    def send(self, message: dict[str, Any]) -> str:
        """Store one dead-letter message durably; return where it went."""


def stream_name_from_arn(arn: str) -> str:
    """arn:aws:kinesis:region:acct:stream/NAME -> NAME."""
    return arn.split(":", 5)[5].split("/", 1)[1]


def pipe_arn(source_arn: str, name: str) -> str:
    """The pipe's ARN, in the partition, region and account of its source stream."""
    _, partition, _, region, account, _ = source_arn.split(":", 5)
    return f"arn:{partition}:pipes:{region}:{account}:pipe/{name}"


@functools.lru_cache(maxsize=64)
def _path_parts(path: str) -> tuple[str, ...]:
    return tuple(path[2:].split("."))


def json_path(document: dict[str, Any], path: str) -> str:
    """Evaluate the simple `$.a.b.c` paths a Pipe's PartitionKey accepts."""
    if not path.startswith("$."):
        return path  # a static partition key
    value: Any = document
    for part in _path_parts(path):
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


def encode_event(event: dict[str, Any]) -> bytes:
    """The bytes put into Kinesis: compact JSON in UTF-8 (no ASCII escapes, which triple astral characters).

    orjson writes the same bytes as json.dumps(ensure_ascii=False, separators=(",", ":")) for a stream
    record (tests/unit/runners/test_pipe.py), in a fifth of the time: this was the pipe runner's largest cost.
    """
    return orjson.dumps(event)


def raw_put_records(clients: Any, stream: str, entries: list[dict[str, Any]],
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """PutRecords as JSON through `Clients.raw_json`: the answer as boto3 gives it, without boto3's walk.

    Why: botocore validates, base64-encodes and serializes each entry against the service model and
    parses each of up to 500 answers the same way, about a third of the pipe runner's CPU; here the
    data is base64-encoded in C and the answer is read by orjson. A whole call that fails transiently is
    retried as botocore's standard mode would; any other error is raised as the ClientError it was.
    """
    params = {"StreamName": stream, "Records": [
        {"Data": base64.b64encode(e["Data"]).decode("ascii"), "PartitionKey": e["PartitionKey"]} for e in entries]}
    return retry_as_sdk(lambda: clients.raw_json("kinesis", "PutRecords", params), sleep=sleep)


def kinesis_entry(event: dict[str, Any], partition_path: str) -> dict[str, Any]:
    """The PutRecords entry for one event, measured as sent; Undeliverable if Kinesis could never take it."""
    try:
        key = json_path(event, partition_path)
    except TerminalError as exc:
        raise Undeliverable("PartitionKey.NotFound", str(exc)) from None
    if not 1 <= len(key) <= PARTITION_KEY_MAX_CHARS:
        raise Undeliverable(
            "PartitionKey.OutOfRange",
            f"PartitionKey {partition_path} yields a key of {len(key)} characters; Kinesis takes 1 to "
            f"{PARTITION_KEY_MAX_CHARS}, and the pipe sends the record elsewhere rather than truncate its key")
    data = encode_event(event)
    size = len(data) + len(key.encode("utf-8"))
    if size > KINESIS_RECORD_MAX_BYTES:
        raise Undeliverable(
            "Kinesis.RecordTooLarge",
            f"the event is {size} bytes as sent (UTF-8 JSON and partition key), over Kinesis's "
            f"{KINESIS_RECORD_MAX_BYTES}-byte record limit")
    return {"Data": data, "PartitionKey": key}


def _as_entry(item: Any) -> dict[str, Any]:
    return item


def chunk_entries(items: list[T], entry: Callable[[T], dict[str, Any]] = _as_entry) -> Iterable[list[T]]:
    """Split PutRecords entries (or items holding one) by Kinesis's per-call limits (500 records, 5 MiB)."""
    batch: list[T] = []
    size = 0
    for item in items:
        e = entry(item)
        item_size = len(e["Data"]) + len(e["PartitionKey"].encode("utf-8"))
        if batch and (len(batch) == PUT_RECORDS_MAX or size + item_size > PUT_RECORDS_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


# -- dead letters -------------------------------------------------------------------------------------

def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _arrival(record: dict[str, Any]) -> str:
    return _iso(datetime.fromtimestamp(float(record["dynamodb"]["ApproximateCreationDateTime"]), UTC))


def dead_letter_message(
    records: list[dict[str, Any]], events: list[dict[str, Any]], *, shard_id: str, stream_arn: str,
    pipe_arn: str, condition: str, error_code: str, error_message: str, now: datetime,
) -> dict[str, Any]:
    """The dead letter for consecutive records of one shard: AWS's message, plus this runner's three fields."""
    return {
        "context": {"partnerResourceArn": pipe_arn, "condition": condition},
        "version": "1.0",
        "timestamp": _iso(now),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _arrival(records[0]),
            "approximateArrivalOfLastRecord": _arrival(records[-1]),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
        # Not in AWS's message (see the module docstring): the reason, and the events themselves.
        "errorCode": error_code,
        "errorMessage": error_message,
        "originalEvents": events,
    }


ReadRange = Callable[[str, str, str, str], list[dict[str, Any]]]


def events_to_redrive(message: dict[str, Any], read_range: ReadRange | None = None) -> list[dict[str, Any]]:
    """The pipe events a dead letter stands for, ready to be put into the target again.

    A local dead letter carries them (`originalEvents`). AWS's carries only pointers: pass
    `read_range(stream_arn, shard_id, first_seq, last_seq)` (e.g. `read_stream_range` bound to a
    Streams client) to read the records back while the stream still holds them (24 h).
    """
    if "originalEvents" in message:
        return list(message["originalEvents"])
    info = message.get("DDBStreamBatchInfo")
    if not isinstance(info, dict):
        raise TerminalError("not a pipe dead letter of a DynamoDB stream source: it has no DDBStreamBatchInfo")
    if read_range is None:
        raise TerminalError(
            f"this dead letter only points at records {info['startSequenceNumber']}..{info['endSequenceNumber']} of "
            f"shard {info['shardId']}: read them from the stream within its 24 h retention (pass read_range)")
    records = read_range(info["streamArn"], info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"])
    return [pipe_event(record, info["streamArn"]) for record in records]


def read_stream_range(streams: Any, stream_arn: str, shard_id: str, first: str, last: str,
                      max_empty_pages: int = 5) -> list[dict[str, Any]]:
    """The records first..last (inclusive) of one shard, in wire form, from a DynamoDB Streams client.

    All of them or an error: DynamoDB Streams may answer empty pages before later records, so a read that
    has not reached `last` after `max_empty_pages` empty pages (or at the shard's end) raises, and the dead
    letter that points at the range stays for the next redrive rather than be replayed in part.
    """
    try:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id,
                                              ShardIteratorType="AT_SEQUENCE_NUMBER",
                                              SequenceNumber=first)["ShardIterator"]
    except ClientError as exc:
        if error_code(exc) in ("TrimmedDataAccessException", "ResourceNotFoundException"):
            raise TerminalError(f"shard {shard_id} no longer holds record {first} ({error_code(exc)}): the "
                                "stream's 24 h retention has passed, or the stream is gone") from exc
        raise
    found: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < max_empty_pages:
        page = streams.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
        records = [wire_form(r) for r in page.get("Records", [])]
        empty = 0 if records else empty + 1
        for record in records:
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence > int(last):
                return found
            found.append(record)
            if sequence == int(last):
                return found
        iterator = page.get("NextShardIterator")
    reached = found[-1]["dynamodb"]["SequenceNumber"] if found else "nothing"
    why = "the shard ended" if not iterator else f"{max_empty_pages} empty pages in a row"
    raise TransientError(f"shard {shard_id}: read up to {reached} of {first}..{last} ({why}); the dead letter "
                         "stays, run `make redrive` again")


def dead_letter_prefix(error_prefix: str) -> str:
    return f"{error_prefix}{DEAD_LETTER_OUTPUT}/"


def dead_letter_key(error_prefix: str, pipe_name: str, when: datetime) -> str:
    """errors/pipe-dead-letter/YYYY/MM/dd/HH/<pipe>-<YYYY-MM-dd-HH-mm-ss>-<uuid>.json (UTC), named as Firehose names."""
    when = when.astimezone(UTC)
    return (f"{dead_letter_prefix(error_prefix)}{when:%Y/%m/%d/%H}/"
            f"{pipe_name}-{when:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.json")


class S3DeadLetters:
    """The local dead-letter destination: one JSON object per message in the lake bucket."""

    def __init__(self, s3: Any, bucket: str, error_prefix: str, pipe_name: str) -> None:
        self.s3, self.bucket, self.error_prefix, self.pipe_name = s3, bucket, error_prefix, pipe_name

    def send(self, message: dict[str, Any]) -> str:
        when = datetime.strptime(message["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        key = dead_letter_key(self.error_prefix, self.pipe_name, when)
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return f"s3://{self.bucket}/{key}"


def read_dead_letters(s3: Any, bucket: str, error_prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every local dead letter, oldest hour first: (object key, message)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=dead_letter_prefix(error_prefix)):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            yield obj["Key"], json.loads(body)


@dataclass(frozen=True)
class _Failed:
    record: dict[str, Any]
    event: dict[str, Any]
    condition: str
    code: str
    message: str


class PipeRunner(ReadsShards):
    """Moves stream records of one DynamoDB stream into one Kinesis stream, from a CreatePipe request."""

    name = "pipe"

    def __init__(self, clients: Clients, spec: dict[str, Any], checkpoint_path: Path) -> None:
        self.clients = clients
        self.streams = clients.client("dynamodbstreams")
        self.kinesis = clients.kinesis
        self.source_arn: str = spec["Source"]
        self.target = stream_name_from_arn(spec["Target"])
        self.pipe_name: str = spec.get("Name", "pipe")
        self.pipe_arn = pipe_arn(self.source_arn, self.pipe_name)
        source_params = spec.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        self.starting_position = source_params.get("StartingPosition", "TRIM_HORIZON")
        self.batch_size = int(source_params.get("BatchSize", 100))
        if not 1 <= self.batch_size <= PUT_RECORDS_MAX:  # refused as CreatePipe refuses it, never clamped
            raise TerminalError(f"the pipe's BatchSize is {self.batch_size}; CreatePipe with a Kinesis target takes "
                                f"at most {PUT_RECORDS_MAX} (eb-pipes-batching-concurrency.html): set PIPE_BATCH_SIZE "
                                f"to 1-{PUT_RECORDS_MAX} and run `make up`")
        self.batching_window_s = int(source_params.get("MaximumBatchingWindowInSeconds", 0))
        if not 0 <= self.batching_window_s <= BATCHING_WINDOW_MAX_S:
            raise TerminalError(f"the pipe's MaximumBatchingWindowInSeconds is {self.batching_window_s}; CreatePipe "
                                f"takes 0 to {BATCHING_WINDOW_MAX_S}: set PIPE_BATCHING_WINDOW_S in that range and "
                                "run `make up`")
        self.max_retries = int(source_params.get("MaximumRetryAttempts", -1))
        self.max_record_age_s = int(source_params.get("MaximumRecordAgeInSeconds", -1))
        self.dead_letter_arn: str = source_params.get("DeadLetterConfig", {}).get("Arn", "")
        self.partition_path = spec["TargetParameters"]["KinesisStreamParameters"]["PartitionKey"]
        if len(self.partition_path) > PARTITION_KEY_MAX_CHARS:
            raise TerminalError(f"the pipe's PartitionKey is {len(self.partition_path)} characters; CreatePipe takes "
                                f"at most {PARTITION_KEY_MAX_CHARS}: shorten it")
        if not self.dead_letter_arn:
            log.warning("pipe: the spec has no DeadLetterConfig; records that cannot be delivered still go to the "
                        "local dead-letter prefix, but AWS would discard them")
        self.stats = Stats()
        self.api = DynamoDBStreamsApi(self.streams, self.source_arn)
        self.checkpoint = Checkpoint(checkpoint_path, scope=self.api.scope)
        self.reader = ShardReader(self.api, clients.raw_json, self.checkpoint, self.stats, name=self.name,
                                  start_at=self._start_at, lineage=True)
        self.held: dict[str, _Held] = {}  # per shard: read, not yet sent, waiting out the batching window
        self.dead_letters: DeadLetters | None = None  # built on first use (tests set their own)
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.time

    # -- reading (runners/shards.py; discovered, pacer, shards and ready_in come from ReadsShards) --

    def _start_at(self, shard_id: str) -> tuple[str, str | None]:
        """StartingPosition is where a new pipe starts; a shard found later is read from its start."""
        return ("TRIM_HORIZON" if self.checkpoint.started else self.starting_position), None

    # -- writing ---------------------------------------------------------------------------------
    def _deliver(self, shard_id: str, batch: list[dict[str, Any]]) -> int:
        """Put a batch into Kinesis; what cannot be delivered goes to the dead letter. Returns how many were put."""
        now = self.clock()
        pending: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        failed: list[_Failed] = []
        for record in batch:
            event = pipe_event(record, self.source_arn)
            age = now - float(record["dynamodb"].get("ApproximateCreationDateTime", now))
            if self.max_record_age_s >= 0 and age > self.max_record_age_s:
                failed.append(_Failed(record, event, RECORD_AGE_EXCEEDED, RECORD_AGE_EXCEEDED,
                                      f"the record is {age:.0f} s old, over MaximumRecordAgeInSeconds="
                                      f"{self.max_record_age_s}"))
                continue
            try:
                pending.append((record, event, kinesis_entry(event, self.partition_path)))
            except Undeliverable as exc:
                failed.append(_Failed(record, event, RETRY_ATTEMPTS_EXHAUSTED, exc.code, exc.message))
        for (record, event, _), code, message in self._put(pending):
            failed.append(_Failed(record, event, RETRY_ATTEMPTS_EXHAUSTED, code, message))
        for failure in sorted(failed, key=lambda f: int(f.record["dynamodb"]["SequenceNumber"])):
            self._dead_letter(shard_id, failure)
        return len(batch) - len(failed)

    def _put(self, pending: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]) -> list[tuple[Any, str, str]]:
        """PutRecords in Kinesis-sized calls. Returns the items given up on, with Kinesis's code and message."""
        given_up: list[tuple[Any, str, str]] = []
        for batch in chunk_entries(pending, lambda item: item[2]):
            given_up += self._put_call(batch)
        return given_up

    def _put_call(self, todo: list[Any]) -> list[tuple[Any, str, str]]:
        """One PutRecords; an entry Kinesis refuses is retried alone with jittered backoff, up to
        MaximumRetryAttempts. A call refused as a whole for its content (one record Kinesis will not
        take) is halved until that record is alone (AUTOMATIC_BISECT); any other failed call is raised."""
        for attempt in itertools.count():
            try:
                resp = self._put_records([item[2] for item in todo])
            except ClientError as exc:
                if error_code(exc) not in REFUSED_CALL_CODES:
                    raise
                if len(todo) == 1:
                    return [(todo[0], error_code(exc), str(exc.response["Error"].get("Message", exc)))]
                half = len(todo) // 2
                return self._put_call(todo[:half]) + self._put_call(todo[half:])
            if not resp.get("FailedRecordCount"):
                return []
            refused = [(item, r) for item, r in zip(todo, resp["Records"], strict=True) if "ErrorCode" in r]
            if 0 <= self.max_retries <= attempt:
                return [(item, r["ErrorCode"], f"{r.get('ErrorMessage', '')} (refused {attempt + 1} times; "
                         f"MaximumRetryAttempts={self.max_retries})") for item, r in refused]
            if self.max_retries < 0 and attempt + 1 >= UNBOUNDED_ATTEMPTS_PER_PASS:
                raise TransientError(f"{len(refused)} records still refused by Kinesis after {attempt + 1} "
                                     "attempts (MaximumRetryAttempts -1: they wait in the stream)")
            self.sleep(PUT_BACKOFF.delay(attempt))
            todo = [item for item, _ in refused]
        raise AssertionError("unreachable")

    def _put_records(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Through the raw path when the Kinesis client is botocore's own, else through the client as given
        (a test's stand-in), so both see the same calls."""
        if isinstance(self.kinesis, BaseClient):
            return raw_put_records(self.clients, self.target, entries, self.sleep)
        return self.kinesis.put_records(StreamName=self.target, Records=entries)

    def _dead_letter_destination(self) -> DeadLetters:
        if self.dead_letters is None:
            settings = self.clients.settings
            bucket = settings.lake_bucket_for(self.clients.account_id)
            self.dead_letters = S3DeadLetters(self.clients.s3, bucket, settings.error_prefix, self.pipe_name)
        return self.dead_letters

    def _dead_letter(self, shard_id: str, failure: _Failed) -> None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        message = dead_letter_message(
            [failure.record], [failure.event], shard_id=shard_id, stream_arn=self.source_arn, pipe_arn=self.pipe_arn,
            condition=failure.condition, error_code=failure.code, error_message=failure.message, now=now)
        where = self._dead_letter_destination().send(message)
        seq = failure.record["dynamodb"]["SequenceNumber"]
        self.stats.errors += 1
        self.stats.dead_letters += 1
        self.stats.last_error = (f"shard {shard_id} record {seq} went to the dead-letter destination {where}: "
                                 f"{failure.code}: {failure.message}")[:500]
        log.error("pipe: %s", self.stats.last_error)

    def run_once(self) -> bool:
        moved = 0
        try:
            for shard in self.reader.readable():
                moved += self._move(shard)
        except Exception:
            self.reader.rewind()  # what was read past the checkpoint is read again: at-least-once, never a gap
            self.held.clear()  # held records are past the checkpoint too
            raise
        self.stats.pending = sum(len(h.records) for h in self.held.values())  # `make status`; a drain waits
        return moved == 0 and not self.held

    def _move(self, shard: Shard) -> int:
        """Read a page; send every full batch, and the rest too once the batching window is over (or the
        shard is closed and read to its end). What waits is held, not checkpointed. Returns records read."""
        page = self.reader.read(shard.shard_id)
        now = self.clock()
        held = self.held.pop(shard.shard_id, None)
        records = held.records + page.records if held else page.records
        since = held.since if held else now
        due = page.ended or now - since >= self.batching_window_s
        sending = len(records) if due else len(records) - len(records) % self.batch_size
        if sending < len(records):  # a held remainder is younger than any record sent before it
            self.held[shard.shard_id] = _Held(records[sending:], since if sending == 0 else now)
        for start in range(0, sending, self.batch_size):
            batch = records[start:min(start + self.batch_size, sending)]
            delivered = self._deliver(shard.shard_id, batch)
            last = batch[-1]["dynamodb"]["SequenceNumber"]
            self.checkpoint.advance(shard.shard_id, last)
            self.stats.position[shard.shard_id] = last
            self.checkpoint.save()
            self.stats.records_in += len(batch)
            self.stats.records_out += delivered
        if page.ended:  # a closed shard read to its end, its last page in Kinesis: only now may its children start
            self.reader.finish(shard.shard_id)
        return len(page.records)

    def close(self) -> None:
        self.checkpoint.save()
