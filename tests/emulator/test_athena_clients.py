"""Issue 18: real Athena clients, used as a data engineer would, run Trino SQL against the local stack unchanged.

A seeded lake (the known lake of tests/fixtures/lake.py in the emulator's S3, crawled into Glue) and a
DynamoDB table holding its current state. Each client is pointed at the stack only by the standard
settings (AWS_ENDPOINT_URL for every service, AWS_ENDPOINT_URL_ATHENA for Athena; awslocal through the
emulator, which forwards Athena to the endpoint) and its answer is compared with a DynamoDB scan:
- awswrangler 3.x `wr.athena.read_sql_query`, CTAS-free and with its default CTAS approach, in its own
  environment (.venv-clients: it pins pyarrow<26, the project does not);
- PyAthena's cursor, PandasCursor and ArrowCursor;
- the AWS CLI (`aws athena start-query-execution` / `get-query-execution` / `get-query-results`) and
  `awslocal athena ...`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from analytics.athena_api.server import AthenaServer
from common.aws import Clients
from common.config import ROOT, Settings, with_overrides
from common.console import Console
from runners.crawler import crawl, spec_from_settings
from tests.conftest import free_port
from tests.fixtures.lake import current_items, drop_database, empty_bucket, write_s3_lake

CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
EMULATOR_BIN = ROOT / ".venv-emu" / "bin"
DATABASE = "clients_db"
MANAGED = "clients-managed"  # a workgroup with managed query results: rows through GetQueryResults only
# Trino SQL as a user writes it: date_format and the project's view, unchanged.
CURRENT = "SELECT order_id, status, date_format(order_ts, '%Y-%m-%d') AS day FROM sales_orders_current ORDER BY 1"
COUNT = "SELECT count(*) AS orders, approx_distinct(customer_id) AS customers FROM sales_orders_current"
UNRUNNABLE = "SELECT word_stem(product_name) AS stem FROM sales_orders_current"
UNRUNNABLE_REASON = "word_stem at line 1, column 8: Athena accepts it; the local mirror cannot run word_stem"


def dynamodb_state(clients: Clients, table: str) -> dict[str, tuple[str, str]]:
    """order_id -> (status, order day) from a scan of the table."""
    state = {}
    for page in clients.dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            state[item["order_id"]["S"]] = (item["status"]["S"], item["order_ts"]["S"][:10])
    return state


@pytest.fixture(scope="module")
def stack(emulator_settings: Settings, emulator_clients: Clients) -> Iterator[dict[str, Any]]:
    """The seeded lake, its DynamoDB table, an enforcing workgroup, and the endpoint on a free loopback port."""
    settings = with_overrides(emulator_settings, lake_bucket="clients-lake", results_bucket="clients-results",
                              glue_database=DATABASE, glue_table="sales_orders_cdc", table_name="clients_orders",
                              workgroup="clients-wg")
    clients = emulator_clients
    write_s3_lake(clients.s3, settings.lake_bucket)
    clients.s3.create_bucket(Bucket=settings.results_bucket)
    crawl(clients, settings, Console(capture=True), spec=spec_from_settings(settings, clients.account_id))
    clients.athena.create_work_group(Name=settings.workgroup, Configuration={
        "EnforceWorkGroupConfiguration": True,
        "ResultConfiguration": {"OutputLocation": f"s3://{settings.results_bucket}/workgroup/"}})
    clients.athena.create_work_group(Name=MANAGED, Configuration={
        "ManagedQueryResultsConfiguration": {"Enabled": True}})
    clients.dynamodb.create_table(
        TableName=settings.table_name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}])
    serializer = TypeSerializer()
    for item in current_items():
        clients.dynamodb.put_item(TableName=settings.table_name,
                                  Item={k: serializer.serialize(v) for k, v in item.items()})
    server = AthenaServer(settings, port=free_port(), clients=clients).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=settings.endpoint_url or "", AWS_ENDPOINT_URL_ATHENA=server.url,
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION=settings.region,
               AWS_REGION=settings.region, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               DISABLE_DEPRECATION_NOTICE="1", PATH=f"{EMULATOR_BIN}:{os.environ.get('PATH', '')}")
    try:
        yield {"settings": settings, "clients": clients, "server": server, "env": env,
               "expected": dynamodb_state(clients, settings.table_name)}
    finally:
        server.close()
        clients.dynamodb.delete_table(TableName=settings.table_name)
        for group in (settings.workgroup, MANAGED):
            clients.athena.delete_work_group(WorkGroup=group, RecursiveDeleteOption=True)
        for bucket in (settings.lake_bucket, settings.results_bucket):
            empty_bucket(clients.s3, bucket)
        drop_database(clients, DATABASE)


@pytest.fixture()
def user_env(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's environment as a user's shell after `eval "$(make -s env)"` (for in-process clients)."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in stack["env"].items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return stack["env"]


def _expected_rows(stack: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(order_id, status, day) for order_id, (status, day) in sorted(stack["expected"].items())]


# --- awswrangler (aws-sdk-pandas), in a notebook-like environment of its own ---------------------

WRANGLER = r"""
import json, sys
import awswrangler as wr
args = json.loads(sys.argv[1])
try:
    df = wr.athena.read_sql_query(args["sql"], database=args["database"], ctas_approach=args["ctas"],
                                  workgroup=args["workgroup"], s3_output=args.get("s3_output"),
                                  athena_query_wait_polling_delay=0.05)
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(0)
print(json.dumps({"columns": list(df.columns), "dtypes": [str(t) for t in df.dtypes],
                  "rows": json.loads(df.to_json(orient="values", date_format="iso"))}))
"""


def wrangler(stack: dict[str, Any], sql: str, ctas: bool, workgroup: str = "primary",
             s3_output: str | None = "s3://clients-results/wrangler/") -> dict[str, Any]:
    if not CLIENTS_PYTHON.exists():
        pytest.skip(f"awswrangler's environment is not installed at {CLIENTS_PYTHON.parent.parent}: "
                    "`make install-dev`")
    args = {"sql": sql, "database": DATABASE, "ctas": ctas, "workgroup": workgroup, "s3_output": s3_output}
    done = subprocess.run([str(CLIENTS_PYTHON), "-c", WRANGLER, json.dumps(args)], env=stack["env"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_awswrangler_read_sql_query_without_ctas(stack: dict[str, Any]) -> None:
    answer = wrangler(stack, CURRENT, ctas=False)
    assert answer.get("error") is None, answer
    assert answer["columns"] == ["order_id", "status", "day"]
    assert [tuple(r) for r in answer["rows"]] == _expected_rows(stack)
    counted = wrangler(stack, COUNT, ctas=False)
    assert counted["rows"] == [[len(stack["expected"]), 3]] and counted["dtypes"] == ["Int64", "Int64"]


def test_awswrangler_read_sql_query_with_its_default_ctas_in_an_enforcing_workgroup(stack: dict[str, Any]) -> None:
    # CTAS into a temporary Glue table (Parquet under the workgroup's location), read by its manifest, dropped.
    answer = wrangler(stack, CURRENT, ctas=True, workgroup=stack["settings"].workgroup, s3_output=None)
    assert answer.get("error") is None, answer
    assert [tuple(r) for r in answer["rows"]] == _expected_rows(stack)
    tables = stack["clients"].glue.get_tables(DatabaseName=DATABASE)["TableList"]
    assert [t["Name"] for t in tables] == ["sales_orders_cdc"]  # awswrangler dropped its temporary table


def test_awswrangler_sees_the_one_line_reason_of_a_query_the_mirror_cannot_run(stack: dict[str, Any]) -> None:
    answer = wrangler(stack, UNRUNNABLE, ctas=False)
    assert (answer["error"], answer["message"]) == ("QueryFailed", UNRUNNABLE_REASON)


# --- PyAthena ------------------------------------------------------------------------------------


def _pyathena(user_env: dict[str, str], work_group: str = "primary", **kwargs: Any) -> Any:
    from pyathena import connect

    staging = {} if work_group == MANAGED else {"s3_staging_dir": "s3://clients-results/pyathena/"}
    return connect(region_name=user_env["AWS_REGION"], schema_name=DATABASE, work_group=work_group,
                   poll_interval=0.05, **staging, **kwargs)


def test_pyathena_cursor(stack: dict[str, Any], user_env: dict[str, str]) -> None:
    from pyathena.error import OperationalError

    with _pyathena(user_env) as connection:
        cursor = connection.cursor()
        cursor.execute(CURRENT)
        assert [d[0] for d in cursor.description] == ["order_id", "status", "day"]
        assert [d[1] for d in cursor.description] == ["varchar", "varchar", "varchar"]
        assert cursor.fetchall() == _expected_rows(stack)
        cursor.execute("SELECT count(*) AS orders FROM sales_orders_current WHERE status <> %(status)s",
                       {"status": "CANCELLED"})
        assert cursor.fetchone() == (sum(s != "CANCELLED" for s, _ in stack["expected"].values()),)
        with pytest.raises(OperationalError, match=UNRUNNABLE_REASON):
            cursor.execute(UNRUNNABLE)


def test_pyathena_pandas_and_arrow_cursors(stack: dict[str, Any], user_env: dict[str, str]) -> None:
    from pyathena.arrow.cursor import ArrowCursor
    from pyathena.pandas.cursor import PandasCursor

    with _pyathena(user_env, cursor_class=PandasCursor) as connection:
        frame = connection.cursor().execute(
            "SELECT order_id, status, CAST(order_ts AS date) AS day, order_total FROM sales_orders_current "
            "ORDER BY order_id").as_pandas()
    assert list(frame.columns) == ["order_id", "status", "day", "order_total"]
    assert [(r.order_id, r.status, r.day.date().isoformat() if hasattr(r.day, "date") else str(r.day))
            for r in frame.itertuples()] == _expected_rows(stack)
    assert {str(v) for v in frame["order_total"]} == {str(i["order_total"]) for i in current_items()}
    # pyarrow's S3FileSystem ignores AWS_ENDPOINT_URL (apache/arrow#49643), so the ArrowCursor cannot read a
    # result CSV from a local S3; in a workgroup with managed query results it reads the rows through the API.
    with _pyathena(user_env, work_group=MANAGED, cursor_class=ArrowCursor) as connection:
        cursor = connection.cursor()
        table = cursor.execute(COUNT).as_arrow()
        assert cursor.output_location in (None, "")
    assert table.to_pylist() == [{"orders": len(stack["expected"]), "customers": 3}]


# --- the AWS CLI and awslocal --------------------------------------------------------------------


def _cli(stack: dict[str, Any], program: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([str(EMULATOR_BIN / program), "athena", *args, "--output", "json"], env=stack["env"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout or "{}")  # type: ignore[no-any-return]


def _cli_query(stack: dict[str, Any], program: str, sql: str) -> tuple[dict[str, Any], list[list[str | None]]]:
    started = _cli(stack, program, "start-query-execution", "--query-string", sql,
                   "--query-execution-context", f"Database={DATABASE}", "--work-group", "primary",
                   "--result-configuration", "OutputLocation=s3://clients-results/cli/")
    query_id = started["QueryExecutionId"]
    deadline = time.monotonic() + 60
    while True:  # each call is a process start: no sleep needed between polls
        execution = _cli(stack, program, "get-query-execution", "--query-execution-id", query_id)["QueryExecution"]
        if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            break
    if execution["Status"]["State"] != "SUCCEEDED":
        return execution, []
    rows = _cli(stack, program, "get-query-results", "--query-execution-id", query_id)["ResultSet"]["Rows"]
    return execution, [[d.get("VarCharValue") for d in r["Data"]] for r in rows]


@pytest.mark.parametrize("program", ["aws", "awslocal"])
def test_the_aws_cli_and_awslocal_run_trino_sql(stack: dict[str, Any], program: str) -> None:
    # aws: AWS_ENDPOINT_URL_ATHENA reaches the endpoint; awslocal passes --endpoint-url=$AWS_ENDPOINT_URL
    # (the emulator) for every command, and the emulator forwards Athena to the registered endpoint.
    assert stack["server"].registered
    execution, rows = _cli_query(stack, program, CURRENT)
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert rows[0] == ["order_id", "status", "day"]
    assert [tuple(r) for r in rows[1:]] == _expected_rows(stack)
    key = execution["ResultConfiguration"]["OutputLocation"].removeprefix("s3://clients-results/")
    body = stack["clients"].s3.get_object(Bucket="clients-results", Key=key)["Body"].read().decode()
    assert body.splitlines()[0] == '"order_id","status","day"'  # the CSV is exactly where it is reported
    failed, _ = _cli_query(stack, program, UNRUNNABLE)
    assert (failed["Status"]["State"], failed["Status"]["StateChangeReason"]) == ("FAILED", UNRUNNABLE_REASON)


def test_the_seeded_days_are_the_tables_days(stack: dict[str, Any]) -> None:
    """Guard for the comparisons above: the scan's days are real dates of the known lake."""
    assert {date.fromisoformat(day) for _, day in stack["expected"].values()} == {
        date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)}
    assert Path(EMULATOR_BIN / "aws").exists() and Path(EMULATOR_BIN / "awslocal").exists()
