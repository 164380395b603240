"""The local crawler against MiniStack's S3 and Glue: table, partitions, re-runs, schema changes."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from bootstrap.spec import desired_resources
from common.aws import Clients
from common.config import Settings, load_settings, with_overrides
from common.console import Console
from lake import glue_schema
from lake.encoding import decode_rows, encode_parquet
from lake.keys import object_name
from lake.schema import ROW_SCHEMA
from runners.crawler import CrawlerSpec, TypeConflict, crawl, spec_from_request, spec_from_settings
from tests.fixtures.lake import ROWS, drop_database, empty_bucket, encode, write_s3_lake
from transform.handler import transform_record

DAYS = [("2024", "03", "01"), ("2024", "03", "02"), ("2024", "03", "03")]
STREAM_RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "stream_records"


def _make_env(emulator_settings: Settings, emulator_clients: Clients, name: str) -> tuple[Settings, CrawlerSpec]:
    database = f"{name}_db".replace("-", "_")
    settings = with_overrides(emulator_settings, lake_bucket=f"{name}-lake", glue_database=database,
                              glue_table="sales_orders_cdc", crawler_name=f"{name}-crawler")
    return settings, spec_from_settings(settings, emulator_clients.account_id)


@pytest.fixture(scope="module")
def parquet_env(emulator_settings: Settings, emulator_clients: Clients) -> Iterator[tuple[Settings, CrawlerSpec]]:
    settings, spec = _make_env(emulator_settings, emulator_clients, "crawler-pq")
    s3 = emulator_clients.s3
    write_s3_lake(s3, settings.lake_bucket)
    s3.put_object(Bucket=settings.lake_bucket, Key="errors/processing-failed/2024/03/01/10/bad-record", Body=b"{")
    s3.put_object(Bucket=settings.lake_bucket, Key="orders/stray.parquet", Body=b"not in a partition")
    s3.put_object(Bucket=settings.lake_bucket, Key="orders/year=2024/month=03/day=01/_SUCCESS", Body=b"")
    yield settings, spec
    empty_bucket(s3, settings.lake_bucket)
    drop_database(emulator_clients, settings.glue_database)


def _partitions(clients: Clients, spec: CrawlerSpec) -> dict[tuple[str, ...], str]:
    pages = clients.glue.get_paginator("get_partitions").paginate(DatabaseName=spec.database, TableName=spec.table)
    return {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for page in pages for p in page["Partitions"]}


def _columns(clients: Clients, spec: CrawlerSpec) -> list[tuple[str, str]]:
    table = clients.glue.get_table(DatabaseName=spec.database, Name=spec.table)["Table"]
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]


def test_first_crawl_creates_database_table_and_partitions(
    parquet_env: tuple[Settings, CrawlerSpec], emulator_clients: Clients
) -> None:
    settings, spec = parquet_env
    console = Console(capture=True)
    result = crawl(emulator_clients, settings, console, spec=spec)
    assert result.table_created and result.classification == "parquet"
    assert result.partitions_added == tuple(DAYS) and result.partitions_total == 3
    assert result.objects_read == 5
    assert result.ignored_keys == ("orders/stray.parquet",)  # errors/ is outside the include path
    table = emulator_clients.glue.get_table(DatabaseName=spec.database, Name=spec.table)["Table"]
    sd = table["StorageDescriptor"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"
    assert sd["Location"] == f"s3://{settings.lake_bucket}/orders/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert [(c["Name"], c["Type"]) for c in table["PartitionKeys"]] == [("year", "string"), ("month", "string"),
                                                                          ("day", "string")]
    assert [c["Name"] for c in sd["Columns"]] == ROW_SCHEMA.names
    assert _partitions(emulator_clients, spec) == {
        d: f"s3://{settings.lake_bucket}/orders/year={d[0]}/month={d[1]}/day={d[2]}/" for d in DAYS
    }
    assert any("created table" in line for line in console.lines)


def test_rerun_adds_only_new_partitions(parquet_env: tuple[Settings, CrawlerSpec], emulator_clients: Clients) -> None:
    settings, spec = parquet_env
    again = crawl(emulator_clients, settings, Console(capture=True), spec=spec)
    assert (again.table_created, again.table_updated, again.partitions_added) == (False, False, ())
    key = "orders/year=2024/month=03/day=04/sales-orders-firehose-1-2024-03-04-09-00-00-x.parquet"
    late = {**ROWS[17], "event_id": "evt-18", "event_ts": datetime(2024, 3, 4, 9, 0)}
    emulator_clients.s3.put_object(Bucket=settings.lake_bucket, Key=key, Body=encode([late]))
    third = crawl(emulator_clients, settings, Console(capture=True), spec=spec)
    assert third.partitions_added == (("2024", "03", "04"),)
    assert third.partitions_total == 4 and len(_partitions(emulator_clients, spec)) == 4


def test_new_column_in_newer_objects_is_added(
    parquet_env: tuple[Settings, CrawlerSpec], emulator_clients: Clients
) -> None:
    settings, spec = parquet_env
    schema = ROW_SCHEMA.append(pa.field("coupon_code", pa.string()))
    row = {**ROWS[17], "event_id": "evt-19", "event_ts": datetime(2024, 3, 5, 9, 0), "coupon_code": "SPRING"}
    key = "orders/year=2024/month=03/day=05/sales-orders-firehose-1-2024-03-05-09-00-00-x.parquet"
    emulator_clients.s3.put_object(Bucket=settings.lake_bucket, Key=key, Body=encode([row], schema=schema))
    result = crawl(emulator_clients, settings, Console(capture=True), spec=spec)
    assert result.table_updated and result.columns_added == ("coupon_code",)
    assert result.partitions_added == (("2024", "03", "05"),)
    assert _columns(emulator_clients, spec)[-1] == ("coupon_code", "string")
    assert len(_columns(emulator_clients, spec)) == len(ROW_SCHEMA) + 1


def test_type_change_is_reported_not_applied(emulator_settings: Settings, emulator_clients: Clients) -> None:
    settings, spec = _make_env(emulator_settings, emulator_clients, "crawler-type")
    s3 = emulator_clients.s3
    try:
        write_s3_lake(s3, settings.lake_bucket)
        crawl(emulator_clients, settings, Console(capture=True), spec=spec)
        schema = pa.schema([f if f.name != "quantity" else pa.field("quantity", pa.string()) for f in ROW_SCHEMA])
        row = {**ROWS[17], "quantity": "two", "event_ts": datetime(2024, 3, 6, 9, 0)}
        key = "orders/year=2024/month=03/day=06/sales-orders-firehose-1-2024-03-06-09-00-00-x.parquet"
        s3.put_object(Bucket=settings.lake_bucket, Key=key, Body=encode([row], schema=schema))
        console = Console(capture=True)
        result = crawl(emulator_clients, settings, console, spec=spec)
        assert result.conflicts == (TypeConflict("quantity", "bigint", "string", key),)
        assert not result.table_updated
        assert ("quantity", "bigint") in _columns(emulator_clients, spec)
        assert result.partitions_added == (("2024", "03", "06"),)  # new partitions are added regardless
        assert f"! type change not applied: column quantity: table has bigint, {key} has string" in console.lines
    finally:
        empty_bucket(s3, settings.lake_bucket)
        drop_database(emulator_clients, settings.glue_database)


def test_gzip_json_lake_is_classified_json(emulator_settings: Settings, emulator_clients: Clients) -> None:
    settings, spec = _make_env(emulator_settings, emulator_clients, "crawler-json")
    s3 = emulator_clients.s3
    try:
        write_s3_lake(s3, settings.lake_bucket, fmt="json")
        result = crawl(emulator_clients, settings, Console(capture=True), spec=spec)
        assert result.table_created and result.classification == "json"
        table = emulator_clients.glue.get_table(DatabaseName=spec.database, Name=spec.table)["Table"]
        sd = table["StorageDescriptor"]
        assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
        assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
        assert sd["Compressed"] is True and table["Parameters"]["compressionType"] == "gzip"
        types = dict(_columns(emulator_clients, spec))
        assert (types["order_ts"], types["order_total"], types["quantity"], types["is_deleted"]) == (
            "string", "double", "int", "boolean")
        assert len(_partitions(emulator_clients, spec)) == 3
    finally:
        empty_bucket(s3, settings.lake_bucket)
        drop_database(emulator_clients, settings.glue_database)


def test_empty_lake_creates_no_table(emulator_settings: Settings, emulator_clients: Clients) -> None:
    settings, spec = _make_env(emulator_settings, emulator_clients, "crawler-empty")
    emulator_clients.s3.create_bucket(Bucket=settings.lake_bucket)
    try:
        console = Console(capture=True)
        result = crawl(emulator_clients, settings, console, spec=spec)
        assert (result.table_created, result.partitions_added, result.classification) == (False, (), "")
        assert console.lines[-1] == f"! no data objects under s3://{settings.lake_bucket}/orders/; nothing to crawl"
        tables = emulator_clients.glue.get_tables(DatabaseName=spec.database)["TableList"]
        assert tables == []
    finally:
        empty_bucket(emulator_clients.s3, settings.lake_bucket)
        drop_database(emulator_clients, settings.glue_database)



def test_an_object_no_classifier_recognises_is_skipped_and_the_crawl_goes_on(
    emulator_settings: Settings, emulator_clients: Clients
) -> None:
    """AWS's crawler classifies such an object UNKNOWN and the crawl succeeds (add-classifier.html): a note or
    a truncated upload in one folder must not keep every new day out of the catalog."""
    settings, spec = _make_env(emulator_settings, emulator_clients, "crawler-junk")
    s3 = emulator_clients.s3
    try:
        write_s3_lake(s3, settings.lake_bucket)
        junk = {"orders/year=2024/month=03/day=07/notes.txt": b"hello",
                "orders/year=2024/month=03/day=08/x.parquet": b"PAR1 truncated"}
        for key, body in junk.items():
            s3.put_object(Bucket=settings.lake_bucket, Key=key, Body=body)
        console = Console(capture=True)
        result = crawl(emulator_clients, settings, console, spec=spec)
        assert result.table_created and set(_partitions(emulator_clients, spec)) == set(DAYS)
        assert result.skipped_keys == tuple(sorted(junk))
        assert any(line.startswith("! 2 object(s) skipped") for line in console.lines)
    finally:
        empty_bucket(s3, settings.lake_bucket)
        drop_database(emulator_clients, settings.glue_database)


def test_log_policy_and_incremental_recrawl(emulator_settings: Settings, emulator_clients: Clients) -> None:
    """UpdateBehavior=LOG adds partitions but not columns; CRAWL_NEW_FOLDERS_ONLY reads new folders only."""
    settings, spec = _make_env(emulator_settings, emulator_clients, "crawler-log")
    s3 = emulator_clients.s3
    try:
        write_s3_lake(s3, settings.lake_bucket)
        crawl(emulator_clients, settings, Console(capture=True), spec=spec)
        schema = ROW_SCHEMA.append(pa.field("coupon_code", pa.string()))
        row = {**ROWS[17], "event_ts": datetime(2024, 3, 7, 9, 0), "coupon_code": "X"}
        key = "orders/year=2024/month=03/day=07/sales-orders-firehose-1-2024-03-07-09-00-00-x.parquet"
        s3.put_object(Bucket=settings.lake_bucket, Key=key, Body=encode([row], schema=schema))
        logged = crawl(emulator_clients, settings, Console(capture=True),
                       spec=replace(spec, update_behavior="LOG"))
        assert (logged.table_updated, logged.columns_added) == (False, ())
        assert logged.partitions_added == (("2024", "03", "07"),)
        assert logged.notes == ("schema changes logged, not applied (UpdateBehavior=LOG): new column(s) coupon_code",)
        assert "coupon_code" not in dict(_columns(emulator_clients, spec))
        incremental = crawl(emulator_clients, settings, Console(capture=True),
                            spec=replace(spec, recrawl="CRAWL_NEW_FOLDERS_ONLY"))
        assert (incremental.objects_read, incremental.partitions_added, incremental.table_updated) == (0, (), False)
    finally:
        empty_bucket(s3, settings.lake_bucket)
        drop_database(emulator_clients, settings.glue_database)


def test_catalog_target_registers_partitions_of_the_declared_table(
    emulator_settings: Settings, emulator_clients: Clients
) -> None:
    """The aws-style crawler: the bootstrap declares the table, the crawl only adds its partitions."""
    settings, spec = _make_env(emulator_settings, emulator_clients, "crawler-catalog")
    s3, glue = emulator_clients.s3, emulator_clients.glue
    try:
        write_s3_lake(s3, settings.lake_bucket)
        glue.create_database(DatabaseInput={"Name": spec.database})
        glue.create_table(DatabaseName=spec.database,
                          TableInput=glue_schema.table_input(spec.table, spec.s3_path, "parquet"))
        target = {"DatabaseName": spec.database, "Tables": [spec.table]}
        request = {"Name": "c", "Targets": {"CatalogTargets": [target]},
                   "SchemaChangePolicy": {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}}
        result = crawl(emulator_clients, settings, Console(capture=True),
                       spec=spec_from_request(request, "unused"))
        assert (result.location, result.table_created, result.table_updated) == (spec.s3_path, False, False)
        assert result.partitions_added == tuple(DAYS) and result.conflicts == ()
        assert [n for n, _ in _columns(emulator_clients, spec)] == ROW_SCHEMA.names
    finally:
        empty_bucket(s3, settings.lake_bucket)
        drop_database(emulator_clients, settings.glue_database)


def _pipeline_objects() -> dict[str, bytes]:
    """The pipeline's own rows: the stream-record fixtures through the transform, converted with the schema of
    the table the aws plan declares, under the partitions the transform named (as the firehose runner writes)."""
    by_prefix: dict[str, list[dict[str, Any]]] = {}
    for n, path in enumerate(sorted(STREAM_RECORDS.glob("*_order.json"))):
        record = {"recordId": str(n), "data": base64.b64encode(path.read_bytes()).decode(),
                  "approximateArrivalTimestamp": 1767607092000 + n}
        out = transform_record(record)
        assert out["result"] == "Ok", out
        keys = out["metadata"]["partitionKeys"]
        prefix = f"orders/year={keys['year']}/month={keys['month']}/day={keys['day']}/"
        by_prefix.setdefault(prefix, []).extend(decode_rows([base64.b64decode(out["data"])]))
    schema = glue_schema.conversion_schema(glue_schema.table_input("t", "s3://b/orders/", "parquet"))
    return {prefix + object_name("sales-orders-firehose", 1, datetime(2026, 1, 5, 10, 0, tzinfo=UTC), ".parquet"):
            encode_parquet(rows, schema) for prefix, rows in by_prefix.items()}


def test_the_table_the_aws_plan_declares_is_the_table_the_local_crawler_keeps(
    emulator_settings: Settings, emulator_clients: Clients
) -> None:
    """Same lake, same table: every target's plan declares the very CreateTable the `aws` target sends, and
    the local crawler, from the same catalog-target request as AWS's, only adds partitions: the table keeps its
    declared schema, and its partitions carry the declared StorageDescriptor at their own location."""
    names = {"lake_bucket": "glue-parity-lake", "glue_database": "glue_parity_db", "glue_table": "sales_orders_cdc",
             "crawler_name": "glue-parity-crawler"}
    local = with_overrides(emulator_settings, **names)
    cloud = with_overrides(load_settings(env={"TARGET": "aws", "AWS_REGION": local.region}), **names)
    account = emulator_clients.account_id
    (declared,) = [r.params for r in desired_resources(cloud, account) if r.kind == "glue_table"]
    (declared_here,) = [r.params for r in desired_resources(local, account) if r.kind == "glue_table"]
    assert declared_here == declared
    (crawler,) = [r.params for r in desired_resources(local, account) if r.kind == "glue_crawler"]
    assert crawler == next(r.params for r in desired_resources(cloud, account) if r.kind == "glue_crawler")
    s3, glue = emulator_clients.s3, emulator_clients.glue
    sent: dict[str, list[dict[str, Any]]] = {"CreateTable": [], "UpdateTable": [], "BatchCreatePartition": []}

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent[model.name].append(copy.deepcopy(params))

    s3.create_bucket(Bucket=local.lake_bucket)
    glue.create_database(DatabaseInput={"Name": local.glue_database})
    glue.create_table(DatabaseName=declared["DatabaseName"], TableInput=declared["TableInput"])
    for operation in sent:
        glue.meta.events.register(f"provide-client-params.glue.{operation}", capture)
    try:
        for key, body in _pipeline_objects().items():
            s3.put_object(Bucket=local.lake_bucket, Key=key, Body=body)
        result = crawl(emulator_clients, local, Console(capture=True),
                       spec=spec_from_request(crawler, local.glue_table))
        assert not result.table_created and not result.table_updated
        assert sent["CreateTable"] == [] and sent["UpdateTable"] == []  # LOG: the schema is never changed

        table = declared["TableInput"]
        partitions = [p for call in sent["BatchCreatePartition"] for p in call["PartitionInputList"]]
        assert partitions and all(
            p["StorageDescriptor"] == {**table["StorageDescriptor"], "Location": p["StorageDescriptor"]["Location"]}
            for p in partitions)
        stored = glue.get_table(DatabaseName=local.glue_database, Name=local.glue_table)["Table"]
        assert glue_schema.table_columns(stored) == glue_schema.table_columns(table)
    finally:
        for operation in sent:
            glue.meta.events.unregister(f"provide-client-params.glue.{operation}", capture)
        empty_bucket(s3, local.lake_bucket)
        drop_database(emulator_clients, local.glue_database)
