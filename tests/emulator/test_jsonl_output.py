"""OUTPUT_FORMAT=jsonl: gzip JSON lines, one row per line (AppendDelimiterToRecord), as Firehose writes them
without record-format conversion; the crawler and the DuckDB mirror read them like the Parquet lake."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from analytics.engine import open_engine
from analytics.verify import reconcile
from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from runners.crawler import crawl
from tests.emulator.test_faults import GOOD, pump, runners
from tests.fixtures.stack import named_stack


@pytest.fixture(scope="module")
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = named_stack(emulator_settings, "jl", tmp_path_factory.mktemp("jsonl-state"), output_format="jsonl",
                    buffer_interval_s=0, processor_interval_s=0)
    apply(Clients(s), build_plan(Clients(s), s), Console(capture=True))
    return s


def test_jsonl_lake_is_gzip_lines_and_reconciles(settings: Settings) -> None:
    clients = Clients(settings)
    for i in range(3):
        clients.dynamodb.put_item(TableName="jl_orders", Item={**GOOD, "order_id": {"S": f"o-{i}"}})
    clients.dynamodb.update_item(TableName="jl_orders", Key={"order_id": {"S": "o-1"}},
                                 UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues={":s": {"S": "PAID"}})
    clients.dynamodb.delete_item(TableName="jl_orders", Key={"order_id": {"S": "o-2"}})
    pipe, firehose = runners(clients, settings, "jsonl")
    pump(pipe, firehose)

    listing = clients.s3.list_objects_v2(Bucket="jl-lake", Prefix="orders/")["Contents"]
    assert listing and all(o["Key"].endswith(".gz") for o in listing)
    lines = [line for o in listing
             for line in gzip.decompress(clients.s3.get_object(Bucket="jl-lake", Key=o["Key"])["Body"].read())
             .splitlines()]
    rows = [json.loads(line, parse_float=Decimal) for line in lines]
    assert sorted((r["order_id"], r["event_type"]) for r in rows) == [
        ("o-0", "INSERT"), ("o-1", "INSERT"), ("o-1", "MODIFY"), ("o-2", "INSERT"), ("o-2", "REMOVE")]
    assert {r["unit_price"] for r in rows} == {Decimal("9.99")}

    crawl(clients, settings, Console(capture=True))
    with open_engine(clients, settings, Console(capture=True)) as engine:
        assert reconcile(clients, settings, engine.conn).ok
