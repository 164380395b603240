"""Run every KPI file, and every file of the `queries/` folder, on DuckDB; plain results for the report.

Each `analytics/sql/kpi_NN_<name>.sql` is Athena SQL; it runs here through the one query core
(analytics/query.py, as `make query` and the Athena endpoint run SQL: Athena's integer division, its
column names, its function check) over the views an Engine created. Results come back in file order
(NN), so the report and the dashboard are stable from run to run.

`queries/*.sql` at the repository root are a team's own questions, in the same Athena SQL over the
same tables and views, run the same way (`run_queries`). A query that fails does not stop the others:
its result carries the one-line error instead of rows, and the report and the dashboard show it in
its place. Only queries run (a statement that would change the engine's views is refused), and
at most MAX_QUERY_ROWS rows of a query are kept (`truncated` says there were more).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from analytics.query import QueryError
from analytics.query import run_query as run_athena_sql
from analytics.views import SQL_DIR, KpiQuery, kpi_queries
from common.config import ROOT
from common.errors import TerminalError

QUERIES_DIR = ROOT / "queries"
MAX_QUERY_ROWS = 1000
_TITLE = re.compile(r"^--\s*title:\s*(.+)$", re.MULTILINE)


@dataclass(frozen=True)
class KpiResult:
    """One KPI: `name` from the file name, `title` from its `-- title:` line, typed rows.

    For a `queries/` file, `error` is the one-line reason it failed (no rows then), and `truncated`
    says the query returned more than the rows kept.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    error: str = ""
    truncated: bool = False


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "failed")


def run_kpi(conn: duckdb.DuckDBPyConnection, athena_sql: str, name: str = "query", title: str = "") -> KpiResult:
    """One Athena statement through the query core; a failing query names its KPI."""
    try:
        result = run_athena_sql(conn, athena_sql)
    except QueryError as exc:
        raise TerminalError(f"KPI {name} failed on DuckDB: {exc}") from None
    return KpiResult(name, title or name, result.columns, result.rows)


def run_kpis(conn: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> list[KpiResult]:
    """Every KPI file, in order, over the views of `conn` (an Engine's connection)."""
    return [run_kpi(conn, q.sql, q.name, q.title) for q in kpi_queries(sql_dir)]


def query_files(directory: Path = QUERIES_DIR) -> list[KpiQuery]:
    """Every `*.sql` in the folder, by file name; the title is the file's `-- title:` line, else its name.

    A file that cannot be read keeps its place with its text as '' (run_queries reports why).
    """
    found = []
    for path in sorted(Path(directory).glob("*.sql")) if Path(directory).is_dir() else []:
        try:
            sql = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            sql = ""
        title = _TITLE.search(sql)
        found.append(KpiQuery(path.stem, title.group(1).strip() if title else path.stem.replace("_", " "), sql, path))
    return found


def run_query(conn: duckdb.DuckDBPyConnection, query: KpiQuery, max_rows: int = MAX_QUERY_ROWS) -> KpiResult:
    """One `queries/` file through the query core, as a KPI runs; a failure becomes the result's error line."""
    try:
        if not query.sql:
            query.path.read_text(encoding="utf-8")  # unreadable (query_files kept ''): raises why
        result = run_athena_sql(conn, query.sql, max_rows=max_rows)
    except (QueryError, OSError, UnicodeDecodeError) as exc:
        return KpiResult(query.name, query.title, [], [], error=_first_line(str(exc)))
    return KpiResult(query.name, query.title, result.columns, result.rows, truncated=result.truncated)


def run_queries(conn: duckdb.DuckDBPyConnection, directory: Path = QUERIES_DIR,
                max_rows: int = MAX_QUERY_ROWS) -> list[KpiResult]:
    """Every `queries/*.sql`, by file name, over the views of `conn`; never raises for a bad query."""
    return [run_query(conn, q, max_rows) for q in query_files(directory)]
