"""The Firehose transform Lambda: one DynamoDB change event in, one flat JSON lake row out.

Firehose hands the function a batch of Kinesis records; each one carries the DynamoDB stream
record that the EventBridge Pipe put on Kinesis. For every record we return, in the same order
and under the same `recordId`, either `Ok` with the row (base64 JSON, no trailing newline: the
delivery stream's AppendDelimiterToRecord processor adds it) and the year/month/day partition
keys that the `!{partitionKeyFromLambda:...}` prefix needs, or `ProcessingFailed` with the
original data, so Firehose writes it under `errors/processing-failed/`. We never use `Dropped`:
a record we cannot read must stay visible.

The pieces, each pure and small, in the order a record meets them:
    decode_record   base64 -> UTF-8 -> JSON object (the stream record)
    unmarshal       DynamoDB JSON ({"N": "19.99"}) -> plain values (Decimal("19.99"))
    build_row       stream record + arrival time -> the row dict, checked against ROW_CONTRACT
    partition_keys  event time -> {"year", "month", "day"}
    encode_row      row -> compact JSON text, numbers written exactly
    transform_record / failure_reason / handler: the Lambda contract around them.

The row contract (ROW_CONTRACT) is lake/schema.py ROW_SCHEMA written as plain data, because this
file may import nothing of the project (a unit test proves the two equal, field by field). A value
the lake cannot hold exactly (a quantity of 2.5 in an int64 column, a price of 19.999 in a
decimal(12, 2), a time finer than milliseconds) fails its record here, with the field, the value and
the type in the reason, instead of being truncated or rounded by the Parquet conversion. A REMOVE
needs only its key and the event fields: an old-image attribute of the wrong type becomes null (and
is logged), so no type problem in an attribute the delete does not need can keep a deleted order
alive in the lake. Firehose's Parquet conversion reads JSON keys case-insensitively, so an attribute
`Quantity` is checked (and written) as the lake column quantity, and two attributes that would fill one
column fail their record (a REMOVE: that column is null) rather than one of them winning silently.

Numbers never pass through float: an N is an int when its text has no fraction, else a Decimal,
and the encoder writes either one's exact text (json.dumps cannot write a Decimal, so we
serialise ourselves, with the C string quoting from the json module doing the heavy part).

Standard library only: this file is the whole Lambda zip.

AWS references:
- Firehose data transformation and its record contract:
  https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html
  https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html
- Partition keys returned by the Lambda (dynamic partitioning):
  https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-partitioning-keys.html
- The event a Pipe receives from a DynamoDB stream (what reaches Kinesis):
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-dynamodb.html
- Stream record and AttributeValue shapes:
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_Record.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_StreamRecord.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_AttributeValue.html
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring as _quote
from typing import Any

OK = "Ok"
PROCESSING_FAILED = "ProcessingFailed"
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})

# DynamoDB numbers: up to 38 significant digits, magnitude from 1E-130 to 9.99...E+125.
_MAX_ADJUSTED_EXPONENT = 125
_MIN_ADJUSTED_EXPONENT = -130
_MAX_INTEGER_DIGITS = _MAX_ADJUSTED_EXPONENT + 1
# What datetime can hold, years 1-9999, in epoch seconds.
_EPOCH = datetime(1970, 1, 1)
_FIRST_SECOND = -62135596800
_END_SECOND = 253402300800


# The lake's row contract: lake/schema.py ROW_SCHEMA as (column, Arrow type text), in schema order.
ITEM_CONTRACT: tuple[tuple[str, str], ...] = (
    ("order_id", "string"),
    ("customer_id", "string"),
    ("customer_name", "string"),
    ("customer_region", "string"),
    ("product_id", "string"),
    ("product_name", "string"),
    ("category", "string"),
    ("quantity", "int64"),
    ("unit_price", "decimal128(12, 2)"),
    ("discount", "decimal128(5, 4)"),
    ("order_total", "decimal128(14, 2)"),
    ("currency", "string"),
    ("status", "string"),
    ("payment_method", "string"),
    ("channel", "string"),
    ("order_ts", "timestamp[ms]"),
    ("updated_ts", "timestamp[ms]"),
)
EVENT_CONTRACT: tuple[tuple[str, str], ...] = (
    ("event_type", "string"),
    ("event_id", "string"),
    ("sequence_number", "string"),
    ("event_ts", "timestamp[ms]"),
    ("arrival_ts", "timestamp[ms]"),
    ("is_deleted", "bool"),
)
ROW_CONTRACT = ITEM_CONTRACT + EVENT_CONTRACT
KEY_FIELD = "order_id"  # the table's hash key: every row must carry it, a REMOVE included


class RecordError(ValueError):
    """A record we cannot turn into a row; its message is the one-line reason we log."""


class BadAttributeValue(RecordError):
    """A DynamoDB attribute value we cannot read; `path` grows as the error climbs out of M and L."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str | int] = []

    def __str__(self) -> str:
        where = ""
        for part in self.path:
            where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else part
        return f"{where}: {self.problem}" if where else self.problem


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


# Floats in a stream record (only ApproximateCreationDateTime has one) become exact Decimals.
# json.loads would build a new decoder per call for these options: build it once (it is immutable).
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


# --- decode_record ---------------------------------------------------------------------------


def decode_record(data: str | bytes) -> dict[str, Any]:
    """Firehose `data` (base64) -> the stream record as a dict, or RecordError naming the step that failed.

    Each step is checked on its own (strict base64, strict UTF-8, JSON, an object) so the reason
    tells the reader which producer bug to look for.
    """
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError, TypeError) as error:
        raise RecordError(f"data: not valid base64 ({error})") from None
    if not raw:
        raise RecordError("data: empty, expected a base64 DynamoDB stream record")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecordError(f"data: not UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        record = _DECODER.decode(text)
    except ValueError as error:
        raise RecordError(f"data: not JSON ({error})") from None
    if type(record) is not dict:
        raise RecordError(f"data: JSON {type(record).__name__}, expected an object (a DynamoDB stream record)")
    return record


# --- unmarshal -------------------------------------------------------------------------------


def unmarshal(value: Any) -> Any:
    """One DynamoDB AttributeValue ({"S": "x"}, {"N": "1.5"}, ...) -> the plain value.

    S -> str, N -> int or Decimal (exact), BOOL -> bool, NULL -> None, M -> dict, L -> list,
    SS/NS/BS -> lists, B/BS stay base64 text. Anything else raises BadAttributeValue.
    """
    try:
        [(kind, raw)] = value.items()
    except (AttributeError, ValueError):
        raise BadAttributeValue(f"expected one {{type: value}} pair, got {_show(value)}") from None
    if kind == "S" and type(raw) is str:  # most attributes: answer before the table lookup
        return raw
    convert = _CONVERTERS.get(kind)
    if convert is None:
        raise BadAttributeValue(f"unknown type descriptor {_show(kind)}")
    return convert(raw)


def unmarshal_image(image: Any) -> dict[str, Any]:
    """A whole item (NewImage, OldImage, Keys or an M): name -> AttributeValue becomes name -> value."""
    if type(image) is not dict:
        raise BadAttributeValue(f"expected a map of attributes, got {_show(image)}")
    item = {}
    for name, value in image.items():
        # Most attributes are {"S": text}, or {"N": "19.99"} (a plain fraction): answered inline (a call per
        # attribute was a third of build_row); anything else, and any error, goes through unmarshal.
        if type(value) is dict and len(value) == 1:
            text = value.get("S")
            if type(text) is str:
                item[name] = text
                continue
            text = value.get("N")
            if type(text) is str and _PLAIN_FRACTION(text):  # "19.99": _number's first case
                item[name] = Decimal(text)
                continue
        try:
            item[name] = unmarshal(value)
        except BadAttributeValue as error:
            error.path.insert(0, name)
            raise
    return item


def _string(raw: Any) -> str:
    if type(raw) is not str:
        raise BadAttributeValue(f"S value must be a string, got {_show(raw)}")
    return raw


# ASCII digits, a point and at least one digit after it, at most 30 on either side: Decimal() takes it
# as it is, its exponent is negative and its magnitude within DynamoDB's.
_PLAIN_FRACTION = re.compile(r"-?[0-9]{1,30}\.[0-9]{1,30}").fullmatch


def _number(raw: Any) -> int | Decimal:
    """N text -> int when it has no fractional part, else Decimal: exact, never float."""
    if type(raw) is str and _PLAIN_FRACTION(raw):  # "19.99": finite, in range, a fraction: no more checks
        return Decimal(raw)
    if type(raw) is str and raw.isascii():
        if raw.isdigit():  # the common case: a non-negative integer
            if len(raw) <= _MAX_INTEGER_DIGITS:
                return int(raw)
        else:
            try:
                number = Decimal(raw)
            except InvalidOperation:
                number = None
            # Decimal() also accepts NaN, Infinity, surrounding blanks and digit underscores: refuse them.
            if (
                number is not None
                and number.is_finite()
                and "_" not in raw
                and raw.strip() == raw
                and (not number or _MIN_ADJUSTED_EXPONENT <= number.adjusted() <= _MAX_ADJUSTED_EXPONENT)
            ):
                return int(number) if number.as_tuple().exponent >= 0 else number
    if type(raw) is not str:
        raise BadAttributeValue(f"N value must be a string (the number's text), got {_show(raw)}")
    raise BadAttributeValue(f"N value {_show(raw)} is not a DynamoDB number")


def _boolean(raw: Any) -> bool:
    if type(raw) is not bool:
        raise BadAttributeValue(f"BOOL value must be true or false, got {_show(raw)}")
    return raw


def _null(raw: Any) -> None:
    if raw is not True:
        raise BadAttributeValue(f"NULL value must be true, got {_show(raw)}")
    return None


def _binary(raw: Any) -> str:
    """B stays base64 text (JSON has no bytes); we only check that it is base64."""
    try:
        binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError, TypeError):
        raise BadAttributeValue(f"B value {_show(raw)} is not base64 text") from None
    return raw


def _map(raw: Any) -> dict[str, Any]:
    if type(raw) is not dict:
        raise BadAttributeValue(f"M value must be an object, got {_show(raw)}")
    return unmarshal_image(raw)


def _list(raw: Any) -> list[Any]:
    if type(raw) is not list:
        raise BadAttributeValue(f"L value must be a list, got {_show(raw)}")
    values = []
    for index, value in enumerate(raw):
        try:
            values.append(unmarshal(value))
        except BadAttributeValue as error:
            error.path.insert(0, index)
            raise
    return values


def _set_of(kind: str, convert: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    """SS / NS / BS: a JSON list of the member's raw form, converted member by member."""

    def convert_set(raw: Any) -> list[Any]:
        if type(raw) is not list:
            raise BadAttributeValue(f"{kind} value must be a list, got {_show(raw)}")
        values = []
        for index, member in enumerate(raw):
            try:
                values.append(convert(member))
            except BadAttributeValue as error:
                error.path.insert(0, index)
                raise
        return values

    return convert_set


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "S": _string,
    "N": _number,
    "BOOL": _boolean,
    "NULL": _null,
    "M": _map,
    "L": _list,
    "SS": _set_of("SS", _string),
    "NS": _set_of("NS", _number),
    "BS": _set_of("BS", _binary),
    "B": _binary,
}


def _show(value: Any) -> str:
    """A short, one-line rendering of a bad value for a log line."""
    text = str(value) if type(value) is Decimal else repr(value)  # JSON numbers arrive as Decimal
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: Any) -> str:
    return "missing" if value is None else f"got {_show(value)}"


# --- the row contract: is a value exactly what its lake column holds? ---------------------------

_BAD = object()  # what a check returns for a value its column cannot hold exactly
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _check_string(value: Any) -> Any:
    return value if type(value) is str else _BAD


def _check_bool(value: Any) -> Any:
    return value if type(value) is bool else _BAD


def _check_int64(value: Any) -> Any:
    """An int in range; an integral Decimal (N "2.0") becomes that int. A fraction is never truncated."""
    if type(value) is Decimal and value == value.to_integral_value():
        value = int(value)
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return _BAD


def _decimal_check(precision: int, scale: int) -> Callable[[Any], Any]:
    """decimal128(p, s): at most s digits after the point that are not zero, at most p - s before it."""
    before = precision - scale
    limit = 10**before

    def check(value: Any) -> Any:
        if type(value) is int:
            return value if -limit < value < limit else _BAD
        if type(value) is not Decimal:
            return _BAD
        _, digits, exponent = value.as_tuple()
        beyond = -scale - exponent  # digits past the scale: all must be zeros, or rounding would change it
        if beyond > 0 and any(digits[-beyond:]):
            return _BAD
        return value if not any(digits) or value.adjusted() < before else _BAD

    return check


def _timestamp_check(ticks: int) -> Callable[[Any], Any]:
    """ISO-8601 text that the writer parses exactly as it does (a trailing Z is UTC), no finer than the unit."""

    def check(value: Any) -> Any:
        if type(value) is not str:
            return _BAD
        try:
            parsed = datetime.fromisoformat(value[:-1] if value.endswith("Z") else value)
        except ValueError:
            return _BAD
        return _BAD if parsed.microsecond % ticks else value

    return check


_UNIT_NAMES = {"s": "second", "ms": "millisecond", "us": "microsecond"}


def _compile(arrow_type: str) -> tuple[Callable[[Any], Any], str]:
    """An Arrow type text from the contract -> (check, what the reason says is expected)."""
    if arrow_type == "string":
        return _check_string, "string"
    if arrow_type == "bool":
        return _check_bool, "bool (true or false)"
    if arrow_type == "int64":
        return _check_int64, f"int64 (an integer from {_INT64_MIN} to {_INT64_MAX})"
    if arrow_type.startswith("decimal128(") and arrow_type.endswith(")"):
        precision, scale = (int(part) for part in arrow_type[11:-1].split(","))
        before = precision - scale
        digits = f"{before} digit" if before == 1 else f"{before} digits"
        return _decimal_check(precision, scale), (
            f"{arrow_type} (at most {scale} decimal places, at most {digits} before the point)"
        )
    ticks = {"timestamp[s]": 1_000_000, "timestamp[ms]": 1_000, "timestamp[us]": 1}.get(arrow_type)
    if ticks is not None:
        unit = arrow_type[10:-1]
        return _timestamp_check(ticks), f"{arrow_type} (ISO-8601 text, at most {_UNIT_NAMES[unit]} precision)"
    raise ValueError(f"ROW_CONTRACT: no check for Arrow type {arrow_type!r}")


# The item columns the transform checks; the event columns it writes itself, always in contract.
_ITEM_CHECKS = tuple((name, *_compile(kind)) for name, kind in ITEM_CONTRACT if name != KEY_FIELD)
_KEY_EXPECTED = "a non-empty string (the table's key)"


def _check_key(row: dict[str, Any], image_name: str) -> None:
    key = row.get(KEY_FIELD)
    if type(key) is not str or not key:
        shown = _show(key) if KEY_FIELD in row else None
        got = "missing" if shown is None else f"got {shown}"
        raise RecordError(f"dynamodb.{image_name}.{KEY_FIELD}: {got}, expected {_KEY_EXPECTED}")


def _mismatches(row: dict[str, Any], image_name: str,
                written: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Check the row's item columns against the contract; integral int64 values are normalised in place.

    Returns (column, reason) for each value its lake column cannot hold exactly; null always fits. The
    reason names the attribute as the item wrote it (`written`: lake column -> attribute name).
    """
    found = []
    for name, check, expected in _ITEM_CHECKS:
        value = row.get(name)
        if value is None or (check is _check_string and type(value) is str):  # most columns: no call
            continue
        checked = check(value)
        if checked is _BAD:
            attribute = (written or {}).get(name, name)
            found.append((name, f"dynamodb.{image_name}.{attribute}: got {_show(value)}, expected {expected}"))
        elif checked is not value:
            row[name] = checked
    return found


_CONTRACT_NAMES = frozenset(name for name, _ in ROW_CONTRACT)


def _fold_case(row: dict[str, Any], image_name: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Firehose's JSON-to-Parquet conversion reads keys case-insensitively (OpenXJsonSerDe, CaseInsensitive
    true by default), so `Quantity` fills the lake column quantity: such an attribute is renamed to the
    column's name here, in place, so the contract checks it. Returns (lake column -> attribute name as
    written, (column, reason) for each column two attributes would fill)."""
    written: dict[str, str] = {}
    clashes: list[tuple[str, str]] = []
    for name in [k for k in row if k not in _CONTRACT_NAMES and k.lower() in _CONTRACT_NAMES]:
        column = name.lower()
        value = row.pop(name)
        if column in row:
            clashes.append((column, f"dynamodb.{image_name}: {name!r} and {written.get(column, column)!r} both "
                                    f"fill the lake column {column} (Firehose's conversion reads keys "
                                    "case-insensitively); keep one of them"))
        else:
            row[column] = value
            written[column] = name
    return written, clashes


# --- build_row -------------------------------------------------------------------------------


def build_row(stream_record: Mapping[str, Any], arrival_ms: int, notes: list[str] | None = None) -> dict[str, Any]:
    """A DynamoDB stream record -> the lake row: the item's attributes, then the event fields.

    INSERT and MODIFY take the new image, and every lake column in it must hold its value exactly
    (RecordError otherwise). REMOVE takes the old image (the item as it was when deleted) with the
    stream's Keys over it, or only the Keys when the stream carried no old image; it needs only the
    key: an old attribute that cannot be read or does not fit its column becomes null, and the
    reason is appended to `notes`. The event fields come last and win over an item attribute of
    the same name.
    """
    event_name = stream_record.get("eventName")
    if event_name not in EVENT_NAMES:
        raise RecordError(f"eventName: {_got(event_name)}, expected INSERT, MODIFY or REMOVE")
    event_id = stream_record.get("eventID")
    if type(event_id) is not str or not event_id:
        raise RecordError(f"eventID: {_got(event_id)}, expected a non-empty string")
    change = stream_record.get("dynamodb")
    if type(change) is not dict:
        raise RecordError(f"dynamodb: {_got(change)}, expected an object (the StreamRecord)")
    sequence_number = change.get("SequenceNumber")
    if type(sequence_number) is not str or not (sequence_number.isdigit() and sequence_number.isascii()):
        raise RecordError(f"dynamodb.SequenceNumber: {_got(sequence_number)}, expected a string of decimal digits")
    event_ts = _event_ts(change.get("ApproximateCreationDateTime"))
    arrival_ts = _arrival_ts(arrival_ms)

    if event_name == "REMOVE":
        row = _removed_item(change, notes)
    else:
        if "NewImage" not in change:
            raise RecordError(
                f"dynamodb.NewImage: missing on a {event_name} record "
                "(the table's StreamViewType must be NEW_IMAGE or NEW_AND_OLD_IMAGES)"
            )
        row = _strict_image(change, "NewImage")
        written, clashes = _fold_case(row, "NewImage")
        _check_key(row, "NewImage")
        bad = clashes or _mismatches(row, "NewImage", written)
        if bad:
            raise RecordError(bad[0][1])

    row["event_type"] = event_name
    row["event_id"] = event_id
    row["sequence_number"] = sequence_number
    row["event_ts"] = event_ts
    row["arrival_ts"] = arrival_ts
    row["is_deleted"] = event_name == "REMOVE"
    return row


def _strict_image(change: Mapping[str, Any], image_name: str) -> dict[str, Any]:
    try:
        return unmarshal_image(change[image_name])
    except BadAttributeValue as error:
        error.path[:0] = ["dynamodb", image_name]
        raise


def _removed_item(change: Mapping[str, Any], notes: list[str] | None) -> dict[str, Any]:
    """The deleted item: its key, strictly; every other old attribute as far as it can be read, else null."""
    if "OldImage" not in change and "Keys" not in change:
        raise RecordError("dynamodb.OldImage: missing on a REMOVE record, and no Keys either")
    dropped = []
    row: dict[str, Any] = {}
    old = change.get("OldImage")
    if "OldImage" in change and type(old) is not dict:
        problem = f"dynamodb.OldImage: expected a map of attributes, got {_show(old)}"
        if "Keys" not in change:
            raise RecordError(problem)
        dropped.append(f"{problem}; only the Keys are kept")
        old = {}
    for name, value in (old or {}).items():
        try:
            row[name] = unmarshal(value)
        except BadAttributeValue as error:
            error.path[:0] = ["dynamodb", "OldImage", name]
            dropped.append(str(error))
            row[name] = None
        except RecursionError:
            dropped.append(f"dynamodb.OldImage.{name}: nested too deep to unmarshal")
            row[name] = None
    written, clashes = _fold_case(row, "OldImage")
    key_image = "OldImage"
    if "Keys" in change:
        row.update(_strict_image(change, "Keys"))
        key_image = "Keys"
    for name, reason in clashes:
        if name == KEY_FIELD and key_image == "OldImage":  # no Keys to settle which one is the key
            raise RecordError(reason)
    clashes = [(name, reason) for name, reason in clashes if name != KEY_FIELD]  # the stream's Keys decide it
    _check_key(row, key_image)
    for name, reason in clashes + _mismatches(row, "OldImage", written):
        row[name] = None
        dropped.append(reason)
    if notes is not None:
        notes.extend(f"{reason}; written as null, the delete still lands" for reason in dropped)
    return row


def _event_ts(seconds: Any) -> str:
    """ApproximateCreationDateTime (epoch seconds, maybe fractional) -> event_ts, truncated to the ms, exactly."""
    if type(seconds) is float:  # a caller that parsed with plain json.loads: take its shortest text
        seconds = Decimal(repr(seconds))
    if type(seconds) is int or (type(seconds) is Decimal and seconds.is_finite()):
        if _FIRST_SECOND <= seconds < _END_SECOND:
            return format_timestamp(math.floor(seconds * 1000))
        raise RecordError(f"dynamodb.ApproximateCreationDateTime: {_show(seconds)} s is outside years 1-9999")
    raise RecordError(f"dynamodb.ApproximateCreationDateTime: {_got(seconds)}, expected epoch seconds (a number)")


def _arrival_ts(millis: Any) -> str:
    """The Firehose record's approximateArrivalTimestamp (epoch ms) -> arrival_ts."""
    if type(millis) is int:
        try:
            return format_timestamp(millis)
        except OverflowError:
            raise RecordError(f"approximateArrivalTimestamp: {_show(millis)} ms is outside years 1-9999") from None
    raise RecordError(f"approximateArrivalTimestamp: {_got(millis)}, expected epoch milliseconds (an integer)")


def format_timestamp(epoch_ms: int) -> str:
    """Epoch milliseconds -> 'YYYY-MM-DDTHH:MM:SS.sssZ' (UTC), the lake's timestamp text.

    Raises OverflowError outside years 1-9999 (what datetime can hold). The text up to the second
    comes from a small cache: a batch's records share their seconds, and the event and arrival
    times of one record are seconds apart.
    """
    second, millis = divmod(epoch_ms, 1000)
    return f"{_second_text(second)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    return (_EPOCH + timedelta(seconds=second)).isoformat(timespec="seconds")


# --- partition_keys --------------------------------------------------------------------------


def partition_keys(event_ts: str) -> dict[str, str]:
    """The row's event_ts ('YYYY-MM-DDT...Z', UTC) -> Firehose partition keys year/month/day.

    Cut from the very text the row carries, so a row and its partition can never disagree.
    """
    return {"year": event_ts[0:4], "month": event_ts[5:7], "day": event_ts[8:10]}


# --- encode_row ------------------------------------------------------------------------------


def encode_row(row: Mapping[str, Any]) -> str:
    """A row -> compact JSON text (no trailing newline), every number written exactly.

    Does what json.dumps(row, separators=(",", ":"), ensure_ascii=False) would do, plus Decimal.
    """
    try:
        return _encode_object(row)
    except KeyError as missing:
        kind = missing.args[0]
        raise TypeError(f"encode_row: cannot write a {getattr(kind, '__name__', kind)} as JSON") from None


def _encode_object(obj: Mapping[str, Any]) -> str:
    return "{" + ",".join([(_MEMBER_NAMES.get(key) or _quote(key) + ":") + _ENCODERS[type(value)](value)
                           for key, value in obj.items()]) + "}"


def _encode_array(values: list[Any]) -> str:
    return "[" + ",".join([_ENCODERS[type(value)](value) for value in values]) + "]"


# The contract's column names as JSON member names, '"order_id":': written once, not per row (a row is
# mostly names); any other name is quoted as it comes.
_MEMBER_NAMES = {name: _quote(name) + ":" for name, _ in ROW_CONTRACT}

_ENCODERS: dict[type, Callable[[Any], str]] = {
    str: _quote,
    int: int.__repr__,
    Decimal: Decimal.__str__,  # exact digits; DynamoDB's plain notation comes back unchanged
    bool: {True: "true", False: "false"}.__getitem__,
    type(None): lambda _: "null",
    dict: _encode_object,
    list: _encode_array,
}


# --- the Lambda contract ---------------------------------------------------------------------


def transform_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One Firehose input record -> its output record (`Ok` with row and partition keys, or `ProcessingFailed`)."""
    return _transform(record)[0]


def failure_reason(record: Mapping[str, Any]) -> str | None:
    """Why this Firehose input record would be `ProcessingFailed` (one line), or None if it transforms.

    The firehose runner calls this to explain a failed record next to its original data.
    """
    return _transform(record)[1]


def _transform(record: Mapping[str, Any], notes: list[str] | None = None) -> tuple[dict[str, Any], str | None]:
    """The one place that turns a record into (output record, reason or None); it never raises for data.

    `notes` collects what a record that still transforms lost on the way (a REMOVE's unusable old attributes).
    """
    record_id = record["recordId"]
    data = record.get("data", "")
    try:
        row = build_row(decode_record(data), record.get("approximateArrivalTimestamp"), notes)
        payload = encode_row(row).encode("utf-8")
    except RecordError as error:
        reason = str(error)
    except UnicodeEncodeError as error:
        reason = f"data: a string holds {error.object[error.start : error.end]!r}, which is not valid UTF-8"
    except RecursionError:
        reason = "data: attributes nested too deep to unmarshal"
    except Exception as error:  # a bug must not sink the whole batch: fail this record, say what happened
        reason = f"unexpected {type(error).__name__}: {error}"
    else:
        return {
            "recordId": record_id,
            "result": OK,
            "data": binascii.b2a_base64(payload, newline=False).decode("ascii"),
            "metadata": {"partitionKeys": partition_keys(row["event_ts"])},
        }, None
    return {"recordId": record_id, "result": PROCESSING_FAILED, "data": data}, _one_line(reason)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, list[dict[str, Any]]]:
    """Lambda entry point: a Firehose transformation event -> one output record per input record, in order.

    Logs one compact JSON line per failed record, {"invocationId", "recordId", "reason", ...}, one per
    attribute a REMOVE had to write as null ({..., "nulled"}), and one summary line per invocation.
    stdout is the function's CloudWatch log group (/aws/lambda/<name>) on AWS and in MiniStack alike,
    and that is where a reason stays: Firehose's processing-failed record carries only
    Lambda.ProcessingFailedStatus, the original data and no recordId
    (https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html). So each
    line also names what identifies its record there: "dataSha256" (the SHA-256 of the record's data,
    the error record's rawData decoded), "approximateArrivalTimestamp", and the Kinesis position
    ("shardId", "sequenceNumber" from kinesisRecordMetadata); `make errors` joins them
    (runners/error_output.py). (MiniStack's worker also answers faster when a handler writes a line.)
    """
    records = event.get("records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise ValueError("event: no 'records' list; expected a Firehose data-transformation event")
    invocation_id = event.get("invocationId")
    output = []
    log_lines = []
    failed = 0
    for record in records:
        notes: list[str] = []
        result, reason = _transform(record, notes)
        output.append(result)
        if reason is not None:
            failed += 1
            log_lines.append(_log_line(invocation_id, record, "reason", reason))
        for note in notes:
            log_lines.append(_log_line(invocation_id, record, "nulled", note))
    log_lines.append(
        f"invocationId={invocation_id} records={len(records)} ok={len(records) - failed} failed={failed}"
    )
    print("\n".join(log_lines), flush=True)
    return {"records": output}


def _log_line(invocation_id: Any, record: Mapping[str, Any], kind: str, text: str) -> str:
    """One compact JSON log line about one record of one invocation (json escapes any newline in it)."""
    line: dict[str, Any] = {"invocationId": invocation_id, "recordId": record.get("recordId")}
    metadata = record.get("kinesisRecordMetadata")
    if isinstance(metadata, Mapping):
        line["shardId"] = metadata.get("shardId")
        line["sequenceNumber"] = metadata.get("sequenceNumber")
    line["approximateArrivalTimestamp"] = record.get("approximateArrivalTimestamp")
    line["dataSha256"] = _data_digest(record.get("data"))
    line[kind] = text
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def _data_digest(data: Any) -> str:
    """SHA-256 (hex) of the record's data as Firehose keeps it in rawData: the decoded bytes."""
    text = data if isinstance(data, str) else ""
    try:
        raw = binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        raw = text.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()
