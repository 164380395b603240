"""make query and the Athena endpoint on a seeded lake in the emulator, compared with a DynamoDB scan.

The known lake (tests/fixtures/lake.py) is written to the emulator's S3 and crawled into Glue, its
current state put into a DynamoDB table. Every path must give what a scan of that table gives:
query_lake (make query), query_athena (make query ENGINE=athena) through the endpoint, the endpoint
as a process (python -m analytics.athena_api), and the emulator's Athena once the endpoint registered.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from analytics.athena import query_athena
from analytics.athena_api import ORIGIN_HEADER, athena_client, endpoint_healthy, endpoint_url
from analytics.athena_api import process as athena_process
from analytics.athena_api.server import AthenaServer
from analytics.query import QueryError, query_lake
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from common.errors import TerminalError
from runners.crawler import crawl, spec_from_settings
from tests.conftest import free_port
from tests.fixtures.lake import current_items, drop_database, empty_bucket, write_s3_lake

CURRENT = "SELECT order_id, status FROM sales_orders_current ORDER BY order_id"
# Trino-only functions, each rewritten by the transpiler for DuckDB.
TRINO = """
SELECT date_format(order_ts, '%Y-%m-%d') AS day,
       approx_distinct(customer_id) AS customers,
       count(*) AS orders,
       max(date_add('hour', 1, from_iso8601_timestamp('2024-03-01T00:00:00Z'))) AS marker
FROM sales_orders_current
GROUP BY 1
ORDER BY 1"""
COUNT_CURRENT = "SELECT count(*) AS orders FROM sales_orders_current"
UNRUNNABLE = "SELECT order_id,\n       word_stem(product_name) AS stem\nFROM sales_orders_current"


def scan(clients: Clients, table: str) -> dict[str, str]:
    """order_id -> status of every item, the way `make verify` reads the table."""
    items: dict[str, str] = {}
    for page in clients.dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            items[item["order_id"]["S"]] = item["status"]["S"]
    return items


@pytest.fixture(scope="module")
def stack(emulator_settings: Settings, emulator_clients: Clients) -> Iterator[Settings]:
    """The known lake crawled into query_db, its current state in DynamoDB, an enforcing workgroup."""
    settings = with_overrides(
        emulator_settings, lake_bucket="query-lake", results_bucket="query-results", glue_database="query_db",
        glue_table="sales_orders_cdc", workgroup="query-wg", table_name="query_orders")
    clients = emulator_clients
    write_s3_lake(clients.s3, settings.lake_bucket)
    clients.s3.create_bucket(Bucket=settings.results_bucket)
    crawl(clients, settings, Console(capture=True), spec=spec_from_settings(settings, clients.account_id))
    clients.athena.create_work_group(Name=settings.workgroup, Configuration={
        "EnforceWorkGroupConfiguration": True,
        "ResultConfiguration": {"OutputLocation": f"s3://{settings.results_bucket}/enforced/"}})
    clients.dynamodb.create_table(
        TableName=settings.table_name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}])
    serializer = TypeSerializer()
    for item in current_items():
        clients.dynamodb.put_item(TableName=settings.table_name,
                                  Item={k: serializer.serialize(v) for k, v in item.items()})
    yield settings
    clients.dynamodb.delete_table(TableName=settings.table_name)
    clients.athena.delete_work_group(WorkGroup=settings.workgroup, RecursiveDeleteOption=True)
    for bucket in (settings.lake_bucket, settings.results_bucket):
        empty_bucket(clients.s3, bucket)
    drop_database(clients, settings.glue_database)


@pytest.fixture(scope="module")
def endpoint(stack: Settings, emulator_clients: Clients) -> Iterator[AthenaServer]:
    """The endpoint in a thread on a free loopback port, registered with the emulator; stopped at the end."""
    with AthenaServer(stack, port=free_port(), clients=emulator_clients) as server:
        yield server


def test_make_query_equals_a_dynamodb_scan(stack: Settings, emulator_clients: Clients) -> None:
    expected = scan(emulator_clients, stack.table_name)
    result = query_lake(emulator_clients, stack, CURRENT)
    assert dict(result.rows) == expected
    count = query_lake(emulator_clients, stack, "SELECT count(*) AS orders FROM sales_orders_current")
    assert (count.columns, count.types, count.rows) == (["orders"], ["bigint"], [(len(expected),)])


def test_trino_sql_gives_the_same_rows_through_the_athena_api_as_make_query(
        stack: Settings, emulator_clients: Clients, endpoint: AthenaServer) -> None:
    athena = athena_client(emulator_clients, stack, url=endpoint.url)
    local = query_lake(emulator_clients, stack, TRINO)
    through_api = query_athena(emulator_clients, stack, TRINO, athena=athena, poll_s=0.02)
    # Placed 03-01: o1 (c1), o2 (c2), o3 (c1); 03-02: o5 (c2); 03-03: o6 (c3). o4 was removed.
    assert [r[:3] for r in local.rows] == [("2024-03-01", 2, 3), ("2024-03-02", 1, 1), ("2024-03-03", 1, 1)]
    assert local.types == ["varchar", "bigint", "bigint", "timestamp with time zone"]
    assert local.rows[0][3] == datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
    assert (through_api.columns, through_api.types, through_api.rows) == (local.columns, local.types, local.rows)
    assert dict(query_athena(emulator_clients, stack, CURRENT, athena=athena, poll_s=0.02).rows) == \
        scan(emulator_clients, stack.table_name)


def test_engine_athena_without_a_started_endpoint_runs_one_of_its_own(
        stack: Settings, emulator_clients: Clients) -> None:
    assert not endpoint_healthy(endpoint_url(stack))  # nothing on PORT + 41 in the test session
    result = query_athena(emulator_clients, stack, COUNT_CURRENT, poll_s=0.02)
    assert result.rows == [(len(scan(emulator_clients, stack.table_name)),)]


def test_what_the_mirror_cannot_run_fails_with_the_same_line_on_both_paths(
        stack: Settings, emulator_clients: Clients, endpoint: AthenaServer) -> None:
    with pytest.raises(QueryError) as local:
        query_lake(emulator_clients, stack, UNRUNNABLE)
    assert str(local.value) == ("word_stem at line 2, column 8: Athena accepts it; the local mirror cannot run "
                                "word_stem")
    athena = athena_client(emulator_clients, stack, url=endpoint.url)
    with pytest.raises(TerminalError) as remote:
        query_athena(emulator_clients, stack, UNRUNNABLE, athena=athena, poll_s=0.02)
    assert str(remote.value) == str(local.value)
    with pytest.raises(TerminalError) as malformed:  # refused at StartQueryExecution, as Athena does
        query_athena(emulator_clients, stack, "SELECT FROM WHERE", athena=athena, poll_s=0.02)
    assert str(malformed.value).startswith("syntax error at line 1")


def test_the_enforcing_workgroup_decides_where_results_land(
        stack: Settings, emulator_clients: Clients, endpoint: AthenaServer) -> None:
    athena = athena_client(emulator_clients, stack, url=endpoint.url)
    query_id = athena.start_query_execution(
        QueryString="SELECT count(*) FROM sales_orders_current", WorkGroup=stack.workgroup,
        QueryExecutionContext={"Database": stack.glue_database},
        ResultConfiguration={"OutputLocation": f"s3://{stack.results_bucket}/ignored/"})["QueryExecutionId"]
    endpoint.service.wait(query_id)
    execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    location = f"s3://{stack.results_bucket}/enforced/{query_id}.csv"
    assert (execution["Status"]["State"], execution["ResultConfiguration"]["OutputLocation"]) == ("SUCCEEDED",
                                                                                                  location)
    body = emulator_clients.s3.get_object(Bucket=stack.results_bucket, Key=f"enforced/{query_id}.csv")["Body"]
    assert body.read().decode() == f'"_col0"\n"{len(current_items())}"\n'
    emulator_clients.s3.head_object(Bucket=stack.results_bucket, Key=f"enforced/{query_id}.csv.metadata")
    group = athena.get_work_group(WorkGroup=stack.workgroup)["WorkGroup"]  # created in the emulator
    assert group["Configuration"]["EnforceWorkGroupConfiguration"] is True


def test_create_table_as_and_drop_table(stack: Settings, emulator_clients: Clients, endpoint: AthenaServer) -> None:
    athena = athena_client(emulator_clients, stack, url=endpoint.url)
    ctas = ("CREATE TABLE query_db.current_copy WITH (format = 'PARQUET', "
            f"external_location = 's3://{stack.results_bucket}/tables/current_copy/') AS {CURRENT}")
    query_id = athena.start_query_execution(QueryString=ctas, WorkGroup="primary",
                                            QueryExecutionContext={"Database": stack.glue_database},
                                            ResultConfiguration={"OutputLocation": f"s3://{stack.results_bucket}/"
                                                                 "ctas/"})["QueryExecutionId"]
    assert endpoint.service.wait(query_id).state == "SUCCEEDED"
    execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert (execution["StatementType"], execution["SubstatementType"]) == ("DDL", "CREATE_TABLE_AS_SELECT")
    manifest = execution["Statistics"]["DataManifestLocation"]
    listed = emulator_clients.s3.get_object(Bucket=stack.results_bucket,
                                            Key=manifest.split("/", 3)[3])["Body"].read().decode().split()
    assert len(listed) == 1 and listed[0].startswith(f"s3://{stack.results_bucket}/tables/current_copy/")
    table = emulator_clients.glue.get_table(DatabaseName="query_db", Name="current_copy")["Table"]
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [("order_id", "string"),
                                                                                       ("status", "string")]
    copied = query_athena(emulator_clients, stack, "SELECT * FROM current_copy ORDER BY order_id", athena=athena,
                          workgroup="primary", poll_s=0.02)
    assert dict(copied.rows) == scan(emulator_clients, stack.table_name)
    dropped = athena.start_query_execution(QueryString="DROP TABLE query_db.current_copy", WorkGroup="primary",
                                           ResultConfiguration={"OutputLocation": f"s3://{stack.results_bucket}/"
                                                                "ctas/"})["QueryExecutionId"]
    assert endpoint.service.wait(dropped).state == "SUCCEEDED"
    with pytest.raises(emulator_clients.glue.exceptions.EntityNotFoundException):
        emulator_clients.glue.get_table(DatabaseName="query_db", Name="current_copy")


def _emulator_athena(settings: Settings, action: str, params: dict[str, Any], origin: bool = False) -> Any:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AmazonAthena.{action}",
               "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/athena/aws4_request"}
    if origin:
        headers[ORIGIN_HEADER] = "1"
    request = urllib.request.Request(f"{settings.endpoint_url}/", data=json.dumps(params).encode(),
                                     headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def test_the_emulator_forwards_athena_to_the_registered_endpoint_only(
        stack: Settings, emulator_clients: Clients) -> None:
    """The pinned MiniStack patch: forwarding while an endpoint is registered; MiniStack's own Athena otherwise."""
    start = {"QueryString": "SELECT approx_distinct(customer_id) AS c FROM sales_orders_current",
             "QueryExecutionContext": {"Database": stack.glue_database}, "WorkGroup": "primary",
             "ResultConfiguration": {"OutputLocation": f"s3://{stack.results_bucket}/forwarded/"}}
    with AthenaServer(stack, port=free_port(), clients=emulator_clients) as server:
        assert server.registered
        query_id = emulator_clients.athena.start_query_execution(**start)["QueryExecutionId"]
        assert server.service.wait(query_id).state == "SUCCEEDED"  # the endpoint ran it
        results = emulator_clients.athena.get_query_results(QueryExecutionId=query_id)["ResultSet"]["Rows"]
        assert [r["Data"][0]["VarCharValue"] for r in results] == ["c", "3"]
        # A request with the origin header is the endpoint's own: MiniStack answers it (and knows no such id).
        with pytest.raises(urllib.error.HTTPError):
            _emulator_athena(stack, "GetQueryExecution", {"QueryExecutionId": query_id}, origin=True)
    # Unregistered: MiniStack's own Athena again, which runs the text as DuckDB SQL (Trino functions fail).
    own = emulator_clients.athena.start_query_execution(**start)["QueryExecutionId"]
    deadline = time.monotonic() + 30
    while True:
        status = emulator_clients.athena.get_query_execution(QueryExecutionId=own)["QueryExecution"]["Status"]
        if status["State"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            break
    assert status["State"] == "FAILED" and "approx_distinct" in status["StateChangeReason"]


def test_the_endpoint_process_starts_on_loopback_and_stops(stack: Settings, emulator_clients: Clients) -> None:
    port = free_port()
    url = endpoint_url(stack, port)
    pid = athena_process.start(stack, port=port)
    try:
        assert endpoint_healthy(url) and url.startswith("http://127.0.0.1:")
        assert athena_process.start(stack, port=port) == pid  # one per state directory and port
        athena = athena_client(emulator_clients, stack, url=url)
        result = query_athena(emulator_clients, stack, CURRENT, athena=athena, poll_s=0.05)
        assert dict(result.rows) == scan(emulator_clients, stack.table_name)
    finally:
        assert athena_process.stop(stack, port=port)
    assert not endpoint_healthy(url)
    assert athena_process.running_pid(stack, port) is None
