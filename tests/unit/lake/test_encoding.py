"""lake/encoding.py converts rows to the lake schema exactly, or refuses them naming the column (never rounds),
and encodes them as the object bodies Firehose writes (Parquet SNAPPY, or gzip JSON lines)."""

from __future__ import annotations

import gzip
import io
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.encoding import ConversionError, check_row, decode_rows, encode_jsonl_gzip, encode_parquet, rows_to_table
from lake.glue_schema import arrow_schema, contract_columns
from lake.schema import ROW_SCHEMA

ROW: dict[str, Any] = {
    "order_id": "ord-1", "customer_id": "c1", "customer_name": "Ann", "customer_region": "EMEA",
    "product_id": "p1", "product_name": "Book", "category": "Books", "quantity": 2,
    "unit_price": Decimal("9.99"), "discount": Decimal("0.1"), "order_total": Decimal("17.98"),
    "currency": "EUR", "status": "PLACED", "payment_method": "card", "channel": "web",
    "order_ts": "2026-01-05T09:58:11.123Z", "updated_ts": "2026-01-05T09:58:11.123Z",
    "event_type": "INSERT", "event_id": "ev-1", "sequence_number": "1", "event_ts": "2026-01-05T09:58:11.000Z",
    "arrival_ts": "2026-01-05T09:58:11.871Z", "is_deleted": False,
}


def converted(**changes: Any) -> dict[str, Any]:
    return rows_to_table([{**ROW, **changes}]).to_pylist()[0]


def test_a_row_that_fits_converts_with_every_value_exact() -> None:
    row = converted()
    assert (row["quantity"], row["unit_price"], row["discount"]) == (2, Decimal("9.99"), Decimal("0.1000"))
    assert row["order_ts"] == datetime(2026, 1, 5, 9, 58, 11, 123000)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("unit_price", 19.9, Decimal("19.90")),  # padding to the scale loses nothing
        ("unit_price", Decimal("19.990"), Decimal("19.99")),  # the same number
        ("unit_price", 20, Decimal("20.00")),
        ("quantity", Decimal("2.0"), 2),  # an integral number is an integer
        ("quantity", Decimal("3E+1"), 30),
        ("quantity", None, None),
        ("order_ts", "2026-01-05T11:58:11.123+02:00", datetime(2026, 1, 5, 9, 58, 11, 123000)),  # to UTC, exactly
    ],
)
def test_exact_conversions_are_accepted(column: str, value: Any, expected: Any) -> None:
    assert converted(**{column: value})[column] == expected


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("quantity", Decimal("2.5"), "quantity: 2.5 is not an integer"),
        ("quantity", 2.5, "quantity: 2.5 is not an integer"),
        ("unit_price", Decimal("19.999"), "unit_price: 19.999 has more than 2 decimal places"),
        ("discount", Decimal("0.12345"), "discount: 0.12345 has more than 4 decimal places"),
        ("order_total", Decimal("1234567890123.00"), "order_total: 1234567890123.00 does not fit decimal128(14, 2)"),
        ("order_ts", "2026-01-05T09:58:11.123456Z", "order_ts: '2026-01-05T09:58:11.123456Z' is more precise than"),
        ("quantity", "two", "quantity: "),
        ("is_deleted", "yes", "is_deleted: "),
    ],
)
def test_a_value_that_would_be_rounded_or_truncated_is_refused_naming_the_column(
    column: str, value: Any, message: str
) -> None:
    with pytest.raises(ConversionError) as error:
        check_row({**ROW, column: value})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


# --- converting with the Glue table's current schema (lake/glue_schema.py) ----------------------------


def glue_schema_of(*extra: tuple[str, str]) -> pa.Schema:
    """The Arrow schema the converter uses for the declared table with `extra` columns a user added."""
    return arrow_schema(contract_columns("parquet") + extra)


def test_a_column_added_to_the_table_is_written_and_undeclared_attributes_are_dropped() -> None:
    schema = glue_schema_of(("coupon_code", "string"))
    table = rows_to_table([{**ROW, "coupon_code": "SPRING", "address": {"city": "Lyon"}}], schema)
    assert table.schema.names == [*ROW_SCHEMA.names, "coupon_code"]
    assert table.to_pylist()[0]["coupon_code"] == "SPRING"
    assert rows_to_table([ROW], schema).to_pylist()[0]["coupon_code"] is None  # an older row: null


def test_json_keys_match_columns_case_insensitively_as_the_openx_serde_does() -> None:
    schema = glue_schema_of(("coupon_code", "string"))
    assert rows_to_table([{**ROW, "Coupon_Code": "SPRING"}], schema).to_pylist()[0]["coupon_code"] == "SPRING"


def test_nested_attributes_are_converted_as_the_table_declares_them() -> None:
    schema = glue_schema_of(
        ("address_text", "string"), ("address", "struct<city:string,zip:string,floor:bigint>"),
        ("tags", "array<string>"), ("scores", "map<string,decimal(5,2)>"), ("gift", "string"),
    )
    address = {"City": "Lyon", "zip": "69001", "floor": 3, "note": "ring twice"}
    row = {**ROW, "address_text": address, "address": address, "tags": ["gift", "vip"],
           "scores": {"speed": Decimal("4.50")}, "gift": True}
    out = rows_to_table([row], schema).to_pylist()[0]
    assert out["address_text"] == '{"City":"Lyon","zip":"69001","floor":3,"note":"ring twice"}'  # JSON text
    assert out["address"] == {"city": "Lyon", "zip": "69001", "floor": 3}  # struct fields; undeclared dropped
    assert out["tags"] == ["gift", "vip"]
    assert out["scores"] == [("speed", Decimal("4.50"))]
    assert out["gift"] == "true"
    assert str(rows_to_table([row], schema).schema.field("scores").type) == "map<string, decimal128(5, 2)>"


@pytest.mark.parametrize(
    ("column", "kind", "value", "message"),
    [
        ("price", "decimal(12,2)", Decimal("1.999"), "price: 1.999 has more than 2 decimal places"),
        ("points", "bigint", Decimal("2.5"), "points: 2.5 is not an integer"),
        ("seen_ts", "timestamp", "2026-01-05T09:58:11.123456Z", "seen_ts: '2026-01-05T09:58:11.123456Z' is more"),
        ("address", "struct<floor:bigint>", {"floor": 2.5}, "address.floor: 2.5 is not an integer"),
        ("address", "struct<floor:bigint>", "3rd floor", "address: '3rd floor' is not a JSON object"),
        ("tags", "array<string>", "gift", "tags: 'gift' is not a JSON array"),
        ("scores", "map<string,decimal(5,2)>", {"a": Decimal("1.234")}, "scores.a: 1.234 has more than 2"),
    ],
)
def test_a_glue_typed_column_still_refuses_to_round_or_truncate(
    column: str, kind: str, value: Any, message: str
) -> None:
    with pytest.raises(ConversionError) as error:
        check_row({**ROW, column: value}, glue_schema_of((column, kind)))
    assert str(error.value).startswith(message)


def test_parquet_bodies_are_snappy_files_of_the_schema_holding_the_converted_rows() -> None:
    body = encode_parquet([ROW, {**ROW, "order_id": "ord-2"}])
    parquet = pq.ParquetFile(io.BytesIO(body))
    assert parquet.schema_arrow == ROW_SCHEMA
    assert {parquet.metadata.row_group(0).column(i).compression for i in range(len(ROW_SCHEMA))} == {"SNAPPY"}
    assert parquet.read().to_pylist() == rows_to_table([ROW, {**ROW, "order_id": "ord-2"}]).to_pylist()


def test_json_lines_are_joined_as_delivered_and_gzipped() -> None:
    """Each line already ends in its delimiter (AppendDelimiterToRecord): nothing is added or lost."""
    lines = [b'{"order_id": "a"}\n', b'{"order_id": "b"}\n']
    assert gzip.decompress(encode_jsonl_gzip(lines)) == b'{"order_id": "a"}\n{"order_id": "b"}\n'
    assert gzip.decompress(encode_jsonl_gzip([])) == b""


def test_decoded_numbers_keep_every_digit() -> None:
    """A float would turn 0.1 + 0.2 into 0.30000000000000004 on the way to a decimal column."""
    rows = decode_rows([json.dumps({"discount": 0.1, "order_total": 12345678901234.99}).encode()])
    assert rows == [{"discount": Decimal("0.1"), "order_total": Decimal("12345678901234.99")}]



def _one_by_one(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row converted alone, keys looked up one by one: what the column-at-once paths must equal."""
    return [rows_to_table([row]).to_pylist()[0] for row in rows]


def test_whole_columns_convert_as_each_value_alone_would() -> None:
    """Rows sharing keys are transposed in C and their decimals and timestamps converted by pyarrow;
    rows that differ, ints in a decimal column and second-precision text must give the very same table."""
    rows = [ROW, {**ROW, "order_id": "ord-2", "unit_price": 5, "order_ts": "2026-01-05T09:58:11Z",
                  "discount": Decimal("-0.00"), "order_total": Decimal("1E+2")}]
    assert rows_to_table(rows).to_pylist() == _one_by_one(rows)
    uneven = [*rows, {"order_id": "ord-3", "event_type": "REMOVE", "is_deleted": True},
              {**ROW, "extra": 1, "quantity": None}]
    assert rows_to_table(uneven).to_pylist() == _one_by_one(uneven)


@pytest.mark.parametrize("changes", [{"unit_price": Decimal("1.234")}, {"event_ts": "2026-01-05T09:58:11.8715Z"},
                                     {"event_ts": "2026-02-30T00:00:00Z"}, {"order_total": Decimal("1E+20")}])
def test_a_column_pyarrow_refuses_is_refused_with_the_value_by_value_message(changes: dict[str, Any]) -> None:
    with pytest.raises(ConversionError) as whole:
        rows_to_table([ROW, {**ROW, **changes}])
    with pytest.raises(ConversionError) as alone:
        check_row({**ROW, **changes})
    assert str(whole.value) == str(alone.value)


def test_decode_rows_reads_bytes_as_json_loads_does() -> None:
    lines = [b'{"a":1.50,"b":"\xc3\xa9"}\n', "\ufeff{\"a\":2}".encode("utf-8"), '{"a":3}'.encode("utf-16")]
    assert decode_rows(lines) == [json.loads(line, parse_float=Decimal) for line in lines]
