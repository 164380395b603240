"""lake/glue_schema.py owns the Glue table: one type mapping, one TableInput/StorageDescriptor/PartitionInput,
used by the bootstrap, the local crawler, analytics and the firehose runner's conversion (TableSchema)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

import analytics.catalog
import runners.crawler
from bootstrap.resources.glue import Table, user_columns
from bootstrap.spec import Resource, desired_resources
from common.aws import Clients
from common.config import load_settings
from common.errors import TerminalError
from lake import glue_schema
from lake.glue_schema import TableSchema, conversion_schema, table_input, with_columns
from lake.schema import ROW_SCHEMA
from runners import firehose
from runners.firehose import FirehoseRunner
from runners.firehose_config import parse_config

ACCOUNT = "000000000000"
LOCATION = "s3://lake/orders/"


def aws_table_input() -> dict[str, Any]:
    """The TableInput of the CreateTable the `aws` plan sends."""
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": "eu-west-1"})
    (table,) = [r for r in desired_resources(settings, ACCOUNT) if r.kind == "glue_table"]
    return dict(table.params["TableInput"])


def not_found() -> ClientError:
    return ClientError({"Error": {"Code": "EntityNotFoundException", "Message": "no table"}}, "GetTable")


class FakeGlue:
    """GetTable / UpdateTable over one table (None: it does not exist); `error` makes the next GetTable fail."""

    def __init__(self, table: dict[str, Any] | None) -> None:
        self.table, self.error, self.gets, self.updates = table, None, 0, []

    def get_table(self, DatabaseName: str, Name: str) -> dict[str, Any]:
        self.gets += 1
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if self.table is None:
            raise not_found()
        return {"Table": {**self.table, "DatabaseName": DatabaseName, "VersionId": str(self.gets)}}

    def update_table(self, DatabaseName: str, TableInput: dict[str, Any]) -> None:
        self.updates.append(TableInput)
        self.table = TableInput


def with_column(table: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    """What a user's UpdateTable adding one column leaves."""
    return with_columns(table, (*glue_schema.table_columns(table), (name, kind)))


# --- one module -----------------------------------------------------------------------------------


def test_the_crawler_and_analytics_use_the_one_modules_types_and_builders() -> None:
    assert analytics.catalog.arrow_type is glue_schema.arrow_type
    assert runners.crawler.glue_type is glue_schema.glue_type
    assert runners.crawler.table_input is glue_schema.table_input
    assert runners.crawler.partition_input is glue_schema.partition_input
    assert not hasattr(runners.crawler, "storage_descriptor")


def test_the_declared_table_converts_with_exactly_the_row_contract() -> None:
    """Glue -> Arrow of the table the aws plan declares is the contract, type for type (no drift, no rounding)."""
    assert conversion_schema(aws_table_input()) == ROW_SCHEMA
    for f in ROW_SCHEMA:
        assert glue_schema.arrow_type(glue_schema.glue_type(f.type)) == f.type


def test_a_table_and_its_partitions_share_one_storage_descriptor() -> None:
    columns = glue_schema.contract_columns("parquet")
    table = table_input("t", LOCATION, "parquet", columns=columns)
    part = glue_schema.partition_input(LOCATION, ("2024", "03", "01"), "parquet", columns)
    assert part["StorageDescriptor"] == {**table["StorageDescriptor"],
                                         "Location": LOCATION + "year=2024/month=03/day=01/"}
    assert part["Parameters"] == table["StorageDescriptor"]["Parameters"]
    assert table == table_input("t", LOCATION, "parquet")  # the contract's columns are the default


def test_an_unsupported_column_type_is_named() -> None:
    table = with_column(aws_table_input(), "span", "interval")
    with pytest.raises(TerminalError, match=r"span interval"):
        conversion_schema(table)


# --- TableSchema: the converter reads the table's current columns -------------------------------------


def test_the_table_is_read_at_the_first_use_and_again_after_the_interval() -> None:
    glue, now = FakeGlue(aws_table_input()), [0.0]
    source = TableSchema(glue, "db", "t", clock=lambda: now[0])
    assert source.for_rows([]) == ROW_SCHEMA and glue.gets == 1
    glue.table = with_column(glue.table, "coupon_code", "string")  # a user's UpdateTable
    now[0] = 59.0
    assert "coupon_code" not in source.for_rows([{"order_id": "o1"}]).names and glue.gets == 1
    now[0] = 60.0
    assert source.for_rows([{"order_id": "o1"}]).names[-1] == "coupon_code" and glue.gets == 2
    assert source.version_id == "2"


def test_an_attribute_the_schema_lacks_asks_the_table_at_once_but_only_once() -> None:
    glue = FakeGlue(aws_table_input())
    source = TableSchema(glue, "db", "t", clock=lambda: 0.0)
    source.for_rows([])
    glue.table = with_column(glue.table, "coupon_code", "string")
    assert source.for_rows([{"Coupon_Code": "X"}]).names[-1] == "coupon_code" and glue.gets == 2
    for _ in range(3):  # an attribute the table does not declare costs one GetTable, not one per flush
        assert "gift_note" not in source.for_rows([{"gift_note": "hi", "coupon_code": "X"}]).names
    assert glue.gets == 3


def test_a_missing_table_converts_with_the_declared_columns_until_it_exists() -> None:
    glue, now = FakeGlue(None), [0.0]
    source = TableSchema(glue, "db", "t", clock=lambda: now[0])
    assert source.for_rows([]) == ROW_SCHEMA and source.missing
    glue.table = with_column(aws_table_input(), "coupon_code", "string")
    now[0] = 60.0
    assert source.for_rows([]).names[-1] == "coupon_code" and not source.missing


def test_a_failed_read_keeps_the_last_schema_and_a_first_failure_raises() -> None:
    glue, now = FakeGlue(aws_table_input()), [0.0]
    source = TableSchema(glue, "db", "t", clock=lambda: now[0])
    glue.error = EndpointConnectionError(endpoint_url="http://glue")
    with pytest.raises(EndpointConnectionError):
        source.for_rows([])
    assert source.for_rows([]) == ROW_SCHEMA
    now[0] = 60.0
    glue.error = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetTable")
    assert source.for_rows([]) == ROW_SCHEMA


def test_known_is_the_schema_for_rows_of_its_columns_and_never_reads() -> None:
    """The firehose runner reads rows at once only with it: then for_rows would not have read the table."""
    glue, now = FakeGlue(aws_table_input()), [0.0]
    source = TableSchema(glue, "db", "t", clock=lambda: now[0])
    assert source.known() is None and glue.gets == 0  # the first read is due: for_rows makes it
    schema = source.for_rows([])
    assert source.known() == schema and source.for_rows([{"order_id": "o1"}]) == schema and glue.gets == 1
    now[0] = 60.0
    assert source.known() is None and glue.gets == 1  # the timed read is due


# --- the firehose runner converts with it --------------------------------------------------------------


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        self.objects[Key] = Body


def test_the_firehose_runner_converts_with_the_tables_current_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(env={})
    spec = {r.kind: r for r in desired_resources(settings, ACCOUNT)}["delivery_stream"].params
    runner = FirehoseRunner(Clients(settings), parse_config(spec), Path("/nonexistent/ckpt.json"))
    runner.s3 = FakeS3()
    glue = FakeGlue(aws_table_input())
    runner.table_schema = TableSchema(glue, "db", "t", clock=lambda: 0.0)
    row = {"order_id": "o1", "event_id": "e1", "coupon_code": "SPRING", "address": {"city": "Lyon"}}

    runner._flush_rows("orders/a/", [json.dumps(row).encode()], [("shard-0", "1")], [datetime.now(UTC)])
    glue.table = with_column(glue.table, "coupon_code", "string")
    runner._flush_rows("orders/b/", [json.dumps(row).encode()], [("shard-0", "2")], [datetime.now(UTC)])

    first, second = (pq.read_table(io.BytesIO(runner.s3.objects[k])) for k in sorted(runner.s3.objects))
    assert first.schema == ROW_SCHEMA  # the attributes the table lacks are dropped, as on AWS
    assert second.schema.names == [*ROW_SCHEMA.names, "coupon_code"]
    assert second.column("coupon_code").to_pylist() == ["SPRING"]

    # A row of the table's columns only is read at once (lake/encoding.py table_from_lines): same schema, no read
    reads = glue.gets
    read_at_once: list[bool] = []
    at_once = firehose.table_from_lines
    monkeypatch.setattr(firehose, "table_from_lines",
                        lambda lines, schema: read_at_once.append((t := at_once(lines, schema)) is not None) or t)
    fitting = {"order_id": "o2", "event_id": "e2", "coupon_code": "FALL"}
    runner._flush_rows("orders/c/", [json.dumps(fitting).encode()], [("shard-0", "3")], [datetime.now(UTC)])
    (third,) = (pq.read_table(io.BytesIO(body)) for key, body in runner.s3.objects.items() if "/c/" in key)
    assert third.schema == second.schema and third.column("coupon_code").to_pylist() == ["FALL"]
    assert glue.gets == reads and read_at_once == [True]


# --- the bootstrap keeps the columns a user added --------------------------------------------------


class FakeClients:
    def __init__(self, glue: FakeGlue) -> None:
        self.glue = glue
        self.settings = load_settings(env={})


def test_columns_a_user_added_are_neither_drift_nor_removed() -> None:
    declared = aws_table_input()
    res = Resource("glue_table", declared["Name"], {"DatabaseName": "db", "TableInput": declared})
    glue = FakeGlue(with_column(declared, "coupon_code", "string"))
    clients: Any = FakeClients(glue)
    assert user_columns(glue.table, declared) == (("coupon_code", "string"),)
    assert Table().observe(clients, res) == Table().desired(res)

    glue.table = with_columns(glue.table, (("order_id", "bigint"), *glue_schema.table_columns(glue.table)[1:]))
    assert Table().observe(clients, res) != Table().desired(res)  # a declared column retyped is drift
    Table().update(clients, res, ["Columns"])
    assert glue_schema.table_columns(glue.updates[-1]) == (*glue_schema.contract_columns(), ("coupon_code", "string"))
