"""Bad user input: one clear line, a non-zero exit, nothing touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError
from typer.testing import CliRunner, Result

import cli
from cli import app
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["seed", "--orders", "-3"], {}, "error: --orders must be a whole number from 1 to 1,000,000, got '-3'"),
        (["seed", "--rate", "0"], {}, "error: --rate must be a number above 0 and at most 100,000"),
        (["plan"], {"SHARD_COUNT": "-1"}, "error: SHARD_COUNT=-1 is out of range; AWS allows 1 to 500"),
        (["plan"], {"BUFFER_INTERVAL_S": "soon"},
         "error: BUFFER_INTERVAL_S='soon' is not valid; set it to a whole number"),
        (["plan", "--target", "azure"], {}, "error: TARGET='azure' is not a target; use one of embedded, compose, aws"),
        (["runner", "pipe", "--target", "aws"], {}, "error: on TARGET=aws the managed Pipe and Firehose run"),
        # drain said "runner(s) pipe, firehose not running" and status showed both "stopped": on aws there are none.
        (["drain", "--target", "aws"], {}, "error: drain waits for the local runners; on TARGET=aws the managed Pipe "
                                           "and Firehose run"),
        (["status", "--target", "aws"], {}, "error: status shows the local runners; on TARGET=aws the managed Pipe "
                                            "and Firehose run"),
        (["compact", "--target-rows", "0"], {}, "error: --target-rows must be a positive whole number of rows per"),
        (["compact", "--more-than", "-1"], {}, "error: --more-than must be a whole number of objects, 0 or more"),
        (["compact", "--grace", "-2"], {}, "error: --grace must be a number of seconds from 0 to 3600, got -2.0"),
        (["compact", "--day", "2026-13-01"], {}, "error: --day '2026-13-01': month must be a number from 1 to 12"),
        (["backfill", "--since", "0001-01-01T00:00:00+01:00"], {},
         "error: SINCE='0001-01-01T00:00:00+01:00' is not a time"),
        # An empty value is a value: it used to mean "not given" (every day, the whole table).
        (["backfill", "--since", ""], {}, "error: SINCE='' is not a time"),
        (["compact", "--day", ""], {}, "error: --day must be a UTC day written YYYY-MM-DD, got ''"),
        # `make query` with neither SQL nor FILE passes an empty SQL.
        (["query", ""], {}, "error: give the SQL (SQL=...) or a file (FILE=path.sql), one of the two"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args: list[str], env: dict[str, str], line: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("TARGET", "SHARD_COUNT", "BUFFER_INTERVAL_S", "PIPELINE_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    result = CliRunner().invoke(app, args, env={"PORT": str(free_port()), **env})
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(line)


def test_commands_that_need_the_emulator_say_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TARGET", raising=False)
    port = free_port()
    result = CliRunner().invoke(app, ["plan"], env={"PORT": str(port)})
    assert result.exit_code == 1
    assert result.output.strip() == f"error: no AWS emulator answers at http://127.0.0.1:{port}; run `make up` first"


# -- every bad value at the command line or in the config: one line naming it, exit 1, nothing written -----------


def invoke(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Result:
    """Run the CLI on a free port and a fresh state dir; starting the emulator or a runner fails the test."""
    import bootstrap.emulator
    import runners.service

    def forbid(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a bad value must stop the command before anything starts")

    monkeypatch.setattr(bootstrap.emulator, "start", forbid)
    monkeypatch.setattr(runners.service, "start", forbid)
    monkeypatch.setattr(runners.service, "run", forbid)
    for key in ("TARGET", "SHARD_COUNT", "PORT", "BUFFER_INTERVAL_S", "PIPELINE_CONFIG", "STATE_DIR", "DEBUG"):
        monkeypatch.delenv(key, raising=False)
    return CliRunner().invoke(app, args, env={"PORT": str(free_port()), "STATE_DIR": str(tmp_path / "state"), **env})


def one_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback: a clean exit
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "toml", "line"),
    [
        (["plan"], b"shard_count = [\n", "is not valid TOML (Invalid value (at end of document)); fix it or unset"),
        (["up"], b"table_name = '\xff\xfe'\n", "is not UTF-8 text"),
        (["plan"], b"shard_count = 1.9\n", "error: SHARD_COUNT=1.9 is not valid; set it to a whole number from 1 to"),
        (["up"], b"port = true\n", "error: PORT=True is not valid; set it to a whole number from 1 to 65,494"),
    ],
)
def test_a_bad_config_file_is_one_line(args: list[str], toml: bytes, line: str, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_bytes(toml)
    first = one_line(invoke(args, {"PIPELINE_CONFIG": str(cfg), "PORT": ""}, monkeypatch, tmp_path))  # "": unset
    assert first.startswith(line if line.startswith("error:") else f"error: PIPELINE_CONFIG={cfg} {line}")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("command", [["up"], ["down"], ["apply"], ["runner", "pipe"], ["sql"]])
def test_an_unwritable_state_dir_is_one_line(command: list[str], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    taken = tmp_path / "state"
    taken.write_text("a file where the state directory should be")
    line = one_line(invoke(command, {}, monkeypatch, tmp_path))
    assert line.startswith(f"error: STATE_DIR={taken} is not a writable directory (")
    assert line.endswith("; set STATE_DIR to a directory you can write")


def test_an_unknown_runner_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    line = one_line(invoke(["runner", "nope"], {}, monkeypatch, tmp_path))
    assert line == "error: unknown runner 'nope'; use one of pipe, firehose"
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["seed", "--orders", "1e20"], "error: --orders must be a whole number from 1 to 1,000,000, got '1e20'"),
        (["seed", "--orders", "100000000000000000000"], "error: --orders must be a whole number from 1 to 1,000,000"),
        (["seed", "--orders", "2.5"], "error: --orders must be a whole number from 1 to 1,000,000, got '2.5'"),
        (["seed", "--rate", "nan"], "error: --rate must be a number above 0 and at most 100,000 (orders per second"),
        (["seed", "--rate", "1e9"], "error: --rate must be a number above 0 and at most 100,000 (orders per second"),
        (["seed", "--duration", "-1"], "error: --duration must be a number above 0 and at most 604,800 (seconds"),
        (["seed", "--days", "inf"], "error: --days must be a number above 0 and at most 3,650 (days of history"),
        (["seed", "--seed", "-1"], "error: --seed must be a whole number from 0 to 4,294,967,295, got '-1'"),
        (["seed", "--seed", "1.5"], "error: --seed must be a whole number from 0 to 4,294,967,295, got '1.5'"),
        (["seed", "--threads", "99"], "error: --threads must be a whole number from 1 to 16, got '99'"),
        (["drain", "--timeout", "-5"], "error: --timeout must be a number above 0 and at most 86,400 (seconds"),
        (["compact", "--more-than", "x"], "error: --more-than must be a whole number of objects, 0 or more, got 'x'"),
        (["compact", "--target-rows", "1e3"], "error: --target-rows must be a positive whole number of rows per file"),
    ],
)
def test_a_bad_option_is_one_line_naming_its_range(args: list[str], line: str, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    assert one_line(invoke(args, {}, monkeypatch, tmp_path)).startswith(line)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:4599/"), 1,
         'error: the AWS endpoint stopped answering (Could not connect to the endpoint URL: "http://127.0.0.1:4599/")'),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:4599/"), 1,
         "error: the AWS endpoint stopped answering (Connection was closed before we received a valid response"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
)
def test_a_seed_whose_emulator_goes_away_ends_with_one_line(raised: BaseException, code: int, line: str,
                                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import generator.seed

    def lost(*args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(generator.seed, "run_seed", lost)
    monkeypatch.setattr(cli, "clients_for", lambda settings: object())
    result = invoke(["seed", "--orders", "10"], {}, monkeypatch, tmp_path)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(line)
    if code == 1:
        assert lines[0].endswith("if the emulator was stopped (`make down`), `make up` starts it again")


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    """--help, --version, completion and a mistyped flag stay quick: the stages load inside their commands."""
    heavy = ("boto3", "pyarrow", "duckdb", "faker", "sqlglot", "prompt_toolkit")
    code = f"import sys, cli; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=Path(cli.__file__).parent, capture_output=True,
                            text=True, check=True, timeout=60).stdout.split()
    assert loaded == []


def test_version_prints_the_package_version_and_exits() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip().startswith("sales-orders-cdc ")


def test_internal_notes_show_only_with_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    from common.console import Console

    monkeypatch.delenv("DEBUG", raising=False)
    quiet = Console(capture=True)
    quiet.detail("DuckDB reads via arrow-s3")
    assert quiet.lines == []
    monkeypatch.setenv("DEBUG", "1")  # what --debug sets
    loud = Console(capture=True)
    loud.detail("DuckDB reads via arrow-s3")
    assert loud.lines == ["DuckDB reads via arrow-s3"]


def test_a_crawl_reads_as_a_sentence_not_a_repr() -> None:
    from runners.crawler import CrawlResult

    result = CrawlResult("db", "t", "s3://b/orders/", table_created=True, columns_added=("a", "b"),
                         partitions_added=(("2026", "01", "05"),), partitions_total=3, objects_read=7)
    assert result.summary() == ("crawled db.t: table created, 2 column(s) added; 3 partition(s), 1 new; "
                                "7 object(s) read")


def test_up_on_aws_refuses_and_points_to_deploy_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`make up TARGET=aws` used to plan and apply on the real account with no confirmation (deploy-aws asks)."""
    import bootstrap.plan
    import common.aws

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("make up must not reach AWS")

    monkeypatch.setattr(common.aws, "Clients", never)
    monkeypatch.setattr(bootstrap.plan, "apply", never)
    line = one_line(invoke(["up", "--target", "aws"], {}, monkeypatch, tmp_path))
    assert line == ("error: make up starts the local stack; on TARGET=aws, make deploy-aws plans the pipeline, "
                    "asks, then applies it")


def test_a_query_file_that_is_not_utf8_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_bytes(b"SELECT '\xff'")
    line = one_line(invoke(["query", "--file", str(bad)], {}, monkeypatch, tmp_path))
    assert line == f"error: --file {bad} is not UTF-8 text; save it as UTF-8"


def test_a_dashboard_path_that_cannot_be_written_is_refused_before_the_analysis(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """It failed in write_dashboard's mkdir (FileExistsError), after the whole analysis had run."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = one_line(invoke(["analyze", "--out", str(blocker / "index.html")], {}, monkeypatch, tmp_path))
    assert line.startswith(f"error: --out {blocker / 'index.html'} cannot be written (")
    assert line.endswith("); give a path in a directory you can write")
