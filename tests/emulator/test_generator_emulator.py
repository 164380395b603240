"""The generator against the embedded emulator: the table and its stream say what it promised."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from generator.lifecycle import LifecycleConfig, simulate
from generator.seed import SeedSummary, history_config, run_seed

START = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)
ORDERS = 300


@pytest.fixture(scope="module", params=[None, 14], ids=["fast-history", "make-seed-days-14"])
def days(request: pytest.FixtureRequest) -> float | None:
    """The simulated history: LifecycleConfig's default, or `make seed`'s DAYS=14 (each order's steps
    one after another in the stream: the writer spreads them over later batches)."""
    return request.param


def config_of(days: float | None) -> LifecycleConfig:
    return LifecycleConfig() if days is None else history_config(days, ORDERS)


@pytest.fixture(scope="module")
def table(emulator_settings: Settings, emulator_clients: Clients, days: float | None) -> Iterator[Settings]:
    """A fresh table with a NEW_AND_OLD_IMAGES stream (made here: the bootstrap is separate)."""
    settings = with_overrides(emulator_settings, table_name=f"gen_test_{uuid.uuid4().hex[:8]}")
    ddb = emulator_clients.dynamodb
    ddb.create_table(
        TableName=settings.table_name,
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.get_waiter("table_exists").wait(TableName=settings.table_name)
    try:
        yield settings
    finally:
        ddb.delete_table(TableName=settings.table_name)


@pytest.fixture(scope="module")
def seeded(table: Settings, emulator_clients: Clients, days: float | None) -> SeedSummary:
    return run_seed(emulator_clients, table, orders=ORDERS, rate=None, duration=None, seed=42,
                    console=Console(capture=True), start=START, config=config_of(days))


def scan(clients: Clients, table: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for page in clients.dynamodb.get_paginator("scan").paginate(TableName=table):
        for raw in page["Items"]:
            item = {k: TypeDeserializer().deserialize(v) for k, v in raw.items()}
            items[item["order_id"]] = item
    return items


def stream_records(clients: Clients, table: str) -> list[dict[str, Any]]:
    arn = clients.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = clients.client("dynamodbstreams")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def test_scan_equals_the_expected_final_state(seeded: SeedSummary, table: Settings,
                                              emulator_clients: Clients) -> None:
    assert seeded.stopped_by == "completed" and seeded.placed == ORDERS
    assert seeded.writes == sum(seeded.counts.values())
    assert len(seeded.items_in_table_expected) == ORDERS - seeded.deleted
    assert scan(emulator_clients, table.table_name) == seeded.items_in_table_expected
    assert seeded.writes / seeded.batches > 20  # full batches but each shard's last few, whatever the history


def test_stream_has_one_record_per_write_in_order(seeded: SeedSummary, table: Settings,
                                                  emulator_clients: Clients, days: float | None) -> None:
    records = stream_records(emulator_clients, table.table_name)
    names = Counter(r["eventName"] for r in records)
    assert len(records) == seeded.writes
    assert names == {"INSERT": seeded.placed, "MODIFY": seeded.updated, "REMOVE": seeded.deleted}
    assert seeded.updated > 0 and seeded.deleted > 0
    for record in records:
        images = set(record["dynamodb"]) & {"OldImage", "NewImage"}
        expected = {"INSERT": {"NewImage"}, "MODIFY": {"OldImage", "NewImage"}, "REMOVE": {"OldImage"}}
        assert images == expected[record["eventName"]]
    # Each order's changes reach the stream in the order the generator made them.
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for record in records:
        image = record["dynamodb"].get("NewImage") or record["dynamodb"]["OldImage"]
        seen[image["order_id"]["S"]].append((record["eventName"], image["updated_ts"]["S"]))
    made: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for op in simulate(42, ORDERS, START, config_of(days)):
        if op.item is None:  # a REMOVE carries the last image
            made[op.order_id].append(("REMOVE", made[op.order_id][-1][1]))
        else:
            made[op.order_id].append(("INSERT" if op.kind == "placed" else "MODIFY", op.ts))
    assert seen == made


def test_the_writers_unvalidated_client_still_gets_the_services_verdict(table: Settings,
                                                                        emulator_clients: Clients) -> None:
    """The writer skips botocore's client-side validation; a malformed request is still refused."""
    from botocore.exceptions import ClientError, ParamValidationError

    no_item = {table.table_name: [{"PutRequest": {}}]}
    with pytest.raises(ParamValidationError):
        emulator_clients.dynamodb.batch_write_item(RequestItems=no_item)
    with pytest.raises(ClientError) as refused:
        emulator_clients.client("dynamodb", validated=False).batch_write_item(RequestItems=no_item)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
