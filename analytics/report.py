"""The KPI report in the terminal: one rich table per KPI (and per `queries/` file), numbers formatted for people.

The formatting rules live here as pure functions (`format_value`, `column_label`, `is_numeric`)
so the HTML dashboard shows exactly the same strings as the terminal. Rules by column name:
money columns (revenue, avg_order_value, ...) get thousands separators and 2 decimals, `*_rate`
columns are fractions shown as percentages, `*_ms` columns are milliseconds, and every other
number gets thousands separators. Unknown KPIs need no rule: they render as plain tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from rich.table import Table
from rich.text import Text

MISSING = "—"
MONEY_COLUMNS = frozenset(
    {"revenue", "avg_order_value", "order_total", "unit_price", "aov", "gross_revenue", "net_revenue"}
)
# Header overrides where a mechanical "snake_case -> Sentence case" reads badly.
LABELS = {
    "avg_order_value": "Avg order value",
    "customer_region": "Region",
    "customer_name": "Customer",
    "product_name": "Product",
    "p50_ms": "p50 (ms)",
    "p95_ms": "p95 (ms)",
    "p99_ms": "p99 (ms)",
    "max_ms": "max (ms)",
}


class KpiLike(Protocol):
    """What a KPI result offers (analytics.kpis.KpiResult satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def columns(self) -> Sequence[str]: ...

    @property
    def rows(self) -> Sequence[Sequence[Any]]: ...


class TableSink(Protocol):
    """Anything with `table()`: common.console.Console, or a collector in tests."""

    def table(self, table: object) -> None: ...


def column_kind(column: str) -> str:
    """'money', 'rate', 'ms' or 'plain', decided by the column name alone."""
    name = column.lower()
    if name in MONEY_COLUMNS or name.endswith("_revenue"):
        return "money"
    if name == "rate" or name.endswith("_rate"):
        return "rate"
    if name.endswith("_ms"):
        return "ms"
    return "plain"


def is_number(value: object) -> bool:
    """True for int, float and Decimal values; bool is not a number here."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_nan(value: object) -> bool:
    if isinstance(value, float):
        return math.isnan(value) or math.isinf(value)
    if isinstance(value, Decimal):
        return not value.is_finite()
    return False


def format_value(column: str, value: object) -> str:
    """The display string of one cell: same rules for the terminal and the dashboard."""
    if value is None or _is_nan(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if not is_number(value):
        return str(value)
    kind = column_kind(column)
    number: Any = value
    if kind == "money":
        return f"{number:,.2f}"
    if kind == "rate":
        return f"{number * 100:,.1f}%"
    if kind == "ms" or isinstance(number, int):
        return f"{number:,.0f}"
    return f"{number:,.2f}"


def format_duration_ms(value: object) -> str:
    """A latency for a tile: '850 ms', '12.3 s', '4.2 min'."""
    if not is_number(value) or _is_nan(value):
        return format_value("", value)
    ms = float(value)  # type: ignore[arg-type]
    if abs(ms) < 1000:
        return f"{ms:,.0f} ms"
    if abs(ms) < 60_000:
        return f"{ms / 1000:,.1f} s"
    return f"{ms / 60_000:,.1f} min"


def column_label(column: str) -> str:
    """A readable header: overrides first, else 'snake_case' -> 'Snake case'."""
    if column in LABELS:
        return LABELS[column]
    text = column.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def is_numeric_column(index: int, rows: Iterable[Sequence[Any]]) -> bool:
    """A column is numeric when every non-empty cell is a number (and there is at least one)."""
    seen = False
    for row in rows:
        if index >= len(row) or row[index] is None:
            continue
        if not is_number(row[index]):
            return False
        seen = True
    return seen


def kpi_table(result: KpiLike) -> Table:
    """One KPI as a rich Table: numbers right-aligned, formatted by column."""
    rows = list(result.rows)
    error = str(getattr(result, "error", "") or "")
    if error:  # a queries/ file that failed: its one-line reason in its place
        caption: Text | str | None = Text(f"error: {error}", style="red")
    elif getattr(result, "truncated", False):
        caption = f"the first {len(rows):,} rows; the query returned more"
    else:
        caption = None if rows else "no rows"
    # Text, not str: a product named "[bold]" must print as itself, not as rich markup.
    table = Table(title=Text(result.title), title_justify="left", caption=caption, caption_justify="left")
    for index, column in enumerate(result.columns):
        right = is_numeric_column(index, rows) or (not rows and column_kind(column) != "plain")
        table.add_column(Text(column_label(column)), justify="right" if right else "left")
    for row in rows:
        cells = [format_value(col, row[i] if i < len(row) else None) for i, col in enumerate(result.columns)]
        table.add_row(*(Text(cell) for cell in cells))
    return table


def print_report(results: Iterable[KpiLike], console: TableSink) -> None:
    """Show every KPI as a table, in the order given."""
    for result in results:
        console.table(kpi_table(result))
