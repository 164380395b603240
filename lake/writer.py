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
from decimal import Context, Decimal, InvalidOperation, Overflow

import pyarrow as pa
import pyarrow.parquet as pq

from lake.schema import ROW_SCHEMA


class ConversionError(ValueError):
    """A row does not fit the table schema: Firehose writes it under format-conversion-failed.

    The message is one line that starts with the column's name.
    """


# Wide enough for any decimal128 (38 digits) plus the digits a value may carry beyond its scale.
_EXACT = Context(prec=200, traps=[InvalidOperation, Overflow])
_TICKS_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}  # microseconds per unit (datetime's resolution)


def _parse_ts(name: str, unit: str, value: object) -> datetime | None:
    """ISO-8601 text -> datetime, refused if the column's unit would truncate it (no silent loss)."""
    if value is None:
        return None
    text = str(value)
    parsed = datetime.fromisoformat(text[:-1] if text.endswith("Z") else text)
    if parsed.microsecond % _TICKS_PER_UNIT[unit]:
        raise ConversionError(f"{name}: {value!r} is more precise than timestamp[{unit}] holds")
    return parsed


def _exact_decimal(name: str, kind: pa.Decimal128Type, value: object) -> Decimal | None:
    """A number -> Decimal at the column's scale, refused if that would round it or it does not fit."""
    if value is None:
        return None
    try:
        number = value if type(value) is Decimal else Decimal(str(value))
    except InvalidOperation:
        raise ConversionError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ConversionError(f"{name}: {value} is not a finite number")
    try:
        exact = number.quantize(Decimal(1).scaleb(-kind.scale), context=_EXACT)
    except (InvalidOperation, Overflow):
        exact = None
    if exact is None or exact.adjusted() >= kind.precision - kind.scale:
        raise ConversionError(f"{name}: {value} does not fit {kind}")
    if exact != number:
        raise ConversionError(f"{name}: {value} has more than {kind.scale} decimal places ({kind})")
    return exact


def _exact_int(name: str, value: object) -> object:
    """An integral Decimal or float -> int; a fraction is refused instead of truncated."""
    if type(value) is Decimal and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) in (Decimal, float):
        raise ConversionError(f"{name}: {value} is not an integer ({name} is int64)")
    return value  # int, None, or a wrong type that pyarrow refuses below


def _column(field: pa.Field, values: list[object]) -> pa.Array:
    kind = field.type
    if pa.types.is_timestamp(kind):
        values = [_parse_ts(field.name, kind.unit, v) for v in values]
    elif pa.types.is_decimal(kind):
        values = [_exact_decimal(field.name, kind, v) for v in values]
    elif pa.types.is_integer(kind) and any(type(v) is not int and v is not None for v in values):
        values = [_exact_int(field.name, v) for v in values]
    return pa.array(values, type=kind)


def rows_to_table(rows: Sequence[dict]) -> pa.Table:
    """Columns in schema order; attributes the schema does not know are dropped, missing ones null.

    A value is converted exactly or not at all: rounding a price or truncating a quantity would
    put a number in the lake that was never in the table, so that row raises ConversionError.
    """
    columns = []
    for field in ROW_SCHEMA:
        try:
            columns.append(_column(field, [row.get(field.name) for row in rows]))
        except ConversionError:
            raise
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, ArithmeticError) as exc:
            lines = str(exc).splitlines() or [type(exc).__name__]
            raise ConversionError(f"{field.name}: {lines[0]}") from exc
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
