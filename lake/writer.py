"""Turn a batch of transformed JSON rows into one S3 object body: Parquet or gzip JSON lines.

Parquet mirrors Firehose's record-format conversion (OpenX JSON in, Parquet SNAPPY out, schema
from the table); JSON lines mirror the default delivery with GZIP compression and
AppendDelimiterToRecord. https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from lake.schema import ROW_SCHEMA


class ConversionError(ValueError):
    """A row does not fit the table schema: Firehose writes it under format-conversion-failed."""


def _parse_ts(value: object) -> datetime | None:
    if value is None:
        return None
    text = str(value)
    return datetime.fromisoformat(text[:-1] if text.endswith("Z") else text)


def _column(field: pa.Field, values: list[object]) -> pa.Array:
    if pa.types.is_timestamp(field.type):
        values = [_parse_ts(v) for v in values]
    elif pa.types.is_decimal(field.type):
        scale = Decimal(1).scaleb(-field.type.scale)
        values = [None if v is None else Decimal(str(v)).quantize(scale) for v in values]
    return pa.array(values, type=field.type)


def rows_to_table(rows: Sequence[dict]) -> pa.Table:
    """Columns in schema order; attributes the schema does not know are dropped, missing ones null."""
    try:
        columns = [_column(f, [row.get(f.name) for row in rows]) for f in ROW_SCHEMA]
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, ArithmeticError) as exc:
        raise ConversionError(str(exc).splitlines()[0]) from exc
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA)


def check_row(row: dict) -> None:
    """Raise ConversionError if this single row cannot be converted (used to isolate bad rows)."""
    rows_to_table([row])


def encode_parquet(rows: Sequence[dict]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(rows_to_table(rows), sink, compression="snappy")
    return sink.getvalue()


def encode_jsonl_gzip(lines: Sequence[bytes]) -> bytes:
    """Lines already carry their delimiter (AppendDelimiterToRecord), so they are joined as is."""
    return gzip.compress(b"".join(lines), compresslevel=6)


def decode_rows(lines: Sequence[bytes]) -> list[dict]:
    return [json.loads(line, parse_float=Decimal) for line in lines]
