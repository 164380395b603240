"""The one query core (analytics/query.py) and the Athena API service over it, without a server.

DuckDB over small in-memory tables and over the known lake on disk (with the project's views); the
API service with a fake S3 and a fake emulator (workgroups), so its Athena semantics are checked here
and the real clients in tests/emulator/test_athena_clients.py.
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
from botocore.exceptions import ClientError

from analytics.athena_api.service import ApiError, AthenaService, column_info, csv_text
from analytics.catalog import TableInfo, local_table_info
from analytics.engine import Engine, lake_dataset, open_local_engine
from analytics.kpis import run_kpis
from analytics.query import (
    Mirror,
    QueryError,
    QueryResult,
    athena_text,
    format_result,
    glue_type_of,
    java_double,
    run_query,
    run_query_arrow,
)
from analytics.views import inline_views, kpi_queries
from common.config import load_settings
from common.errors import TerminalError
from tests.fixtures.lake import current_items, write_local_lake


@pytest.fixture()
def conn() -> Any:
    """Three orders in an in-memory table, typed as the lake types them."""
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("""
        CREATE TABLE orders AS SELECT * FROM (VALUES
            ('o1', 'c1', TIMESTAMP '2024-03-01 09:00:00.250', 20.00::DECIMAL(12,2), '2024-03-01T09:00:00Z', 'EU'),
            ('o2', 'c2', TIMESTAMP '2024-03-02 10:00:00', 89.99::DECIMAL(12,2), '2024-03-02T10:00:00Z', NULL),
            ('o3', 'c1', TIMESTAMP '2024-03-02 11:00:00', 45.00::DECIMAL(12,2), '2024-03-02T23:30:00Z', 'EU')
        ) AS t(order_id, customer_id, order_ts, order_total, iso_ts, region)""")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def lake_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("query-lake")
    write_local_lake(root, "parquet")
    with open_local_engine(root) as engine:
        yield engine


# --- Trino SQL through the KPIs' transpiler ------------------------------------------------------


def test_trino_only_functions_run_through_the_transpiler(conn: Any) -> None:
    result = run_query(conn, """
        SELECT date_format(order_ts, '%Y-%m-%d') AS day,
               approx_distinct(customer_id) AS customers,
               date_add('day', 1, min(order_ts)) AS next_day,
               min(from_iso8601_timestamp(iso_ts)) AS first_change
        FROM orders GROUP BY 1 ORDER BY 1""")
    assert result.columns == ["day", "customers", "next_day", "first_change"]
    assert result.types == ["varchar", "bigint", "timestamp", "timestamp with time zone"]
    assert result.rows == [
        ("2024-03-01", 1, datetime(2024, 3, 2, 9, 0, 0, 250000), datetime(2024, 3, 1, 9, 0, tzinfo=UTC)),
        ("2024-03-02", 2, datetime(2024, 3, 3, 10, 0), datetime(2024, 3, 2, 10, 0, tzinfo=UTC)),
    ]


def test_columns_are_named_and_typed_as_athena_names_them(conn: Any) -> None:
    result = run_query(conn, "SELECT count(*), Order_ID, sum(order_total) AS Total, NULL AS nothing "
                             "FROM orders GROUP BY order_id ORDER BY order_id LIMIT 1")
    assert result.columns == ["_col0", "order_id", "total", "nothing"]
    assert result.types == ["bigint", "varchar", "decimal(38,2)", "unknown"]
    assert result.rows == [(1, "o1", Decimal("20.00"), None)]


def test_integers_divide_as_in_trino(conn: Any) -> None:
    result = run_query(conn, "SELECT 7 / 2 AS a, -7 / 2 AS b, 7 / 2.0 AS c, CAST(7 AS double) / 2 AS d")
    assert result.rows == [(3, -3, Decimal("3.5"), 3.5)]


def test_execution_parameters_fill_the_question_marks_in_order(conn: Any) -> None:
    result = run_query(conn, "SELECT count(*) AS n FROM orders WHERE customer_id = ? AND order_total > ?",
                       parameters=["'c1'", "30"])
    assert result.rows == [(1,)]
    with pytest.raises(QueryError, match="1 parameter"):
        run_query(conn, "SELECT ? AS x")


def test_views_and_the_catalog_table_answer_like_the_kpis(lake_engine: Engine) -> None:
    assert run_query(lake_engine, "SELECT count(*) AS n FROM sales_orders_current").rows == [(len(current_items()),)]
    statuses = run_query(lake_engine, "SELECT order_id, status FROM sales_orders_current ORDER BY 1").rows
    assert statuses == [(i["order_id"], i["status"]) for i in current_items()]
    # The Glue table by its Athena names: qualified, catalog-qualified, and unqualified in its database.
    for name in ('"local"."sales_orders_cdc"', "awsdatacatalog.local.sales_orders_cdc"):
        assert run_query(lake_engine, f"SELECT count(*) FROM {name}").rows == [(18,)]
    kpis = {r.name: (r.columns, r.rows) for r in run_kpis(lake_engine.conn)}
    for query in kpi_queries():  # the statement ENGINE=athena sends: the file with its views as CTEs
        result = run_query(lake_engine, inline_views(query.sql, lake_engine.table))
        assert (result.columns, result.rows) == kpis[query.name], query.name


def test_a_string_partition_key_compared_with_a_number_fails_as_on_athena(lake_engine: Engine) -> None:
    """The lake's year/month/day are strings in Glue; Trino never compares a string with a number, so Athena
    rejects `year = 2024` (Cannot apply operator: varchar = integer) where DuckDB would cast and answer."""
    for sql in ("SELECT count(*) FROM sales_orders_cdc WHERE year = 2024",
                "SELECT count(*) FROM local.sales_orders_cdc AS t WHERE t.month IN (3, 4)",
                "SELECT count(*) FROM sales_orders_cdc WHERE day BETWEEN 1 AND 31"):
        with pytest.raises(QueryError, match=r"Athena would reject it too \(Cannot apply operator: varchar = "
                                             r"integer\)") as err:
            run_query(lake_engine, sql)
        assert (err.value.code, err.value.athena_accepts) == ("TYPE_MISMATCH", False)
    answered = "SELECT count(*) FROM sales_orders_cdc WHERE year = '2024' AND CAST(month AS integer) = 3"
    assert run_query(lake_engine, answered).rows == [(18,)]
    # A column the query defines itself is its own type, as in Trino; numbers compare with numbers.
    defined = ("WITH t AS (SELECT CAST(year AS integer) AS year FROM sales_orders_cdc) "
               "SELECT count(*) FROM t WHERE year = 2024")
    assert run_query(lake_engine, defined).rows == [(18,)]
    assert run_query(lake_engine, "SELECT count(*) FROM sales_orders_current WHERE quantity > 0").rows


class DictCatalog:
    """Glue as a dict of TableInfo; objects read from local directories."""

    def __init__(self, tables: dict[tuple[str, str], TableInfo]) -> None:
        self.tables, self.asked = tables, []

    def table(self, database: str, name: str) -> TableInfo | None:
        self.asked.append((database, name))
        return self.tables.get((database, name))

    def dataset(self, table: TableInfo) -> ds.Dataset:
        import pyarrow.fs as pafs

        return lake_dataset(table, pafs.LocalFileSystem(), table.location.rstrip("/"))


def test_other_catalog_tables_are_attached_when_the_query_names_them(conn: Any, tmp_path: Path) -> None:
    write_local_lake(tmp_path, "parquet")
    other = local_table_info(str(tmp_path), database="archive_db", name="orders_2024")
    catalog = DictCatalog({("archive_db", "orders_2024"): other})
    qualified = run_query(conn, "SELECT count(DISTINCT order_id) FROM archive_db.orders_2024", catalog=catalog)
    assert qualified.rows == [(6,)]
    in_context = run_query(conn, "SELECT count(*) FROM orders_2024", database="archive_db", catalog=catalog)
    assert in_context.rows == [(18,)]
    with pytest.raises(QueryError) as missing:
        run_query(conn, "SELECT * FROM\n  archive_db.nope", catalog=catalog)
    assert str(missing.value) == ("table archive_db.nope at line 2, column 3 does not exist in the Glue catalog; "
                                  "Athena would reject it too")


# --- one line when the mirror cannot run it ------------------------------------------------------


@pytest.mark.parametrize(("sql", "message", "accepts"), [
    ("SELECT order_id,\n       word_stem(order_id) AS stem FROM orders",
     "word_stem at line 2, column 8: Athena accepts it; the local mirror cannot run word_stem", True),
    ("SELECT url_extract_host('https://example.com/a') AS host",
     "url_extract_host at line 1, column 8: Athena accepts it; the local mirror cannot run url_extract_host", True),
    ("SELECT frobnicate(order_id) FROM orders",
     "frobnicate at line 1, column 8: Athena would reject it too: Trino has no function frobnicate", False),
    # DuckDB has strftime, Athena does not: the mirror must not run what Athena refuses.
    ("SELECT strftime(order_ts, '%Y') FROM orders",
     "strftime at line 1, column 8: Athena would reject it too: Trino has no function strftime", False),
    ("UNLOAD (SELECT * FROM orders) TO 's3://bucket/out/' WITH (format = 'PARQUET')",
     "UNLOAD at line 1, column 1: Athena accepts it; the local mirror runs queries only (SELECT, WITH, VALUES)", True),
    ("SELECT * FROM postgres.public.orders",
     "catalog postgres at line 1, column 15: a federated catalog; Athena accepts it, the local mirror reads the "
     "Glue catalog (awsdatacatalog) only", True),
])
def test_what_the_mirror_cannot_run_is_one_line_naming_it(conn: Any, sql: str, message: str, accepts: bool) -> None:
    with pytest.raises(QueryError) as failed:
        run_query(conn, sql)
    assert str(failed.value) == message
    assert "\n" not in str(failed.value)
    assert failed.value.athena_accepts is accepts
    assert isinstance(failed.value, TerminalError)  # the CLI prints it as one line


def test_a_syntax_error_names_its_position(conn: Any) -> None:
    with pytest.raises(QueryError) as failed:
        run_query(conn, "SELECT order_id\nFROM orders WHERE")
    assert failed.value.code == "SYNTAX_ERROR" and failed.value.athena_accepts is False
    assert str(failed.value).startswith("syntax error at line 2, column")
    assert str(failed.value).endswith("; Athena would reject it too")


def test_a_function_given_types_duckdb_refuses_is_named_as_written(conn: Any) -> None:
    with pytest.raises(QueryError) as failed:
        run_query(conn, "SELECT date_format('2024-01-01', '%Y') AS y")
    assert str(failed.value).startswith("date_format at line 1, column 8: the local mirror cannot run date_format "
                                        "with these argument types")


# --- values as Athena writes them, and output for the CLI ----------------------------------------


def test_athena_text() -> None:
    assert [java_double(v) for v in (20.0, 0.125, 1e7, 1.5e-5, -2.5e20)] == ["20.0", "0.125", "1.0E7", "1.5E-5",
                                                                             "-2.5E20"]
    assert athena_text(datetime(2024, 3, 1, 9, 0, 0, 250999), "timestamp") == "2024-03-01 09:00:00.250"
    assert athena_text(datetime(2024, 3, 1, 9, tzinfo=UTC), "timestamp with time zone") == \
        "2024-03-01 09:00:00.000 UTC"
    assert athena_text(Decimal("20.00"), "decimal(12,2)") == "20.00"
    assert athena_text(date(2024, 3, 1), "date") == "2024-03-01"
    assert athena_text(True, "boolean") == "true"
    assert athena_text(None, "varchar") is None
    assert athena_text([1, None], "array(integer)") == "[1, null]"
    assert athena_text({"a": 1}, "map(varchar, integer)") == "{a=1}"
    assert athena_text({"x": 1, "y": "b"}, "row(x integer, y varchar)") == "{x=1, y=b}"
    assert glue_type_of("row(a integer, b array(varchar))") == "struct<a:int,b:array<string>>"


def test_csv_and_json_output_parse_back(conn: Any) -> None:
    result = run_query(conn, "SELECT order_id, order_ts, order_total, region, ARRAY[1, 2] AS tags "
                             "FROM orders ORDER BY order_id")
    rows = list(csv.reader(io.StringIO(format_result(result, "csv"))))
    assert rows[0] == ["order_id", "order_ts", "order_total", "region", "tags"]
    assert rows[1] == ["o1", "2024-03-01 09:00:00.250", "20.00", "EU", "[1, 2]"]
    assert rows[2][3] == ""  # NULL
    records = json.loads(format_result(result, "json"), parse_float=Decimal)
    assert records[1] == {"order_id": "o2", "order_ts": "2024-03-02 10:00:00.000", "order_total": Decimal("89.99"),
                          "region": None, "tags": [1, 2]}
    assert json.loads(format_result(QueryResult(["a"], ["bigint"], []), "json")) == []
    table = format_result(result, "table")
    assert "order_total" in table and "decimal(12,2)" in table and "NULL" in table and "(3 rows)" in table
    with pytest.raises(TerminalError, match="FORMAT='xml' is unknown"):
        format_result(result, "xml")


def test_arrow_result_is_typed_as_the_trino_types(conn: Any) -> None:
    result, table = run_query_arrow(conn, "SELECT order_id, sum(order_total) AS total FROM orders GROUP BY 1")
    assert result.types == ["varchar", "decimal(38,2)"]
    assert [str(f.type) for f in table.schema] == ["string", "decimal128(38, 2)"]


# --- the Athena API service (no HTTP) -------------------------------------------------------------


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.extra: dict[str, dict[str, Any]] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str, **extra: Any) -> None:
        self.objects[f"s3://{Bucket}/{Key}"] = Body
        self.extra[f"s3://{Bucket}/{Key}"] = extra

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        return {"KeyCount": 0}

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        if Bucket != "results":
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadBucket")
        return {}


class FakeClients:
    def __init__(self) -> None:
        self.s3 = FakeS3()


WORKGROUPS = {
    "primary": {"Name": "primary", "State": "ENABLED", "Configuration": {}},
    "enforced": {"Name": "enforced", "State": "ENABLED", "Configuration": {
        "EnforceWorkGroupConfiguration": True,
        "ResultConfiguration": {"OutputLocation": "s3://results/enforced/",
                                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}}}},
}


def fake_emulator(headers: dict[str, str], action: str, params: dict[str, Any]) -> dict[str, Any]:
    assert action == "GetWorkGroup"
    if params["WorkGroup"] not in WORKGROUPS:
        raise ApiError("InvalidRequestException", f"WorkGroup {params['WorkGroup']} not found")
    return {"WorkGroup": WORKGROUPS[params["WorkGroup"]]}


@pytest.fixture()
def service(tmp_path: Path) -> Any:
    def mirror() -> Mirror:
        connection = duckdb.connect(":memory:")
        connection.execute("CREATE TABLE orders AS SELECT range AS n, 'x' || range AS label FROM range(5)")
        return Mirror(connection, DictCatalog({}), "default")

    clients = FakeClients()
    api = AthenaService(clients, load_settings(env={}), emulator=fake_emulator,  # type: ignore[arg-type]
                        mirror_factory=mirror)
    api.s3 = clients.s3  # type: ignore[attr-defined]
    yield api
    api.close()


def _start(api: AthenaService, sql: str, **extra: Any) -> str:
    request = {"QueryString": sql, "ResultConfiguration": {"OutputLocation": "s3://results/client/"}, **extra}
    return str(api.handle("StartQueryExecution", {}, request)["QueryExecutionId"])


def test_results_land_exactly_where_reported_and_page_with_a_header_first(service: Any) -> None:
    query_id = _start(service, "SELECT n, label, CAST(NULL AS varchar) AS gap FROM orders ORDER BY n")
    execution = service.wait(query_id)
    assert execution.state == "SUCCEEDED"
    described = service.handle("GetQueryExecution", {}, {"QueryExecutionId": query_id})["QueryExecution"]
    location = described["ResultConfiguration"]["OutputLocation"]
    assert location == f"s3://results/client/{query_id}.csv"
    assert (described["StatementType"], described["Status"]["State"]) == ("DML", "SUCCEEDED")
    assert service.s3.objects[location].decode().splitlines() == [
        '"n","label","gap"', '"0","x0",', '"1","x1",', '"2","x2",', '"3","x3",', '"4","x4",']
    assert json.loads(service.s3.objects[f"{location}.metadata"])["ColumnInfo"][0]["Type"] == "bigint"
    first = service.handle("GetQueryResults", {}, {"QueryExecutionId": query_id, "MaxResults": 3})
    assert [r["Data"] for r in first["ResultSet"]["Rows"]] == [
        [{"VarCharValue": "n"}, {"VarCharValue": "label"}, {"VarCharValue": "gap"}],
        [{"VarCharValue": "0"}, {"VarCharValue": "x0"}, {}],
        [{"VarCharValue": "1"}, {"VarCharValue": "x1"}, {}]]
    assert [c["Type"] for c in first["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]] == ["bigint", "varchar",
                                                                                         "varchar"]
    second = service.handle("GetQueryResults", {}, {"QueryExecutionId": query_id, "MaxResults": 3,
                                                    "NextToken": first["NextToken"]})
    assert [r["Data"][0]["VarCharValue"] for r in second["ResultSet"]["Rows"]] == ["2", "3", "4"]
    assert "NextToken" not in second


def test_one_row_per_page_gives_the_header_then_every_row_once_then_stops(service: Any) -> None:
    """MaxResults counts the header row on the first page (API_GetQueryResults.html). At MaxResults=1 the
    header took the only slot and the next token pointed at the header again: PyAthena's arraysize=1 read
    the column names forever."""
    query_id = _start(service, "SELECT n FROM orders ORDER BY n")
    assert service.wait(query_id).state == "SUCCEEDED"
    pages, token = [], None
    while len(pages) < 10:
        request = {"QueryExecutionId": query_id, "MaxResults": 1, **({"NextToken": token} if token else {})}
        page = service.handle("GetQueryResults", {}, request)
        pages.append([r["Data"][0]["VarCharValue"] for r in page["ResultSet"]["Rows"]])
        token = page.get("NextToken")
        if token is None:
            break
    assert pages == [["n"], ["0"], ["1"], ["2"], ["3"], ["4"]]


def test_an_enforcing_workgroup_overrides_the_client_location(service: Any) -> None:
    query_id = _start(service, "SELECT 1 AS one", WorkGroup="enforced")
    assert service.wait(query_id).state == "SUCCEEDED"
    location = f"s3://results/enforced/{query_id}.csv"
    described = service.handle("GetQueryExecution", {}, {"QueryExecutionId": query_id})["QueryExecution"]
    assert described["ResultConfiguration"]["OutputLocation"] == location
    assert service.s3.extra[location] == {"ServerSideEncryption": "AES256"}
    listed = service.handle("ListQueryExecutions", {}, {"WorkGroup": "enforced"})["QueryExecutionIds"]
    assert listed == [query_id]
    group = service.handle("GetWorkGroup", {}, {"WorkGroup": "primary"})["WorkGroup"]
    assert group["Configuration"]["EnforceWorkGroupConfiguration"] is False  # what SDKs read, filled in


def test_what_athena_refuses_at_submission_is_invalid_request(service: Any) -> None:
    with pytest.raises(ApiError) as malformed:
        _start(service, "SELEC 1")
    assert malformed.value.code == "InvalidRequestException"
    assert malformed.value.extra == {"AthenaErrorCode": "MALFORMED_QUERY"}
    with pytest.raises(ApiError, match="No output location provided"):
        service.handle("StartQueryExecution", {}, {"QueryString": "SELECT 1"})
    with pytest.raises(ApiError, match="WorkGroup nope"):
        _start(service, "SELECT 1", WorkGroup="nope")


def test_a_query_the_mirror_cannot_run_fails_with_the_same_line_as_run_query(service: Any, conn: Any) -> None:
    sql = "SELECT word_stem(label) FROM orders"
    query_id = _start(service, sql)
    execution = service.wait(query_id)
    with pytest.raises(QueryError) as direct:
        run_query(conn, sql)
    assert execution.state == "FAILED"
    assert execution.reason == str(direct.value)
    status = service.handle("GetQueryExecution", {}, {"QueryExecutionId": query_id})["QueryExecution"]["Status"]
    assert status["AthenaError"] == {"ErrorCategory": 2, "Retryable": False, "ErrorMessage": str(direct.value)}
    with pytest.raises(ApiError, match="Final query state: FAILED"):
        service.handle("GetQueryResults", {}, {"QueryExecutionId": query_id})
    batch = service.handle("BatchGetQueryExecution", {}, {"QueryExecutionIds": [query_id, "missing"]})
    assert [e["QueryExecutionId"] for e in batch["QueryExecutions"]] == [query_id]
    assert batch["UnprocessedQueryExecutionIds"][0]["QueryExecutionId"] == "missing"


def test_a_missing_result_bucket_is_refused_when_the_query_is_submitted(service: Any) -> None:
    """Athena checks the result bucket in StartQueryExecution itself (InvalidRequestException "Unable to
    verify/create output bucket"); a query id for a query that can only fail is not what clients expect."""
    request = {"QueryString": "SELECT 1", "ResultConfiguration": {"OutputLocation": "s3://no-such-bucket/r/"}}
    with pytest.raises(ApiError, match="Unable to verify/create output bucket no-such-bucket") as err:
        service.handle("StartQueryExecution", {}, request)
    assert err.value.code == "InvalidRequestException"


def test_the_same_client_request_token_starts_one_query(service: Any) -> None:
    first = _start(service, "SELECT 1", ClientRequestToken="t" * 32)
    assert _start(service, "SELECT 1", ClientRequestToken="t" * 32) == first
    # "An error is returned if a parameter, such as QueryString, has changed" (API_StartQueryExecution.html):
    # never the old query's id for another query.
    with pytest.raises(ApiError, match=r"ClientRequestToken .* QueryString") as err:
        _start(service, "SELECT 2", ClientRequestToken="t" * 32)
    assert err.value.code == "InvalidRequestException"


def test_a_token_lives_as_long_as_its_query_is_kept(service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token is forgotten with its execution (HISTORY): tokens grew without bound, and a retried token
    answered an id that GetQueryExecution no longer knew."""
    monkeypatch.setattr("analytics.athena_api.service.HISTORY", 2)
    ids = []
    for n in range(4):
        ids.append(_start(service, f"SELECT {n}", ClientRequestToken=f"token-{n}".ljust(32, "x")))
        assert service.wait(ids[-1]).state == "SUCCEEDED"
    assert len(service._tokens) <= 2
    again = _start(service, "SELECT 0", ClientRequestToken="token-0".ljust(32, "x"))
    assert again != ids[0]
    assert service.handle("GetQueryExecution", {}, {"QueryExecutionId": again})["QueryExecution"]["Query"] == "SELECT 0"


def test_stop_query_execution_interrupts_a_running_query(service: Any) -> None:
    query_id = _start(service, "SELECT count(*) AS n FROM UNNEST(sequence(1, 100000)) AS a(x) "
                               "CROSS JOIN UNNEST(sequence(1, 100000)) AS b(y) WHERE (x * y) % 7 = 3")
    running = service._get(query_id)
    deadline = time.monotonic() + 30
    while running.mirror is None and running.state not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.01)  # until a worker has it
    service.handle("StopQueryExecution", {}, {"QueryExecutionId": query_id})
    assert service.wait(query_id).state == "CANCELLED", running.reason
    assert running.reason == "Query was cancelled by user"
    with pytest.raises(ApiError, match="Current state: CANCELLED"):
        service.handle("GetQueryResults", {}, {"QueryExecutionId": query_id})


def test_the_emulator_patch_and_the_endpoint_agree_on_their_handshake() -> None:
    from analytics import athena_api
    from bootstrap.emulator_patches import athena_forward

    assert athena_forward.CONFIG_KEY == athena_api.FORWARD_CONFIG_KEY
    assert athena_forward.ORIGIN_HEADER == athena_api.ORIGIN_HEADER


def test_a_prompt_can_complete_views_tables_columns_and_functions(lake_engine: Engine) -> None:
    words = Mirror(lake_engine.conn, DictCatalog({}), "local").completions()
    assert {"sales_orders_current", "local.sales_orders_cdc", "order_total", "approx_distinct"} <= set(words)


def test_csv_and_column_info_shapes() -> None:
    assert csv_text(["a", "b"], [['x"y', None]]) == '"a","b"\n"x""y",\n'
    assert column_info("total", "decimal(38,2)")["Precision"] == 38
    assert column_info("total", "decimal(38,2)")["Scale"] == 2
    assert column_info("ts", "timestamp with time zone")["Type"] == "timestamp with time zone"


def test_the_endpoint_advertises_the_address_the_emulator_can_reach() -> None:
    """compose: bound on 0.0.0.0 in its container, the emulator reaches it by service name."""
    from analytics.athena_api.server import AthenaServer
    from common.config import load_settings

    settings = load_settings(env={})
    own = AthenaServer(settings, port=0, register=False)
    named = AthenaServer(settings, port=0, register=False, advertise="http://athena:4607")
    try:
        assert own.url == f"http://127.0.0.1:{own.port}"
        assert named.url == "http://athena:4607"
    finally:
        for server in (own, named):
            server._http.server_close()
            server.service.close()
