"""`make query` as a user runs it: on a seeded pipeline, its answers equal a DynamoDB scan, through the local
mirror and through the Athena API alike, as a table, CSV or JSON; a construct the mirror cannot run is one line."""

from __future__ import annotations

import csv
import io
import json

from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from typer.testing import CliRunner

from bootstrap.plan import apply, build_plan
from cli import app
from common.aws import Clients
from common.config import Settings
from common.console import Console
from generator.seed import run_seed
from runners import service

CURRENT = "SELECT count(*) AS current_orders FROM sales_orders_current"


def test_make_query_answers_as_a_dynamodb_scan_in_every_format(persistent_emulator: Settings) -> None:
    settings = persistent_emulator
    clients = Clients(settings)
    apply(clients, build_plan(clients, settings), Console(capture=True))
    service.start(settings)
    run_seed(clients, settings, orders=80, rate=None, duration=None, seed=8, console=Console(capture=True))
    service.wait_drained(settings, timeout=180)
    scanned = clients.dynamodb.scan(TableName=settings.table_name, Select="COUNT")["Count"]
    env = {"PORT": str(settings.port), "STATE_DIR": str(settings.state_dir)}

    def query(*args: str) -> str:
        result = CliRunner().invoke(app, ["query", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert json.loads(query(CURRENT, "--format", "json")) == [{"current_orders": scanned}]
    assert list(csv.DictReader(io.StringIO(query(CURRENT, "--format", "csv")))) == [
        {"current_orders": str(scanned)}]
    assert json.loads(query(CURRENT, "--format", "json", "--engine", "athena")) == [{"current_orders": scanned}]
    assert str(scanned) in query(CURRENT)  # the table a terminal shows
    trino = ("SELECT date_format(max(order_ts), '%Y-%m-%d') AS last_day, approx_distinct(customer_id) > 0 AS any_ "
             "FROM sales_orders_current")
    (row,) = json.loads(query(trino, "--format", "json"))
    assert len(row["last_day"]) == 10 and row["any_"] is True

    failed = CliRunner().invoke(app, ["query", "SELECT word_stem(status) FROM sales_orders_current"], env=env)
    assert failed.exit_code == 1
    assert failed.output.strip().splitlines() == [
        "error: word_stem at line 1, column 8: Athena accepts it; the local mirror cannot run word_stem"]

    # `make sql`: typed statements run one after the other, a bad one says why and the prompt goes on,
    # Ctrl-D (end of input) leaves, and the history is kept for the next session.
    with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
        keys.send_text(f"{CURRENT}\rSELECT word_stem(status) FROM sales_orders_current\r")
        keys.close()
        session = CliRunner().invoke(app, ["sql"], env=env)
    assert session.exit_code == 0, session.output
    assert str(scanned) in session.output
    assert "error: word_stem at line 1, column 8" in session.output
    assert CURRENT in (settings.state_dir / "sql_history").read_text()
