"""Run every KPI file on DuckDB and hand back plain results for the report and the dashboard.

Each `analytics/sql/kpi_NN_<name>.sql` is Athena SQL; it runs here after `dialect.to_duckdb`
over the views an Engine created. Results come back in file order (NN), so the report and the
dashboard are stable from run to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from analytics.dialect import to_duckdb
from analytics.views import SQL_DIR, kpi_queries
from common.errors import TerminalError


@dataclass(frozen=True)
class KpiResult:
    """One KPI: `name` from the file name, `title` from its `-- title:` line, typed rows."""

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_kpi(conn: duckdb.DuckDBPyConnection, athena_sql: str, name: str = "query", title: str = "") -> KpiResult:
    """One Athena statement on DuckDB; a failing query names its KPI."""
    try:
        cursor = conn.execute(to_duckdb(athena_sql))
        rows = [tuple(row) for row in cursor.fetchall()]
    except duckdb.Error as exc:
        raise TerminalError(f"KPI {name} failed on DuckDB: {str(exc).splitlines()[0]}") from None
    columns = [d[0] for d in cursor.description or []]
    return KpiResult(name, title or name, columns, rows)


def run_kpis(conn: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> list[KpiResult]:
    """Every KPI file, in order, over the views of `conn` (an Engine's connection)."""
    return [run_kpi(conn, q.sql, q.name, q.title) for q in kpi_queries(sql_dir)]
