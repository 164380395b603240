"""Correctness is reconciliation (docs/decisions.md section 4): the lake's current state equals the table.

The current state computed from the change log (`sales_orders_current`) must hold exactly the
orders a full Scan of the DynamoDB table returns, with the same attribute values. Values are
compared normalised, because the two sides store them differently: money as Decimal quantized
to its contract scale (the lake's decimal(12,2) vs DynamoDB's number), quantities as int,
timestamps as 'YYYY-MM-DDTHH:MM:SS.sssZ' (the lake's timestamp(ms) vs DynamoDB's ISO string).

Only what the lake's Glue table holds can be compared. Record format conversion drops every
attribute the table does not declare (a producer's coupon code, address map or tag set), so a
reconciliation that looked only at the contract's columns would call such a lake "equal" while it
silently lost data. The attributes of the scanned items that the table lacks are therefore counted
(`unmapped_attributes`: attribute -> items holding it) and named in the report, with the reason and
the fix. They do not fail the check by themselves (AWS drops them too), but they are never hidden.
Columns a user added to the table (UpdateTable) are compared like the contract's, typed by their
Glue type; a nested value the lake keeps as JSON text is compared as the JSON it holds, and a
DynamoDB set (SS/NS) regardless of order.
https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html

Scan is paginated and eventually consistent by default; this asks for ConsistentRead so a check
right after the pipeline drains sees every write.
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import duckdb
import pyarrow as pa
from boto3.dynamodb.types import Binary, TypeDeserializer

from analytics.catalog import TableInfo, load_table, quote_identifier
from common.aws import Clients
from common.config import Settings
from common.errors import TerminalError
from lake.schema import EVENT_FIELDS, ITEM_FIELDS, ROW_SCHEMA

KEY = "order_id"
ATTRIBUTES: tuple[str, ...] = tuple(f.name for f in ITEM_FIELDS)
CONTRACT_NAMES = frozenset(ROW_SCHEMA.names)  # item and event columns: what the lake holds by contract
# The change's own fields: they win over item attributes of the same name, so such an attribute is not held.
EVENT_COLUMNS = frozenset(f.name for f in EVENT_FIELDS)
_GLUE_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_GLUE_INTEGERS = frozenset({"tinyint", "smallint", "int", "integer", "bigint"})


def _kind(field: pa.Field) -> tuple[str, Any]:
    """How one contract attribute is compared: ('decimal', quantum) | ('int'|'timestamp'|'string', None)."""
    if pa.types.is_decimal(field.type):
        return "decimal", Decimal(1).scaleb(-field.type.scale)
    if pa.types.is_integer(field.type):
        return "int", None
    if pa.types.is_timestamp(field.type):
        return "timestamp", None
    return "string", None


_KINDS = MappingProxyType({f.name: _kind(f) for f in ITEM_FIELDS})


def glue_kind(glue_type: str) -> tuple[str, Any]:
    """How a column the table declares beyond the contract is compared, from its Glue type."""
    text = glue_type.strip().lower()
    match = _GLUE_DECIMAL.match(text)
    if match:
        return "decimal", Decimal(1).scaleb(-int(match.group(2)))
    if text in _GLUE_INTEGERS:
        return "int", None
    if text == "timestamp":
        return "timestamp", None
    if text == "float":
        return "float32", None  # stored in 32 bits: the table's 0.1 reads back as 0.10000000149011612
    return "value", None  # strings, booleans, doubles and nested types: compared as the JSON they hold


def _iso_ms(value: datetime) -> str:
    """UTC ISO text to the millisecond, the lake's precision; finer when the value has more (it then differs)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    fraction = f"{value.microsecond // 1000:03d}" if value.microsecond % 1000 == 0 else f"{value.microsecond:06d}"
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{fraction}Z"


def normalise(attribute: str, value: Any, kind_of: tuple[str, Any] | None = None) -> Any:
    """Pure: one attribute value in the form both sides are compared in (unparseable values stay as text).

    Never towards agreement: a value the lake's column cannot hold exactly (2.499 in a decimal(12, 2), the text
    "3" where a number belongs, a time finer than the millisecond) stays what it is, so it differs from the
    lake's, which kept the state before it (the transform refused the change).
    """
    if value is None:
        return None
    kind, scale = kind_of or _KINDS.get(attribute, ("string", None))
    if kind == "value":
        return _canonical(value)
    numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if kind in ("decimal", "int", "float32") and not numeric:
        return f"{value!r} (not a number)"
    if kind == "float32":
        return struct.unpack("<f", struct.pack("<f", float(value)))[0] if math.isfinite(float(value)) else str(value)
    try:
        if kind == "decimal":
            number = Decimal(str(value))
            fitted = number.quantize(scale)
            return fitted if fitted == number else number
        if kind == "int":
            number = Decimal(str(value))
            return int(number) if number == number.to_integral_value() else number
        if kind == "timestamp":
            if isinstance(value, datetime):
                return _iso_ms(value)
            text = str(value)
            return _iso_ms(datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text))
    except (InvalidOperation, ValueError, TypeError):
        return str(value)
    return str(value)


def _canonical(value: Any) -> Any:
    """A value as plain JSON-like data: numbers as Decimal, keys lowercased, null fields dropped, sets sorted."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        return number.normalize() if number.is_finite() else str(value)
    if isinstance(value, Mapping):
        return {str(k).lower(): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Binary):
        return base64.b64encode(value.value).decode()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return _iso_ms(value)
    return str(value)


def _as_json(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return text


def _pair(lake: Any, table: Any) -> tuple[Any, Any]:
    """Pure: a lake value and a DynamoDB value of a column beyond the contract, in comparable form.

    A nested attribute the lake keeps as JSON text (a `string` column) is compared as that JSON; a
    set (SS/NS/BS) is compared without its order, also inside maps and lists.
    """
    if isinstance(lake, str) and table is not None and not isinstance(table, str):
        lake = _as_json(lake)
    if isinstance(table, set | frozenset) and isinstance(lake, list | tuple):
        return sorted((_canonical(v) for v in lake), key=repr), _canonical(table)
    if isinstance(lake, Mapping) and isinstance(table, Mapping):
        left, right = {}, {}
        lake_fields = {str(k).lower(): v for k, v in lake.items()}
        table_fields = {str(k).lower(): v for k, v in table.items()}
        for name in lake_fields.keys() | table_fields.keys():
            pair = _pair(lake_fields.get(name), table_fields.get(name))
            if pair[0] is not None:
                left[name] = pair[0]
            if pair[1] is not None:
                right[name] = pair[1]
        return left, right
    if isinstance(lake, list | tuple) and isinstance(table, list | tuple) and len(lake) == len(table):
        pairs = [_pair(a, b) for a, b in zip(lake, table, strict=True)]
        return [a for a, _ in pairs], [b for _, b in pairs]
    return _canonical(lake), _canonical(table)


@dataclass(frozen=True)
class AttributeDiff:
    order_id: str
    attribute: str
    lake: Any
    table: Any


@dataclass(frozen=True)
class Reconciliation:
    lake_orders: int
    table_orders: int
    missing_in_lake: tuple[str, ...] = ()  # in DynamoDB, not in the lake's current state
    extra_in_lake: tuple[str, ...] = ()  # in the lake's current state, not in DynamoDB
    differences: tuple[AttributeDiff, ...] = ()
    # DynamoDB attributes the lake's Glue table does not hold -> how many scanned items carry each.
    # Not a failure by itself (Firehose drops them on AWS too), but always reported.
    unmapped_attributes: Mapping[str, int] = field(default_factory=dict)
    glue_table: str = ""  # database.table the lake schema comes from
    data_format: str = "parquet"

    @property
    def ok(self) -> bool:
        return not (self.missing_in_lake or self.extra_in_lake or self.differences)

    def unmapped_lines(self, limit: int = 10) -> list[str]:
        """The attributes the lake cannot hold, why, and what to do; [] when there are none."""
        if not self.unmapped_attributes:
            return []
        where = f"the Glue table {self.glue_table}" if self.glue_table else "the lake's Glue table"
        if self.data_format == "parquet":
            why = "Firehose drops attributes the table does not declare; add the column with UpdateTable to keep it"
        else:
            why = ("the objects keep them but Athena reads only the columns the table declares; "
                   "add the column with UpdateTable (or crawl) to read it")
        ranked = sorted(self.unmapped_attributes.items(), key=lambda kv: (-kv[1], kv[0]))
        lines = [f"{len(ranked)} DynamoDB attribute(s) not in {where}: {why}"]
        lines += [f"  {name}: in {count} item(s)" for name, count in ranked[:limit]]
        if len(ranked) > limit:
            lines.append(f"  ... (+{len(ranked) - limit} more)")
        return lines

    def report_lines(self, limit: int = 10) -> list[str]:
        """A readable diff, each listing capped at `limit` entries; attributes the lake cannot hold come last."""
        if self.ok:
            held = "every attribute the lake holds equal" if self.unmapped_attributes else "every attribute equal"
            return [f"lake and table agree: {self.table_orders} orders, {held}", *self.unmapped_lines(limit)]
        lines = [f"lake current state: {self.lake_orders} orders; DynamoDB table: {self.table_orders} orders"]
        for label, ids in (("missing in lake", self.missing_in_lake), ("extra in lake", self.extra_in_lake)):
            if ids:
                shown = ", ".join(ids[:limit]) + (f" ... (+{len(ids) - limit} more)" if len(ids) > limit else "")
                lines.append(f"{label} ({len(ids)}): {shown}")
        if self.differences:
            lines.append(f"differing attributes ({len(self.differences)}):")
            for diff in self.differences[:limit]:
                lines.append(f"  {diff.order_id}.{diff.attribute}: lake={diff.lake!r} table={diff.table!r}")
            if len(self.differences) > limit:
                lines.append(f"  ... (+{len(self.differences) - limit} more)")
        return lines + self.unmapped_lines(limit)


def unmapped_attributes(table_items: Iterable[Mapping[str, Any]], held: Iterable[str]) -> dict[str, int]:
    """Pure: attribute -> items carrying it, for the attributes no column holds (names match case-insensitively,
    as the OpenX JSON SerDe matches keys to columns)."""
    columns = {name.lower() for name in held} - {name.lower() for name in EVENT_COLUMNS}
    counts: dict[str, int] = {}
    for item in table_items:
        for name in item:
            if name.lower() not in columns:
                counts[name] = counts.get(name, 0) + 1
    return counts


def _by_column(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The item's attributes by the lake column they fill: `Quantity` fills quantity (keys match columns
    case-insensitively, as Firehose's conversion reads them); an exact name wins over another case."""
    if all(type(name) is str and name == name.lower() for name in item):
        return item
    return {**{str(name).lower(): value for name, value in item.items()},
            **{name: value for name, value in item.items() if name == str(name).lower()}}


def compare_states(
    lake_rows: Iterable[Mapping[str, Any]],
    table_items: Iterable[Mapping[str, Any]],
    attributes: Sequence[str] = ATTRIBUTES,
    *,
    held: Iterable[str] = CONTRACT_NAMES,
    kinds: Mapping[str, tuple[str, Any]] | None = None,
    glue_table: str = "",
    data_format: str = "parquet",
) -> Reconciliation:
    """Pure: the lake's current rows against the table's items, by order_id, attribute by attribute.

    `held` names the lake table's columns (the contract's by default): item attributes outside it are
    counted in `unmapped_attributes`. `kinds` says how attributes beyond the contract compare (glue_kind).
    """
    lake = {str(r[KEY]): r for r in lake_rows}
    items = list(table_items)
    table = {str(i[KEY]): _by_column(i) for i in items}
    kinds = kinds or {}
    differences = []
    for order_id in sorted(lake.keys() & table.keys()):
        for attribute in attributes:
            kind = kinds.get(attribute)
            raw_left, raw_right = lake[order_id].get(attribute), table[order_id].get(attribute)
            if kind is not None and kind[0] == "value":
                left, right = _pair(raw_left, raw_right)
            else:
                left, right = normalise(attribute, raw_left, kind), normalise(attribute, raw_right, kind)
            if left != right:
                differences.append(AttributeDiff(order_id, attribute, left, right))
    return Reconciliation(
        lake_orders=len(lake),
        table_orders=len(table),
        missing_in_lake=tuple(sorted(table.keys() - lake.keys())),
        extra_in_lake=tuple(sorted(lake.keys() - table.keys())),
        differences=tuple(differences),
        unmapped_attributes=unmapped_attributes(items, held),
        glue_table=glue_table,
        data_format=data_format,
    )


def scan_table(clients: Clients, settings: Settings) -> list[dict[str, Any]]:
    """Every item of the orders table, deserialised (numbers as Decimal)."""
    deserializer = TypeDeserializer()
    items = []
    pages = clients.dynamodb.get_paginator("scan").paginate(TableName=settings.table_name, ConsistentRead=True)
    for page in pages:
        for raw in page.get("Items", []):
            items.append({k: deserializer.deserialize(v) for k, v in raw.items()})
    return items


def lake_state(conn: duckdb.DuckDBPyConnection, attributes: Sequence[str] = ATTRIBUTES,
               extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The `sales_orders_current` view as dicts (an Engine's connection).

    `extra` columns (added to the table beyond the contract, so not in the view) are read from the
    latest event's row of `sales_orders_cdc` (a redelivered duplicate holds the same values).
    """
    columns = ", ".join(f"c.{quote_identifier(a)}" for a in attributes)
    sql = f"SELECT {columns} FROM sales_orders_current AS c"
    if extra:
        keys = ("order_id", "event_id", "sequence_number")
        picked = ", ".join(f"any_value({quote_identifier(e)}) AS {quote_identifier(e)}" for e in extra)
        columns += ", " + ", ".join(f"x.{quote_identifier(e)}" for e in extra)
        sql = (f"SELECT {columns} FROM sales_orders_current AS c LEFT JOIN "
               f"(SELECT {', '.join(keys)}, {picked} FROM sales_orders_cdc GROUP BY {', '.join(keys)}) AS x "
               "ON " + " AND ".join(f"x.{k} = c.{k}" for k in keys))
    names = (*attributes, *extra)
    try:
        cursor = conn.execute(sql)
    except duckdb.Error as exc:
        raise TerminalError(f"cannot read sales_orders_current: {str(exc).splitlines()[0]}") from None
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def reconcile(clients: Clients, settings: Settings, conn: duckdb.DuckDBPyConnection,
              table: TableInfo | None = None) -> Reconciliation:
    """The lake's current state (via `conn`) against a full Scan of settings.table_name.

    The Glue table (GetTable, or `table`) says which attributes the lake can hold: its columns beyond
    the contract are compared too, and the items' attributes it lacks are reported as unmapped.
    """
    table = table or load_table(clients, settings)
    extra = tuple(c.name for c in table.columns if c.name not in CONTRACT_NAMES)
    kinds = {c.name: glue_kind(c.type) for c in table.columns if c.name in extra}
    return compare_states(
        lake_state(conn, ATTRIBUTES, extra), scan_table(clients, settings), ATTRIBUTES + extra,
        held=[c.name for c in table.columns], kinds=kinds,
        glue_table=f"{settings.glue_database}.{settings.glue_table}", data_format=table.data_format,
    )
