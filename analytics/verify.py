"""Correctness is reconciliation (DESIGN.md section 6): the lake's current state equals the table.

The current state computed from the change log (`sales_orders_current`) must hold exactly the
orders a full Scan of the DynamoDB table returns, with the same attribute values. Values are
compared normalised, because the two sides store them differently: money as Decimal quantized
to its contract scale (the lake's decimal(12,2) vs DynamoDB's number), quantities as int,
timestamps as 'YYYY-MM-DDTHH:MM:SS.sssZ' (the lake's timestamp(ms) vs DynamoDB's ISO string).

Scan is paginated and eventually consistent by default; this asks for ConsistentRead so a check
right after the pipeline drains sees every write.
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import duckdb
import pyarrow as pa
from boto3.dynamodb.types import TypeDeserializer

from common.aws import Clients
from common.config import Settings
from common.errors import TerminalError
from lake.schema import ITEM_FIELDS

KEY = "order_id"
ATTRIBUTES: tuple[str, ...] = tuple(f.name for f in ITEM_FIELDS)


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


def _iso_ms(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def normalise(attribute: str, value: Any) -> Any:
    """Pure: one attribute value in the form both sides are compared in (unparseable values stay as text)."""
    if value is None:
        return None
    kind, scale = _KINDS.get(attribute, ("string", None))
    try:
        if kind == "decimal":
            return Decimal(str(value)).quantize(scale)
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

    @property
    def ok(self) -> bool:
        return not (self.missing_in_lake or self.extra_in_lake or self.differences)

    def report_lines(self, limit: int = 10) -> list[str]:
        """A readable diff, each listing capped at `limit` entries."""
        if self.ok:
            return [f"lake and table agree: {self.table_orders} orders, every attribute equal"]
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
        return lines


def compare_states(
    lake_rows: Iterable[Mapping[str, Any]],
    table_items: Iterable[Mapping[str, Any]],
    attributes: Sequence[str] = ATTRIBUTES,
) -> Reconciliation:
    """Pure: the lake's current rows against the table's items, by order_id, attribute by attribute."""
    lake = {str(r[KEY]): r for r in lake_rows}
    table = {str(i[KEY]): i for i in table_items}
    differences = []
    for order_id in sorted(lake.keys() & table.keys()):
        for attribute in attributes:
            left = normalise(attribute, lake[order_id].get(attribute))
            right = normalise(attribute, table[order_id].get(attribute))
            if left != right:
                differences.append(AttributeDiff(order_id, attribute, left, right))
    return Reconciliation(
        lake_orders=len(lake),
        table_orders=len(table),
        missing_in_lake=tuple(sorted(table.keys() - lake.keys())),
        extra_in_lake=tuple(sorted(lake.keys() - table.keys())),
        differences=tuple(differences),
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


def lake_state(conn: duckdb.DuckDBPyConnection, attributes: Sequence[str] = ATTRIBUTES) -> list[dict[str, Any]]:
    """The `sales_orders_current` view as dicts (an Engine's connection)."""
    columns = ", ".join(f'"{a}"' for a in attributes)
    try:
        cursor = conn.execute(f"SELECT {columns} FROM sales_orders_current")
    except duckdb.Error as exc:
        raise TerminalError(f"cannot read sales_orders_current: {str(exc).splitlines()[0]}") from None
    return [dict(zip(attributes, row, strict=True)) for row in cursor.fetchall()]


def reconcile(clients: Clients, settings: Settings, conn: duckdb.DuckDBPyConnection) -> Reconciliation:
    """The lake's current state (via `conn`) against a full Scan of settings.table_name."""
    return compare_states(lake_state(conn), scan_table(clients, settings))
