"""ENGINE=athena: the same KPI files, run through the Athena API instead of local DuckDB.

Each KPI is sent as one statement with the views it reads inlined as CTEs (see analytics/views.py
for why not CREATE VIEW). On `aws` the text is the Athena SQL as written; on the emulated targets
it is the sqlglot transpile to DuckDB, because MiniStack's Athena is DuckDB without translation
(Trino functions such as from_iso8601_timestamp or approx_percentile fail there).

Calls: StartQueryExecution (workgroup, database, OutputLocation s3://<results bucket>/...), then
GetQueryExecution until a final state, then GetQueryResults page by page. The first row of a
SELECT's first page is the header. Values arrive as text and are typed back from ColumnInfo.
https://docs.aws.amazon.com/athena/latest/APIReference/API_StartQueryExecution.html
https://docs.aws.amazon.com/athena/latest/APIReference/API_GetQueryResults.html
https://docs.aws.amazon.com/athena/latest/ug/querying.html (result files)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from analytics.catalog import TableInfo, load_table
from analytics.dialect import to_duckdb
from analytics.kpis import KpiResult
from analytics.views import SQL_DIR, inline_views, kpi_queries
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.errors import TerminalError, TransientError

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
RESULTS_PREFIX = "athena-results/"


def athena_statement(athena_sql: str, table: TableInfo, emulated: bool, sql_dir: Path = SQL_DIR) -> str:
    """Pure: the text sent to StartQueryExecution for one KPI file."""
    composed = inline_views(athena_sql, table, sql_dir)
    return to_duckdb(composed) if emulated else composed


def parse_datum(text: str | None, athena_type: str) -> Any:
    """Pure: one VarCharValue back to a Python value by its ColumnInfo type (None stays None)."""
    if text is None:
        return None
    kind = athena_type.lower().split("(")[0].strip()
    try:
        if kind in ("tinyint", "smallint", "integer", "int", "bigint"):
            return int(text)
        if kind in ("double", "float", "real"):
            return float(text)
        if kind == "decimal":
            return Decimal(text)
        if kind == "boolean":
            return text.lower() == "true"
        if kind == "date":
            return date.fromisoformat(text)
        if kind.startswith("timestamp"):
            return datetime.fromisoformat(text.replace("Z", "").replace("T", " ").split(" UTC")[0])
    except (ValueError, InvalidOperation):
        raise TerminalError(f"Athena returned {text!r} for a {athena_type} column; cannot read it") from None
    return text


def results_location(clients: Clients, settings: Settings) -> str:
    return f"s3://{settings.results_bucket_for(clients.account_id)}/{RESULTS_PREFIX}"


def run_athena_query(
    clients: Clients,
    settings: Settings,
    statement: str,
    *,
    workgroup: str | None = None,
    output_location: str | None = None,
    timeout_s: float = 300.0,
    poll_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one statement to completion; (column names, typed rows). FAILED -> TerminalError with the reason."""
    athena = clients.athena
    started = athena.start_query_execution(
        QueryString=statement,
        QueryExecutionContext={"Database": settings.glue_database},
        ResultConfiguration={"OutputLocation": output_location or results_location(clients, settings)},
        WorkGroup=workgroup or settings.workgroup,
    )
    query_id = started["QueryExecutionId"]
    deadline = time.monotonic() + timeout_s
    while True:
        status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        if status["State"] in FINAL_STATES:
            break
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=query_id)
            raise TransientError(f"Athena query {query_id} still {status['State']} after {timeout_s:.0f}s")
        sleep(poll_s)
    if status["State"] != "SUCCEEDED":
        reason = status.get("StateChangeReason") or status["State"]
        raise TerminalError(f"Athena query {query_id} {status['State']}: {reason.splitlines()[0]}")
    return _fetch_results(athena, query_id)


def _fetch_results(athena: Any, query_id: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    columns: list[str] = []
    types: list[str] = []
    rows: list[tuple[Any, ...]] = []
    first = True
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
        result_set = page["ResultSet"]
        if first:
            info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
            columns = [c["Name"] for c in info]
            types = [c.get("Type", "varchar") for c in info]
        data = result_set.get("Rows", [])
        if first and data and [d.get("VarCharValue") for d in data[0]["Data"]] == columns:
            data = data[1:]  # the header row of a SELECT
        first = False
        for row in data:
            values = [d.get("VarCharValue") for d in row["Data"]]
            rows.append(tuple(parse_datum(v, t) for v, t in zip(values, types, strict=True)))
    return columns, rows


def run_athena(
    clients: Clients,
    settings: Settings,
    console: Console | None = None,
    sql_dir: Path = SQL_DIR,
    table: TableInfo | None = None,
    workgroup: str | None = None,
    output_location: str | None = None,
) -> list[KpiResult]:
    """Every KPI file through Athena, in file order, as the same KpiResult values DuckDB gives."""
    table = table or load_table(clients, settings)
    results = []
    for query in kpi_queries(sql_dir):
        statement = athena_statement(query.sql, table, settings.emulated, sql_dir)
        try:
            columns, rows = run_athena_query(clients, settings, statement, workgroup=workgroup,
                                             output_location=output_location)
        except TerminalError as exc:
            raise TerminalError(f"KPI {query.name}: {exc}") from None
        results.append(KpiResult(query.name, query.title, columns, rows))
        if console is not None:
            console.info(f"athena: {query.name} ({len(rows)} rows)")
    return results
