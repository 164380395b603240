"""Analytics over the lake in MiniStack's S3: catalog-driven DuckDB, pruning, Athena parity, verify."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from boto3.dynamodb.types import TypeSerializer

from analytics.athena import run_athena, run_athena_query
from analytics.athena_api import athena_client
from analytics.athena_api.server import AthenaServer
from analytics.counting import counting_filesystem
from analytics.engine import open_engine, s3_filesystem
from analytics.kpis import run_kpis
from analytics.verify import AttributeDiff, reconcile
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from runners.crawler import crawl, spec_from_settings
from tests.conftest import free_port
from tests.fixtures.lake import (
    EXPECTED_KPIS,
    current_items,
    drop_database,
    empty_bucket,
    write_s3_lake,
)


@pytest.fixture(scope="module", params=["parquet", "json"])
def lake(request: pytest.FixtureRequest, emulator_settings: Settings, emulator_clients: Clients) -> Iterator[Settings]:
    """The known lake in S3, crawled into its own Glue database; a results bucket for Athena."""
    fmt = request.param
    settings = with_overrides(
        emulator_settings, lake_bucket=f"analytics-{fmt}-lake", results_bucket=f"analytics-{fmt}-results",
        glue_database=f"analytics_{fmt}_db", glue_table="sales_orders_cdc", workgroup="primary",
        table_name=f"analytics_{fmt}_orders", output_format="jsonl" if fmt == "json" else "parquet",
    )
    s3 = emulator_clients.s3
    write_s3_lake(s3, settings.lake_bucket, fmt=fmt)
    s3.create_bucket(Bucket=settings.results_bucket)
    spec = spec_from_settings(settings, emulator_clients.account_id)
    crawl(emulator_clients, settings, Console(capture=True), spec=spec)
    yield settings
    for bucket in (settings.lake_bucket, settings.results_bucket):
        empty_bucket(s3, bucket)
    drop_database(emulator_clients, settings.glue_database)


def test_engine_over_s3_gives_the_hand_computed_kpis(lake: Settings, emulator_clients: Clients) -> None:
    console = Console(capture=True, debug=True)  # the access note is an internal one: --debug shows it
    with open_engine(emulator_clients, lake, console) as engine:
        assert engine.access == "arrow-s3"
        results = run_kpis(engine.conn)
    assert {r.name: (r.columns, r.rows) for r in results} == EXPECTED_KPIS
    assert console.lines == [
        f"DuckDB reads s3://{lake.lake_bucket}/orders/ via arrow-s3 "
        "(emulated target: Arrow S3 (httpfs leaks sockets on MiniStack))"
    ]


def test_one_day_query_gets_only_that_days_objects_from_s3(lake: Settings, emulator_clients: Clients) -> None:
    fs, counter = counting_filesystem(s3_filesystem(lake))
    with open_engine(emulator_clients, lake, filesystem=fs, access="arrow") as engine:
        day = engine.query("SELECT count(*) FROM sales_orders_cdc WHERE year = '2024' AND month = '03' AND day = '02'")
        assert day == [(8,)]  # e6-e12 and the redelivered e12
        assert len(counter.opened) == 2
        assert all("/day=02/" in path for path in counter.opened)
        counter.opened.clear()
        assert engine.query("SELECT count(*) FROM sales_orders_cdc") == [(18,)]
        assert len(counter.opened) == 5


def test_athena_parity(lake: Settings, emulator_clients: Clients) -> None:
    """ENGINE=athena: the KPI files as written, through the project's Athena endpoint, equal the DuckDB KPIs."""
    with AthenaServer(lake, port=free_port(), clients=emulator_clients, register=False) as server:
        athena = athena_client(emulator_clients, lake, url=server.url)
        assert run_athena_query(emulator_clients, lake, "SELECT 6 * 7 AS answer", athena=athena)[1] == [(42,)]
        through_athena = run_athena(emulator_clients, lake, athena=athena)
    with open_engine(emulator_clients, lake) as engine:
        local = run_kpis(engine.conn)
    assert [(r.name, r.columns, r.rows) for r in through_athena] == [(r.name, r.columns, r.rows) for r in local]


def test_reconcile_with_dynamodb(lake: Settings, emulator_clients: Clients) -> None:
    ddb = emulator_clients.dynamodb
    ddb.create_table(TableName=lake.table_name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}])
    serializer = TypeSerializer()
    try:
        for item in current_items():
            ddb.put_item(TableName=lake.table_name, Item={k: serializer.serialize(v) for k, v in item.items()})
        with open_engine(emulator_clients, lake) as engine:
            assert reconcile(emulator_clients, lake, engine.conn).ok
            ddb.update_item(TableName=lake.table_name, Key={"order_id": {"S": "o5"}},
                            UpdateExpression="SET #s = :s, order_total = :t", ExpressionAttributeNames={"#s": "status"},
                            ExpressionAttributeValues={":s": {"S": "SHIPPED"}, ":t": {"N": "199.980"}})
            ddb.delete_item(TableName=lake.table_name, Key={"order_id": {"S": "o6"}})
            result = reconcile(emulator_clients, lake, engine.conn)
        assert result.extra_in_lake == ("o6",) and result.missing_in_lake == ()
        assert result.differences == (AttributeDiff("o5", "status", "PAID", "SHIPPED"),)
    finally:
        ddb.delete_table(TableName=lake.table_name)
