"""Turn a batch of transformed JSON rows into one S3 object body: Parquet or gzip JSON lines.

Parquet mirrors Firehose's record-format conversion (OpenX JSON in, Parquet SNAPPY out) with the
schema the caller passes: the Glue table's current columns (lake/glue_schema.py TableSchema), the
row contract (lake/schema.py) by default. As the OpenX JSON SerDe does, JSON keys match columns
case-insensitively (CaseInsensitive, default true), attributes the schema lacks are dropped,
missing ones are null, and a value is converted as its column declares: a struct, map or array
column takes a nested JSON value field by field; a string column takes any value, a nested one as
its compact JSON text. Unlike a lenient SerDe, a value is converted exactly or not at all: a
fraction for an integer column, digits beyond a decimal's scale or a timestamp finer than the
column are refused (ConversionError naming the column), never rounded or truncated.
JSON lines mirror the default delivery with GZIP compression and AppendDelimiterToRecord.
https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html
https://docs.aws.amazon.com/firehose/latest/APIReference/API_OpenXJsonSerDe.html
"""

from __future__ import annotations

import gzip
import io
import json
import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation, Overflow

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
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
        raise ConversionError(f"{name}: {value} is not an integer ({name} is an integer column)")
    return value  # int, None, or a wrong type that pyarrow refuses below


def _json_text(value: object) -> str:
    """A decoded JSON value back to compact JSON text, numbers exactly as they were written."""
    if isinstance(value, Mapping):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" + _json_text(v)
                              for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if type(value) is Decimal:
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _text(value: object) -> object:
    """What a string column holds for a JSON value: strings as they are, anything else as its JSON text."""
    if value is None or type(value) is str:
        return value
    return _json_text(value)


def _value(name: str, kind: pa.DataType, value: object) -> object:
    """One value for a column (or a field of one) of type `kind`, converted exactly; nested types field by field."""
    if value is None:
        return None
    if pa.types.is_struct(kind):
        if not isinstance(value, Mapping):
            raise ConversionError(f"{name}: {_show(value)} is not a JSON object ({name} is {kind})")
        fields = _lowered(value)
        return {f.name: _value(f"{name}.{f.name}", f.type, fields.get(f.name.lower())) for f in kind}
    if pa.types.is_map(kind):
        if not isinstance(value, Mapping):
            raise ConversionError(f"{name}: {_show(value)} is not a JSON object ({name} is {kind})")
        return [(_value(f"{name} key", kind.key_type, k), _value(f"{name}.{k}", kind.item_type, v))
                for k, v in value.items()]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if not isinstance(value, list):
            raise ConversionError(f"{name}: {_show(value)} is not a JSON array ({name} is {kind})")
        return [_value(f"{name}[{i}]", kind.value_type, v) for i, v in enumerate(value)]
    if pa.types.is_timestamp(kind):
        return _parse_ts(name, kind.unit, value)
    if pa.types.is_decimal(kind):
        return _exact_decimal(name, kind, value)
    if pa.types.is_integer(kind):
        return _exact_int(name, value)
    if pa.types.is_floating(kind) and type(value) is Decimal:
        return float(value)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _text(value)
    return value


def _show(value: object) -> str:
    text = _json_text(value) if isinstance(value, Mapping | list) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# The transform's timestamp text (ISO-8601, UTC, at most milliseconds): pyarrow parses a column of it in
# C++; anything else (or anything it refuses) takes the value-by-value path with its exact messages.
_ISO_MS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z$"


def _timestamps_at_once(kind: pa.TimestampType, values: list[object]) -> pa.Array | None:
    """A timestamp[ms] column of the transform's text, parsed by pyarrow; None when any value is not such text."""
    if not _is_naive_ms(kind):
        return None
    try:
        return _iso_ms_column(kind, pa.array(values, type=pa.string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _is_naive_ms(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) and kind.unit == "ms" and kind.tz is None


def _iso_ms_column(kind: pa.DataType, text: pa.Array) -> pa.Array | None:
    """A string array of the transform's timestamp text -> `kind` (timestamp[ms], naive UTC); None otherwise."""
    if not _is_naive_ms(kind):
        return None
    try:
        if not pc.all(pc.match_substring_regex(text, _ISO_MS), min_count=0).as_py():  # nulls are nulls
            return None
        return pc.utf8_slice_codeunits(text, 0, -1).cast(kind)  # without the Z: UTC, naive, as _parse_ts
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _decimals_at_once(kind: pa.Decimal128Type, values: list[object]) -> pa.Array | None:
    """A decimal column of Decimals and ints, converted by pyarrow, which refuses a value it would round or
    that does not fit (as _exact_decimal does); None on any such value, so that path names the row's problem.
    A Decimal with more than 38 places never reaches pyarrow (see _WITHIN_ARROW_SCALE)."""
    if not all(type(v) is int or v is None or (type(v) is Decimal and _within_arrow_scale(v)) for v in values):
        return None
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ArithmeticError):
        return None


# pyarrow 26 rescales a decimal of more than 38 places by reading past the end of a table: 1E-41 converts to
# 0.00 (or to what that memory holds), 1E-2147483647 crashes the process. Such values take the per-value path.
_WITHIN_ARROW_SCALE = -38


def _within_arrow_scale(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return type(exponent) is int and exponent >= _WITHIN_ARROW_SCALE


def _column(field: pa.Field, values: list[object]) -> pa.Array:
    kind = field.type
    # Vectorized first (pyarrow in C++): the per-value checks below were most of the Parquet encoding's CPU.
    fast = (_timestamps_at_once(kind, values) if pa.types.is_timestamp(kind)
            else _decimals_at_once(kind, values) if pa.types.is_decimal(kind) else None)
    if fast is not None:
        return fast
    if pa.types.is_timestamp(kind):
        values = [_parse_ts(field.name, kind.unit, v) for v in values]
    elif pa.types.is_decimal(kind):
        values = [_exact_decimal(field.name, kind, v) for v in values]
    elif pa.types.is_integer(kind) and any(type(v) is not int and v is not None for v in values):
        values = [_exact_int(field.name, v) for v in values]
    elif pa.types.is_nested(kind) or pa.types.is_floating(kind):
        values = [_value(field.name, kind, v) for v in values]
    elif pa.types.is_string(kind):
        try:  # the common case: every value is a string already
            return pa.array(values, type=kind)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            values = [_text(v) for v in values]
    return pa.array(values, type=kind)


def _lowered(row: Mapping[str, object]) -> Mapping[str, object]:
    """The row with its keys lowercased (OpenX CaseInsensitive); the row itself when they already are."""
    if all(type(k) is str and k == k.lower() for k in row):
        return row
    return {str(k).lower(): v for k, v in row.items()}


def _columns_of(rows: Sequence[Mapping[str, object]], names: list[str]) -> dict[str, list[object]]:
    """Each named column's values, None where a row lacks the key.

    Rows of one delivery usually share their keys: then one C-level pass (itemgetter, zip) transposes
    them instead of a dict lookup per row and column in Python."""
    if rows:
        keys = rows[0].keys()
        present = [name for name in names if name in keys]
        if len(present) > 1 and all(row.keys() == keys for row in rows):
            found = dict(zip(present, map(list, zip(*map(operator.itemgetter(*present), rows), strict=True)),
                             strict=True))
            return {name: found[name] if name in found else [None] * len(rows) for name in names}
    return {name: [row.get(name) for row in rows] for name in names}


def rows_to_table(rows: Sequence[Mapping[str, object]], schema: pa.Schema = ROW_SCHEMA) -> pa.Table:
    """Columns in schema order; attributes the schema does not know are dropped, missing ones null.

    A value is converted exactly or not at all: rounding a price or truncating a quantity would
    put a number in the lake that was never in the table, so that row raises ConversionError.
    """
    names: set[object] = set()
    for row in rows:
        names.update(row)
    if any(type(n) is not str or n != n.lower() for n in names):
        rows = [_lowered(row) for row in rows]
    columns = []
    by_name = _columns_of(rows, schema.names)
    for field in schema:
        try:
            columns.append(_column(field, by_name[field.name]))
        except ConversionError:
            raise
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, ArithmeticError) as exc:
            lines = str(exc).splitlines() or [type(exc).__name__]
            raise ConversionError(f"{field.name}: {lines[0]}") from exc
    return pa.Table.from_arrays(columns, schema=schema)


def check_row(row: Mapping[str, object], schema: pa.Schema = ROW_SCHEMA) -> None:
    """Raise ConversionError if this single row cannot be converted (used to isolate bad rows)."""
    rows_to_table([row], schema)


def encode_parquet(rows: Sequence[Mapping[str, object]], schema: pa.Schema = ROW_SCHEMA) -> bytes:
    return parquet_bytes(rows_to_table(rows, schema))


def parquet_bytes(table: pa.Table) -> bytes:
    """One Parquet object, SNAPPY-compressed as Firehose's record-format conversion writes it."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


# The column types whose conversion pyarrow's JSON reader does exactly as rows_to_table does (or refuses):
# strings, 64-bit integers, booleans, decimals (with a full validation: the reader does not check their
# precision) and the transform's timestamp text (read as strings, then as rows_to_table reads them).
_READ_AT_ONCE = (pa.types.is_string, pa.types.is_int64, pa.types.is_boolean, pa.types.is_decimal128)


# A number in exponent notation, as a JSON number or as a string the reader would take for one, or an escaped
# ASCII character (which could spell one): the reader's decimal parsing, like pa.array's, misreads a scale
# beyond 38 ("1e-41" reads as 0.00, "1e-10000000" crashes the process) and takes "1e+-1" for 0.1. Such a
# body goes row by row; a name that merely looks like one ("3e4") costs only that. Searched by RE2 in
# pyarrow (0.001 ms a row): Python's re took as long as the whole row-by-row path.
_EXPONENT = (r'[:,\[][ \t\r\n]*-?[0-9]+(?:\.[0-9]*)?[eE]'
             r'|"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]*[0-9]*"'
             r'|\\u00[2-7]')


def _has_exponent(body: bytes) -> bool:
    return bool(pc.any(pc.match_substring_regex(pa.array([body], pa.binary()), _EXPONENT)).as_py())


def _braced(line: bytes) -> bool:
    """Whether a line, blanks aside, starts with { and ends with }. The reader skips a blank line (json.loads
    refuses it), takes a null line for a row of nulls, and crashes the process on a null that opens its
    input (https://github.com/apache/arrow/issues/47409): a line must open as an object to be read at once."""
    text = line.strip()
    return text[:1] == b"{" and text[-1:] == b"}"


def table_from_lines(lines: Sequence[bytes], schema: pa.Schema) -> pa.Table | None:
    """The table rows_to_table(decode_rows(lines), schema) builds, read in C++ by pyarrow's JSON reader;
    None whenever that reader might differ, so the caller takes the row-by-row path, which names the problem.

    Why: decoding each line to Python objects and building the columns from them was a quarter of the
    firehose runner's CPU. The reader is used only where it agrees (tests/unit/lake/test_lines_at_once.py holds
    the two paths equal, value by value): every line is one JSON object in UTF-8, its keys are the columns'
    names exactly (a key in another case, an attribute the table lacks or one given twice: None), each
    value has its column's JSON type (a number for a string column, say, is JSON text on the other path),
    and no number is in exponent notation (_EXPONENT).
    """
    if not lines or not all(_braced(line) for line in lines):
        return None
    if any(name != name.lower() for name in schema.names):
        return None
    read_as: list[pa.Field] = []
    for field in schema:
        if _is_naive_ms(field.type):
            read_as.append(pa.field(field.name, pa.string()))
        elif any(accepts(field.type) for accepts in _READ_AT_ONCE):
            read_as.append(field)
        else:
            return None
    body = b"\n".join(lines)
    if _has_exponent(body):
        return None
    try:
        table = pj.read_json(io.BytesIO(body),
                             read_options=pj.ReadOptions(use_threads=False, block_size=len(body) + 1),
                             parse_options=pj.ParseOptions(explicit_schema=pa.schema(read_as),
                                                           unexpected_field_behavior="error"))
        table.validate(full=True)  # UTF-8 and decimal precision, which the reader leaves unchecked
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != len(lines):  # each line reads as one row at least: one held two values
        return None
    columns = []
    for field, column in zip(schema, table.columns, strict=True):
        array = column.combine_chunks()
        if field.type != array.type:
            array = _iso_ms_column(field.type, array)
            if array is None:
                return None
        columns.append(array)
    return pa.Table.from_arrays(columns, schema=schema)


def encode_fitting(rows: Sequence[Mapping[str, object]],
                   schema: pa.Schema = ROW_SCHEMA) -> tuple[bytes | None, list[tuple[int, str]]]:
    """Parquet of the rows that fit `schema` (None when none does), and (index, reason) of each that does not,
    as Firehose sets a row aside on its own: all rows at once, row by row only when one fails (rare)."""
    try:
        return encode_parquet(rows, schema), []
    except ConversionError:
        unfit = []
        for index, row in enumerate(rows):
            try:
                check_row(row, schema)
            except ConversionError as exc:
                unfit.append((index, str(exc)))
        refused = {index for index, _ in unfit}
        fit = [row for index, row in enumerate(rows) if index not in refused]
        return (encode_parquet(fit, schema) if fit else None), unfit


def encode_jsonl_gzip(lines: Sequence[bytes]) -> bytes:
    """Lines already carry their delimiter (AppendDelimiterToRecord), so they are joined as is."""
    return gzip.compress(b"".join(lines), compresslevel=6)


# json.loads(line, parse_float=Decimal) builds a decoder per call; this one is built once (it is immutable).
_ROW_DECODER = json.JSONDecoder(parse_float=Decimal)


def decode_rows(lines: Sequence[bytes]) -> list[dict]:
    """Each line as json.loads(line, parse_float=Decimal) reads it (its encoding detected as json.loads does)."""
    return [_ROW_DECODER.decode(line.decode(json.detect_encoding(line), "surrogatepass")) for line in lines]
