"""`make redrive`: replay the error output through the pipeline after a fix, idempotently.

Four kinds of error output (runners/error_output.py has their documented shapes), each replayed
where its records left the pipeline:
- `processing-failed` (the transform refused the record, Invoke kept failing, or its partition keys
  were missing) and `activePartitionExceeded` (beyond the stream's active partitions,
  https://docs.aws.amazon.com/firehose/latest/dev/buffering.html): their `rawData` is the original
  Kinesis record, the pipe's event, so it is put into the Kinesis stream again and the firehose runner
  sends it through the (fixed) transform;
- the pipe's dead letters: local ones (`pipe-dead-letter` objects, which carry their events) and, on
  every target, the messages in the SQS queue of the pipe's DeadLetterConfig (AWS's carry only
  pointers: the records are read back from the DynamoDB stream while it holds them, 24 h); their events
  are put into the Kinesis stream as the pipe would have put them, then the message is deleted;
- `format-conversion-failed`: its `rawData` is the transform's output row, which failed conversion;
  it is converted again with today's lake schema and written to the partition its event time names,
  as Firehose's format conversion would have.

Each object is moved under `<error prefix>redriven/` only after all its records were replayed, so a
second run finds nothing, and a crash in between replays an object twice: harmless, since a replayed
row keeps its stream sequence number and the current-state view collapses duplicates. A record that
still cannot be replayed (not a pipe event; still over Kinesis's limits; still failing conversion)
leaves its object where it is, and the result says why.
https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html
https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from common.aws import Clients, error_code
from common.errors import PipelineError, TransientError
from lake.encoding import ConversionError, decode_rows, encode_parquet
from lake.glue_schema import TableSchema
from lake.keys import evaluate_prefix, object_name
from runners.error_output import ACTIVE_PARTITION_EXCEEDED, PROCESSING_FAILED, error_lines
from runners.error_output import FORMAT_CONVERSION_FAILED as CONVERSION_FAILED
from runners.firehose_config import FirehoseConfig
from runners.pipe import (
    DEAD_LETTER_OUTPUT,
    Undeliverable,
    chunk_entries,
    events_to_redrive,
    kinesis_entry,
    read_stream_range,
    stream_name_from_arn,
)
from transform.handler import partition_keys

DEAD_LETTER_QUEUE = "pipe-dead-letter-queue"
OUTPUTS = (PROCESSING_FAILED, ACTIVE_PARTITION_EXCEEDED, DEAD_LETTER_OUTPUT, CONVERSION_FAILED)
REDRIVEN = "redriven/"
PUT_ATTEMPTS = 5


@dataclass
class RedriveResult:
    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*OUTPUTS, DEAD_LETTER_QUEUE), 0))
    objects: int = 0
    left: list[str] = field(default_factory=list)  # "<key>: <why>", objects kept where they are

    def summary(self) -> str:
        counts = ", ".join(f"{n:,} {kind}" for kind, n in self.records.items() if n) or "nothing to replay"
        return f"redriven {self.objects:,} object(s): {counts}" + (f"; {len(self.left)} left" if self.left else "")


def redriven_key(key: str, error_prefix: str) -> str:
    """Where a replayed object goes: beside the error output, out of every output's listing."""
    return f"{error_prefix}{REDRIVEN}{key[len(error_prefix):]}"


def raw_event(doc: dict[str, Any]) -> dict[str, Any]:
    """The pipe event a processing-failed record carried; ValueError when it is not one."""
    try:
        event = json.loads(base64.b64decode(doc["rawData"]))
    except ValueError as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise ValueError(f"its rawData is not a pipe event (not base64 JSON: {exc})") from None
    if not isinstance(event, dict) or "dynamodb" not in event:
        raise ValueError("its rawData is not a pipe event of a DynamoDB stream record")
    return event


def row_prefix(row: dict[str, Any], config: FirehoseConfig, written: datetime) -> str:
    """The partition a converted row is written to: its event day's, as the transform partitions it."""
    return evaluate_prefix(config.prefix, partition_keys=partition_keys(str(row["event_ts"])), arrival=written)


def row_key(row: dict[str, Any], config: FirehoseConfig, written: datetime) -> str:
    """An object key for a converted row: its partition, then a Firehose name (a new one at each call)."""
    return row_prefix(row, config, written) + object_name(config.delivery_stream, config.version_id, written,
                                                          config.file_extension)


class Redriver:
    """Replays one target's error output; `partition_path` and `stream` come from the CreatePipe request."""

    def __init__(self, clients: Clients, pipe_spec: dict[str, Any], config: FirehoseConfig) -> None:
        self.s3, self.kinesis, self.sqs = clients.s3, clients.kinesis, clients.sqs
        self.streams = clients.client("dynamodbstreams")
        self.bucket = config.bucket
        self.error_prefix = clients.settings.error_prefix
        self.config = config
        settings = clients.settings  # the table the delivery stream's SchemaConfiguration names
        self.table_schema = TableSchema(clients.glue, settings.glue_database, settings.glue_table)
        self.stream = stream_name_from_arn(pipe_spec["Target"])
        self.partition_path = pipe_spec["TargetParameters"]["KinesisStreamParameters"]["PartitionKey"]
        source = pipe_spec.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        self.queue_arn: str = source.get("DeadLetterConfig", {}).get("Arn", "")

    def run(self) -> RedriveResult:
        result = RedriveResult()
        for output in OUTPUTS:
            for key in self._keys(output):
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                try:
                    replayed = self._replay(output, key, body)
                except (Undeliverable, ConversionError, ValueError, KeyError) as exc:
                    result.left.append(f"{key}: {str(exc).splitlines()[0]}")
                    continue
                self._move(key, body)
                result.records[output] += replayed
                result.objects += 1
        self._replay_queue(result)
        return result

    def _replay_queue(self, result: RedriveResult) -> None:
        """Messages in the pipe's SQS dead-letter queue: replay each, then delete it (a failure keeps it)."""
        url = self._queue_url()
        while url:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                                VisibilityTimeout=60).get("Messages", [])
            if not messages:
                return
            for message in messages:
                try:
                    events = events_to_redrive(json.loads(message["Body"]),
                                               lambda *where: read_stream_range(self.streams, *where))
                    self._put([kinesis_entry(event, self.partition_path) for event in events])
                except (PipelineError, Undeliverable, ValueError, KeyError) as exc:
                    result.left.append(f"{url} message {message['MessageId']}: {str(exc).splitlines()[0]}")
                    return  # it stays in the queue; the next receive would hand it back after its timeout
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                result.records[DEAD_LETTER_QUEUE] += len(events)
                result.objects += 1

    def _queue_url(self) -> str | None:
        if not self.queue_arn:
            return None
        *_, account, name = self.queue_arn.split(":")
        try:
            return self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                return None
            raise

    def _keys(self, output: str) -> Iterator[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.error_prefix}{output}/")
        for page in pages:
            yield from (obj["Key"] for obj in page.get("Contents", []))

    def _replay(self, output: str, key: str, body: bytes) -> int:
        if output == CONVERSION_FAILED:
            return self._convert([base64.b64decode(d["rawData"]) for d in error_lines(body, key)])
        if output == DEAD_LETTER_OUTPUT:
            events = events_to_redrive(json.loads(body))
        else:
            events = [raw_event(doc) for doc in error_lines(body, key)]
        self._put([kinesis_entry(event, self.partition_path) for event in events])
        return len(events)

    def _convert(self, lines: list[bytes]) -> int:
        """Rows that failed conversion, converted with the Glue table's columns of today (the fix is often a
        column added to the table), one object per partition, as the firehose runner converts."""
        written = datetime.now(UTC)
        by_prefix: dict[str, list[dict[str, Any]]] = {}
        for row in decode_rows(lines):
            by_prefix.setdefault(row_prefix(row, self.config, written), []).append(row)
        name = object_name(self.config.delivery_stream, self.config.version_id, written, self.config.file_extension)
        # All convert, or none is written.
        bodies = {prefix + name: encode_parquet(rows, self.table_schema.for_rows(rows))
                  for prefix, rows in by_prefix.items()}
        for key, body in bodies.items():
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return len(lines)

    def _put(self, entries: list[dict[str, Any]]) -> None:
        for batch in chunk_entries(entries):
            pending = batch
            for _ in range(PUT_ATTEMPTS):
                resp = self.kinesis.put_records(StreamName=self.stream, Records=pending)
                pending = [e for e, r in zip(pending, resp["Records"], strict=True) if "ErrorCode" in r]
                if not pending:
                    break
            else:
                raise TransientError(f"Kinesis refused {len(pending)} replayed records {PUT_ATTEMPTS} times; "
                                     "run `make redrive` again (nothing was moved)")

    def _move(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=redriven_key(key, self.error_prefix), Body=body)
        self.s3.delete_object(Bucket=self.bucket, Key=key)
