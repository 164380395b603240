"""ENGINE=athena: the same KPI files (and `make query ENGINE=athena`) run through the Athena API.

Each KPI is sent as one statement with the views it reads inlined as CTEs (see analytics/views.py
for why not CREATE VIEW), as written, on every target. On `aws` AWS's Athena runs it; on the emulated
targets the project's Athena endpoint does (analytics/athena_api: Trino SQL transpiled with the KPIs'
sqlglot path and run by the local mirror, analytics/query.py), so the API path and the DuckDB path
give the same rows, and a query the mirror cannot run fails with the same one line on both.

Calls: StartQueryExecution (workgroup, database, OutputLocation s3://<results bucket>/...), then
GetQueryExecution until a final state, then GetQueryResults page by page. The first row of a
SELECT's first page is the header. Values arrive as text and are typed back from ColumnInfo.
https://docs.aws.amazon.com/athena/latest/APIReference/API_StartQueryExecution.html
https://docs.aws.amazon.com/athena/latest/APIReference/API_GetQueryResults.html
https://docs.aws.amazon.com/athena/latest/ug/querying.html (result files)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore.exceptions import ClientError

from analytics.athena_api import athena_client, endpoint_healthy, endpoint_url
from analytics.catalog import TableInfo, load_table
from analytics.kpis import KpiResult
from analytics.query import QueryResult
from analytics.views import SQL_DIR, inline_views, kpi_queries
from common.aws import Clients, error_code
from common.config import Settings
from common.console import Console
from common.errors import TerminalError, TransientError

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
RESULTS_PREFIX = "athena-results/"


def athena_statement(athena_sql: str, table: TableInfo, sql_dir: Path = SQL_DIR) -> str:
    """Pure: the text sent to StartQueryExecution for one KPI file: the file with its views, as written."""
    return inline_views(athena_sql, table, sql_dir)


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
            return _timestamp(text)
    except (ValueError, InvalidOperation, ZoneInfoNotFoundError):
        raise TerminalError(f"Athena returned {text!r} for a {athena_type} column; cannot read it") from None
    return text


def _timestamp(text: str) -> datetime:
    """Athena's timestamp text ('2024-03-01 09:00:00.250', with ' UTC' or a zone name for a zoned one)."""
    value, zone = text.strip(), ""
    head, _, tail = value.rpartition(" ")
    if head and tail[:1].isalpha():  # a zone name after the time (a bare time has digits there)
        value, zone = head, tail
    if value.endswith("Z"):
        value, zone = value[:-1], "UTC"
    parsed = datetime.fromisoformat(value.replace("T", " "))
    if zone:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed


def results_location(clients: Clients, settings: Settings) -> str:
    return f"s3://{settings.results_bucket_for(clients.account_id)}/{RESULTS_PREFIX}"


@contextlib.contextmanager
def athena_session(clients: Clients, settings: Settings, athena: Any = None) -> Iterator[Any]:
    """The Athena client ENGINE=athena uses for a command: `athena` if given, AWS's on aws, else the endpoint.

    On the emulated targets that is the endpoint `make up` started (PORT + 41); when none answers, an
    endpoint of this command's own (the same server, on a free loopback port, for the command's
    duration), so ENGINE=athena always goes through Athena's API and the endpoint's code.
    """
    if athena is not None or not settings.emulated:
        yield athena or clients.athena
        return
    url = endpoint_url(settings)
    if endpoint_healthy(url):
        yield athena_client(clients, settings, url=url)
        return
    from analytics.athena_api.server import AthenaServer

    with AthenaServer(settings, port=0, clients=clients, register=False) as server:
        yield athena_client(clients, settings, url=server.url)


def _start(athena: Any, **request: Any) -> str:
    try:
        return str(athena.start_query_execution(**request)["QueryExecutionId"])
    except ClientError as exc:  # a malformed query is refused at submission, as on AWS
        if error_code(exc) == "InvalidRequestException":
            raise TerminalError(str(exc.response.get("Error", {}).get("Message", exc)).splitlines()[0]) from None
        raise


def _wait(athena: Any, query_id: str, timeout_s: float, poll_s: float,
          sleep: Callable[[float], None]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status: dict[str, Any] = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        if status["State"] in FINAL_STATES:
            return status
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=query_id)
            raise TransientError(f"Athena query {query_id} still {status['State']} after {timeout_s:.0f}s")
        sleep(poll_s)


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
    athena: Any = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one statement to completion; (column names, typed rows). FAILED -> TerminalError with the reason."""
    with athena_session(clients, settings, athena) as client:
        return _run_statement(client, clients, settings, statement, workgroup, output_location, timeout_s, poll_s,
                              sleep)


def _run_statement(athena: Any, clients: Clients, settings: Settings, statement: str, workgroup: str | None,
                   output_location: str | None, timeout_s: float, poll_s: float,
                   sleep: Callable[[float], None]) -> tuple[list[str], list[tuple[Any, ...]]]:
    query_id = _start(
        athena,
        QueryString=statement,
        QueryExecutionContext={"Database": settings.glue_database},
        ResultConfiguration={"OutputLocation": output_location or results_location(clients, settings)},
        WorkGroup=workgroup or settings.workgroup,
    )
    status = _wait(athena, query_id, timeout_s, poll_s, sleep)
    if status["State"] != "SUCCEEDED":
        reason = status.get("StateChangeReason") or status["State"]
        raise TerminalError(f"Athena query {query_id} {status['State']}: {reason.splitlines()[0]}")
    columns, _, rows = _fetch_results(athena, query_id)
    return columns, rows


def query_athena(clients: Clients, settings: Settings, sql: str, *, database: str | None = None,
                 workgroup: str | None = None, timeout_s: float = 300.0, poll_s: float = 0.2,
                 athena: Any = None) -> QueryResult:
    """`make query ENGINE=athena`: one statement through the Athena API, as a QueryResult.

    A query Athena (or the local endpoint) refuses or fails raises TerminalError with exactly its
    reason, the same line `make query` prints for the DuckDB path.
    """
    with athena_session(clients, settings, athena) as client:
        return _query(client, clients, settings, sql, database, workgroup, timeout_s, poll_s)


def _query(athena: Any, clients: Clients, settings: Settings, sql: str, database: str | None,
           workgroup: str | None, timeout_s: float, poll_s: float) -> QueryResult:
    query_id = _start(
        athena,
        QueryString=sql,
        QueryExecutionContext={"Database": database or settings.glue_database},
        ResultConfiguration={"OutputLocation": results_location(clients, settings)},
        WorkGroup=workgroup or settings.workgroup,
    )
    status = _wait(athena, query_id, timeout_s, poll_s, time.sleep)
    if status["State"] != "SUCCEEDED":
        raise TerminalError((status.get("StateChangeReason") or f"Athena query {query_id} {status['State']}")
                            .splitlines()[0])
    columns, types, rows = _fetch_results(athena, query_id)
    return QueryResult(columns, types, rows)


def column_type(info: dict[str, Any]) -> str:
    """Pure: a ColumnInfo's type as a Trino type name (decimal gets its precision and scale back)."""
    kind = str(info.get("Type", "varchar"))
    if kind == "decimal" and "Precision" in info:
        return f"decimal({info['Precision']},{info.get('Scale', 0)})"
    return kind


def _fetch_results(athena: Any, query_id: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    columns: list[str] = []
    types: list[str] = []
    rows: list[tuple[Any, ...]] = []
    first = True
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
        result_set = page["ResultSet"]
        if first:
            info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
            columns = [c["Name"] for c in info]
            types = [column_type(c) for c in info]
        data = result_set.get("Rows", [])
        if first and data and [d.get("VarCharValue") for d in data[0]["Data"]] == columns:
            data = data[1:]  # the header row of a SELECT
        first = False
        for row in data:
            values = [d.get("VarCharValue") for d in row["Data"]]
            rows.append(tuple(parse_datum(v, t) for v, t in zip(values, types, strict=True)))
    return columns, types, rows


def run_athena(
    clients: Clients,
    settings: Settings,
    console: Console | None = None,
    sql_dir: Path = SQL_DIR,
    table: TableInfo | None = None,
    workgroup: str | None = None,
    output_location: str | None = None,
    athena: Any = None,
) -> list[KpiResult]:
    """Every KPI file through Athena, in file order, as the same KpiResult values DuckDB gives."""
    table = table or load_table(clients, settings)
    results = []
    with athena_session(clients, settings, athena) as client:
        for query in kpi_queries(sql_dir):
            statement = athena_statement(query.sql, table, sql_dir)
            try:
                columns, rows = run_athena_query(clients, settings, statement, workgroup=workgroup,
                                                 output_location=output_location, athena=client)
            except TerminalError as exc:
                raise TerminalError(f"KPI {query.name}: {exc}") from None
            results.append(KpiResult(query.name, query.title, columns, rows))
            if console is not None:
                console.info(f"athena: {query.name} ({len(rows)} rows)")
    return results
