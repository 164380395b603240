"""Realistic transform input, built the way the pipeline builds it: generator operations ->
DynamoDB stream records (NEW_AND_OLD_IMAGES) -> the Pipe's Kinesis event -> Firehose's
data-transformation event of up to 500 records. Pure and seeded.

Shapes: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_Record.html
and the firehose runner's own `invoke_event` (the payload the Lambda really receives).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from generator.lifecycle import Item, Operation, simulate
from generator.writer import attribute_values
from runners.firehose import SourceRecord, invoke_event
from runners.firehose_config import FirehoseConfig
from runners.pipe import pipe_event

REGION = "us-east-1"
TABLE_STREAM_ARN = f"arn:aws:dynamodb:{REGION}:000000000000:table/sales_orders/stream/2026-01-01T00:00:00.000"
FIRST_SEQUENCE = 10**20  # DynamoDB sequence numbers are 21+ digit decimal strings
SHARD = "shardId-000000000000"


def epoch_seconds(iso_ms: str) -> float:
    """'2026-01-05T10:00:00.123Z' -> whole epoch seconds, as MiniStack's Streams report them."""
    return float(int(datetime.fromisoformat(iso_ms.replace("Z", "+00:00")).timestamp()))


def stream_records(ops: Iterable[Operation], *, seed: int = 0, region: str = REGION,
                   first_sequence: int = FIRST_SEQUENCE) -> Iterator[dict[str, Any]]:
    """One stream record per write that changes the table, as DynamoDB Streams emits them.

    A put of a new key is INSERT (NewImage), a put over an existing one MODIFY (both images),
    a delete of an existing key REMOVE (OldImage); a delete of a missing key emits nothing.
    """
    rng = random.Random(f"stream/{seed}")
    table: dict[str, Item] = {}
    sequence = first_sequence
    for op in ops:
        old = table.get(op.order_id)
        if op.item is None:
            if old is None:
                continue
            name = "REMOVE"
            del table[op.order_id]
        else:
            name = "MODIFY" if old is not None else "INSERT"
            table[op.order_id] = op.item
        change: dict[str, Any] = {
            "ApproximateCreationDateTime": epoch_seconds(op.ts),
            "Keys": {"order_id": {"S": op.order_id}},
            "SequenceNumber": str(sequence),
            "SizeBytes": 0,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if op.item is not None:
            change["NewImage"] = attribute_values(op.item)
        if old is not None:
            change["OldImage"] = attribute_values(old)
        sequence += 1
        yield {"eventID": f"{rng.getrandbits(128):032x}", "eventName": name, "eventVersion": "1.1",
               "eventSource": "aws:dynamodb", "awsRegion": region, "dynamodb": change}


def kinesis_payloads(count: int, seed: int = 7, start: datetime | None = None) -> list[bytes]:
    """`count` Pipe events (JSON bytes, as the pipe runner puts them on Kinesis) from a seeded shop."""
    import json

    start = start or datetime(2026, 1, 5, tzinfo=UTC)
    payloads: list[bytes] = []
    orders = max(count // 4, 1)  # ~4.4 changes per order: the last pass is cut short
    while len(payloads) < count:
        for record in stream_records(simulate(seed, orders, start), seed=seed):
            payloads.append(json.dumps(pipe_event(record, TABLE_STREAM_ARN), separators=(",", ":")).encode())
            if len(payloads) == count:
                break
        seed += 1
    return payloads


def bench_config(stream: str = "bench-cdc") -> FirehoseConfig:
    """The few names `invoke_event` reads; the rest is what the bootstrap would set."""
    return FirehoseConfig(
        delivery_stream="bench-firehose", source_stream=stream, bucket="bench-lake",
        prefix="orders/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/"
               "day=!{partitionKeyFromLambda:day}/",
        error_prefix="errors/!{firehose:error-output-type}/", buffer_bytes=64 << 20, buffer_interval_s=1,
        parquet=True, gzip=False, append_delimiter=True, file_extension=".parquet",
        lambda_arn=f"arn:aws:lambda:{REGION}:000000000000:function:bench", lambda_retries=3,
        processor_bytes=1 << 20, processor_interval_s=0,
    )


def firehose_events(payloads: list[bytes], batch: int = 500,
                    arrival: datetime | None = None) -> list[dict[str, Any]]:
    """Firehose data-transformation events of `batch` records each (the Lambda's input)."""
    config, arrival = bench_config(), arrival or datetime(2026, 1, 5, 12, tzinfo=UTC)
    events = []
    for start in range(0, len(payloads), batch):
        records = [SourceRecord.of(f"{SHARD}:{start + i}", data, arrival, (SHARD, str(start + i)), "order")
                   for i, data in enumerate(payloads[start:start + batch])]
        events.append(invoke_event(records, config, REGION))
    return events
