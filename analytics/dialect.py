"""The one module over sqlglot: Athena SQL (Trino dialect) in, DuckDB SQL out.

The KPI files are written once, in Athena's dialect, and run unchanged on Athena. Locally they
run on DuckDB after `to_duckdb`; on an emulated Athena (MiniStack runs DuckDB without any
translation) the transpiled text is what is sent.

Fix-ups on top of sqlglot's transpile, each because DuckDB would otherwise answer differently:
  1. `CAST(from_iso8601_timestamp(x) AS timestamp)` becomes `timezone('UTC', CAST(x AS TIMESTAMPTZ))`.
     sqlglot emits `CAST(CAST(x AS TIMESTAMPTZ) AS TIMESTAMP)`, which converts through the
     session time zone, so a laptop in another zone would shift every JSON-lake timestamp.
     Trino's result is the UTC wall time; `timezone('UTC', ...)` is that, whatever the zone.
  2. `date_diff(unit, a, b)` becomes DuckDB's `date_sub(unit, a, b)`. Trino counts whole units
     (01:00 to 00:30 the next day is 0 days); DuckDB's `date_diff` counts the boundaries crossed (1),
     its `date_sub` the whole units, as Trino does (https://trino.io/docs/current/functions/datetime.html,
     https://duckdb.org/docs/stable/sql/functions/timestamp).
Known differences kept (documented, not rewritten):
  - `approx_percentile` maps to DuckDB's `approx_quantile` (a t-digest; Athena uses a q-digest):
    both are approximations, equal on small or repetitive data, close on large data.
  - Trino divides integers as integers: the query core (analytics/query.py) sets DuckDB's
    `integer_division` for every query, the KPIs' included, and the SQL files cast one side to double.
Reference: https://docs.aws.amazon.com/athena/latest/ug/functions-env3.html
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from common.errors import TerminalError

SOURCE_DIALECT = "athena"  # sqlglot's Athena: Trino for queries, Hive for DDL


def parse(athena_sql: str) -> exp.Expression:
    """Parse one Athena statement; a clear error naming the problem when it is not valid SQL."""
    try:
        statements = [s for s in sqlglot.parse(athena_sql, read=SOURCE_DIALECT) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise TerminalError(f"not valid Athena SQL: {exc}") from None
    if len(statements) != 1:
        raise TerminalError(f"expected exactly one SQL statement, found {len(statements)}")
    return statements[0]


def _utc_iso_timestamps(node: exp.Expression) -> exp.Expression:
    """Fix-up 1: CAST(from_iso8601_timestamp(x) AS TIMESTAMP) -> timezone('UTC', CAST(x AS TIMESTAMPTZ))."""
    if (
        isinstance(node, exp.Cast)
        and isinstance(node.this, exp.FromISO8601Timestamp)
        and node.to.this == exp.DataType.Type.TIMESTAMP
    ):
        as_tz = exp.cast(node.this.this.copy(), exp.DataType.build("TIMESTAMPTZ"))
        return exp.Anonymous(this="timezone", expressions=[exp.Literal.string("UTC"), as_tz])
    return node


def _whole_units(node: exp.Expression) -> exp.Expression:
    """Fix-up 2: date_diff(unit, a, b) -> date_sub(unit, a, b) (whole units, as Trino counts them)."""
    if isinstance(node, exp.DateDiff) and node.args.get("unit") is not None:
        return exp.Anonymous(this="date_sub", expressions=[
            exp.Literal.string(node.text("unit").upper()), node.expression.copy(), node.this.copy()])
    return node


def to_duckdb(athena_sql: str) -> str:
    """Transpile one Athena (Trino) statement to DuckDB, with the fix-ups above."""
    tree = parse(athena_sql).transform(_utc_iso_timestamps).transform(_whole_units)
    return tree.sql(dialect="duckdb", comments=False)
