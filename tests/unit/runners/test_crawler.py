"""The crawler's pure core: key layout, format detection, type inference and mapping, schema merge."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import TerminalError
from lake import glue_schema
from lake.glue_schema import arrow_type, glue_type, partition_input, table_input
from lake.partitions import partition_values
from lake.schema import ROW_SCHEMA
from runners.crawler import (
    CrawlerSpec,
    TypeConflict,
    format_of,
    infer_json_columns,
    merge_object_schemas,
    merge_with_table,
    parquet_columns,
    spec_from_request,
    widen,
)
from tests.fixtures.lake import encode, lake_objects

CONTRACT_GLUE = (
    ("order_id", "string"), ("customer_id", "string"), ("customer_name", "string"),
    ("customer_region", "string"), ("product_id", "string"), ("product_name", "string"),
    ("category", "string"), ("quantity", "bigint"), ("unit_price", "decimal(12,2)"),
    ("discount", "decimal(5,4)"), ("order_total", "decimal(14,2)"), ("currency", "string"),
    ("status", "string"), ("payment_method", "string"), ("channel", "string"),
    ("order_ts", "timestamp"), ("updated_ts", "timestamp"), ("event_type", "string"),
    ("event_id", "string"), ("sequence_number", "string"), ("event_ts", "timestamp"),
    ("arrival_ts", "timestamp"), ("is_deleted", "boolean"),
)
SPEC = CrawlerSpec(database="db", table="sales_orders_cdc", s3_path="s3://lake/orders/", crawler_name="c1")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("orders/year=2024/month=03/day=01/s-1-2024-03-01-10-00-00-x.parquet", ("2024", "03", "01")),
        ("orders/year=2024/month=03/day=01/part.gz", ("2024", "03", "01")),
        ("orders/month=03/year=2024/day=01/x.parquet", None),  # keys out of order
        ("orders/year=2024/month=03/x.parquet", None),  # too shallow
        ("orders/year=2024/month=03/day=01/extra/x.parquet", None),  # too deep
        ("orders/year=2024/month=/day=01/x.parquet", None),  # empty value
        ("orders/year=2024/month=03/day=01/_SUCCESS", None),  # hidden, as Hive readers skip it
        ("orders/year=2024/month=03/day=01/.tmp", None),
        ("orders/year=2024/month=03/day=01/", None),  # folder marker
        ("errors/processing-failed/2024/03/01/10/x", None),  # outside the include path
    ],
)
def test_partition_values(key: str, expected: tuple[str, ...] | None) -> None:
    assert partition_values(key, "orders/") == expected


def test_format_of_by_name_then_by_magic_bytes() -> None:
    assert format_of("a/b.parquet") == ("parquet", False)
    assert format_of("a/b.gz") == ("json", True)
    assert format_of("a/b.json") == ("json", False)
    assert format_of("a/firehose-1-2024", b"PAR1\x15\x04") == ("parquet", False)
    assert format_of("a/firehose-1-2024", b"\x1f\x8b\x08") == ("json", True)
    assert format_of("a/firehose-1-2024", b'  {"a": 1}') == ("json", False)
    assert format_of("a/readme.txt", b"hello") is None


def test_glue_types_of_the_lake_contract() -> None:
    assert parquet_columns(ROW_SCHEMA) == CONTRACT_GLUE


def test_glue_type_mapping_of_other_arrow_types() -> None:
    assert glue_type(pa.int8()) == "tinyint"
    assert glue_type(pa.int16()) == "smallint"
    assert glue_type(pa.int32()) == "int"
    assert glue_type(pa.uint32()) == "bigint"
    assert glue_type(pa.uint64()) == "decimal(20,0)"
    assert glue_type(pa.float32()) == "float"
    assert glue_type(pa.date32()) == "date"
    assert glue_type(pa.timestamp("us", tz="UTC")) == "timestamp"
    assert glue_type(pa.binary()) == "binary"
    assert glue_type(pa.null()) == "string"
    assert glue_type(pa.dictionary(pa.int32(), pa.string())) == "string"
    assert glue_type(pa.list_(pa.int64())) == "array<bigint>"
    assert glue_type(pa.map_(pa.string(), pa.float64())) == "map<string,double>"
    nested = pa.struct([("A", pa.string()), ("b", pa.list_(pa.bool_()))])
    assert glue_type(nested) == "struct<a:string,b:array<boolean>>"
    with pytest.raises(TerminalError):
        glue_type(pa.duration("s"))


def test_crawler_catalog_and_declared_table_agree_on_the_contract() -> None:
    """The crawler's inference from a contract file, the aws table's declaration and analytics'
    Glue->Arrow mapping must agree."""
    declared = {c["Name"]: c["Type"] for c in glue_schema.glue_columns("parquet")}
    assert dict(parquet_columns(ROW_SCHEMA)) == declared
    for f in ROW_SCHEMA:
        assert arrow_type(glue_type(f.type)) == f.type


def test_crawled_json_types_match_the_declared_json_table() -> None:
    """What the crawler infers from the JSON lake equals what the aws target declares for it,
    except quantity: small JSON integers classify as int where the contract declares bigint."""
    rows = next(iter(lake_objects("json").values()))
    inferred = dict(infer_json_columns(json.loads(line) for line in gzip.decompress(encode(rows, "json")).splitlines()))
    declared = {c["Name"]: c["Type"] for c in glue_schema.glue_columns("json")}
    assert {n: t for n, t in declared.items() if inferred[n] != t} == {"quantity": "bigint"}
    assert inferred["quantity"] == "int"


def test_arrow_type_parses_nested_glue_types() -> None:
    assert arrow_type("array<struct<a:int,b:decimal(5,2)>>") == pa.list_(
        pa.struct([("a", pa.int32()), ("b", pa.decimal128(5, 2))])
    )
    assert arrow_type("map<string,array<bigint>>") == pa.map_(pa.string(), pa.list_(pa.int64()))
    assert arrow_type("varchar(20)") == pa.string()


def test_parquet_footer_of_a_lake_object() -> None:
    rows = next(iter(lake_objects("parquet").values()))
    schema = pq.read_schema(io.BytesIO(encode(rows, "parquet")))
    assert parquet_columns(schema) == CONTRACT_GLUE


def test_json_lines_inferred_like_glues_classifier() -> None:
    """Timestamps stay strings, money is double, small integers int (Glue's JSON classifier)."""
    rows = next(iter(lake_objects("json").values()))  # e1-e3, day 1
    lines = gzip.decompress(encode(rows, "json")).decode().splitlines()
    columns = dict(infer_json_columns(json.loads(line) for line in lines))
    assert columns == {
        "order_id": "string", "customer_id": "string", "customer_name": "string", "customer_region": "string",
        "product_id": "string", "product_name": "string", "category": "string", "quantity": "int",
        "unit_price": "double", "discount": "double", "order_total": "double", "payment_method": "string",
        "channel": "string", "currency": "string", "status": "string", "order_ts": "string",
        "updated_ts": "string", "event_type": "string", "event_id": "string", "sequence_number": "string",
        "event_ts": "string", "arrival_ts": "string", "is_deleted": "boolean",
    }


def test_json_inference_widens_and_nests() -> None:
    records = [
        {"n": 1, "big": 1, "x": 1, "mixed": 1, "none": None, "tags": ["a"], "ctx": {"ip": "1.2.3.4"}},
        {"n": 2.5, "big": 2**40, "x": 3, "mixed": "one", "none": None, "tags": [], "ctx": {"port": 80}},
        {"Late": True},
    ]
    assert infer_json_columns(records) == (
        ("n", "double"), ("big", "bigint"), ("x", "int"), ("mixed", "string"), ("none", "string"),
        ("tags", "array<string>"), ("ctx", "struct<ip:string,port:int>"), ("late", "boolean"),
    )
    with pytest.raises(TerminalError):
        infer_json_columns([["not", "an", "object"]])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("a", "b", "wider"),
    [
        ("int", "bigint", "bigint"),
        ("bigint", "tinyint", "bigint"),
        ("int", "double", "double"),
        ("float", "double", "double"),
        ("decimal(12,2)", "decimal(5,4)", "decimal(14,4)"),
        ("decimal(38,2)", "decimal(38,10)", "decimal(38,10)"),
        ("string", "string", "string"),
        ("bigint", "string", None),
        ("timestamp", "string", None),
        ("decimal(12,2)", "double", None),
    ],
)
def test_widen(a: str, b: str, wider: str | None) -> None:
    assert widen(a, b) == wider


def test_objects_merge_new_columns_appended_conflicts_reported() -> None:
    base = (("order_id", "string"), ("quantity", "int"))
    columns, conflicts = merge_object_schemas([
        ("k1", base),
        ("k2", (("order_id", "string"), ("quantity", "bigint"), ("coupon", "string"))),
        ("k3", (("order_id", "bigint"),)),
    ])
    assert columns == (("order_id", "string"), ("quantity", "bigint"), ("coupon", "string"))
    assert conflicts == (TypeConflict("order_id", "string", "bigint", "k3"),)


def test_new_column_is_added_to_the_table() -> None:
    merge = merge_with_table(CONTRACT_GLUE, (*CONTRACT_GLUE, ("coupon_code", "string")))
    assert merge.added == ("coupon_code",)
    assert merge.columns == (*CONTRACT_GLUE, ("coupon_code", "string"))
    assert merge.changed and merge.conflicts == ()


def test_type_change_is_reported_not_applied() -> None:
    found = tuple((n, "string" if n == "quantity" else t) for n, t in CONTRACT_GLUE)
    merge = merge_with_table(CONTRACT_GLUE, found)
    assert merge.columns == CONTRACT_GLUE and not merge.changed
    assert merge.conflicts == (TypeConflict("quantity", "bigint", "string", "the crawled objects"),)


def test_narrower_type_in_new_objects_is_not_a_change() -> None:
    found = tuple((n, "int" if n == "quantity" else t) for n, t in CONTRACT_GLUE)
    merge = merge_with_table(CONTRACT_GLUE, found)
    assert merge.conflicts == () and not merge.changed


def test_without_merge_new_columns_the_inferred_schema_wins() -> None:
    found = (("order_id", "string"), ("quantity", "string"))
    merge = merge_with_table(CONTRACT_GLUE, found, merge_new_columns=False)
    assert merge.columns == found and merge.changed
    assert [c.column for c in merge.conflicts] == ["quantity"]


def test_missing_columns_are_kept_with_merge_new_columns() -> None:
    merge = merge_with_table(CONTRACT_GLUE, (("order_id", "string"),))
    assert merge.columns == CONTRACT_GLUE and not merge.changed


def test_parquet_table_input_matches_what_athena_expects() -> None:
    crawled = glue_schema.crawler_parameters(SPEC.crawler_name, 5, 1234)
    table = table_input(SPEC.table, SPEC.s3_path, "parquet", extra_parameters=crawled, columns=CONTRACT_GLUE,
                        compressed=False)
    sd = table["StorageDescriptor"]
    assert table["Name"] == "sales_orders_cdc" and table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"
    assert (table["Parameters"]["UPDATED_BY_CRAWLER"], table["Parameters"]["objectCount"]) == ("c1", "5")
    assert (sd["NumberOfBuckets"], sd["BucketColumns"], sd["SortColumns"]) == (-1, [], [])
    assert sd["Location"] == "s3://lake/orders/"
    assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert sd["Columns"][8] == {"Name": "unit_price", "Type": "decimal(12,2)"}
    assert table["PartitionKeys"] == [{"Name": k, "Type": "string"} for k in ("year", "month", "day")]


def test_json_table_and_partition_inputs() -> None:
    columns = (("order_id", "string"), ("order_ts", "string"))
    table = table_input(SPEC.table, SPEC.s3_path, "json", columns=columns, compressed=True)
    sd = table["StorageDescriptor"]
    assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    assert sd["SerdeInfo"] == {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
                               "Parameters": {"paths": "order_id,order_ts"}}
    assert sd["Compressed"] is True and table["Parameters"]["compressionType"] == "gzip"
    part = partition_input(SPEC.s3_path, ("2024", "03", "01"), "json", columns, compressed=True)
    assert part["Values"] == ["2024", "03", "01"]
    assert part["StorageDescriptor"]["Location"] == "s3://lake/orders/year=2024/month=03/day=01/"
    assert part["StorageDescriptor"]["Columns"] == sd["Columns"]


def test_spec_from_the_bootstrap_crawler_request() -> None:
    request = {
        "Name": "sales-orders-crawler",
        "DatabaseName": "sales_orders_db",
        "Targets": {"S3Targets": [{"Path": "s3://sales-orders-lake-000000000000/orders/"}]},
        "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
        "Configuration": json.dumps({"Version": 1.0, "CrawlerOutput": {
            "Tables": {"AddOrUpdateBehavior": "MergeNewColumns"},
            "Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}}}),
    }
    spec = spec_from_request(request, "sales_orders_cdc")
    assert spec == CrawlerSpec("sales_orders_db", "sales_orders_cdc", "s3://sales-orders-lake-000000000000/orders/",
                               "sales-orders-crawler", "UPDATE_IN_DATABASE", True, "CRAWL_EVERYTHING")
    assert (spec.bucket, spec.prefix) == ("sales-orders-lake-000000000000", "orders/")
    plain = spec_from_request({**request, "Configuration": "{}"}, "t")
    assert plain.merge_new_columns is False
    with pytest.raises(TerminalError, match="S3Targets"):
        spec_from_request({**request, "Targets": {}}, "t")
    catalog = spec_from_request({**request, "Targets": {"CatalogTargets": [
        {"DatabaseName": "sales_orders_db", "Tables": ["sales_orders_cdc"]}]}}, "ignored")
    assert (catalog.database, catalog.table, catalog.s3_path) == ("sales_orders_db", "sales_orders_cdc", "")
