"""Bad user input: one clear line, a non-zero exit, nothing touched."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from cli import app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["seed", "--orders", "-3"], {}, "error: --orders must be a positive integer, got -3"),
        (["seed", "--rate", "0"], {}, "error: --rate must be a positive number"),
        (["plan"], {"SHARD_COUNT": "-1"}, "error: SHARD_COUNT=-1 is out of range; AWS allows 1 to 500"),
        (["plan"], {"BUFFER_INTERVAL_S": "soon"},
         "error: BUFFER_INTERVAL_S='soon' is not valid; set it to a whole number"),
        (["plan", "--target", "azure"], {}, "error: TARGET='azure' is not a target; use one of embedded, compose, aws"),
        (["runner", "pipe", "--target", "aws"], {}, "error: on TARGET=aws the managed Pipe and Firehose run"),
        (["compact", "--target-rows", "0"], {}, "error: --target-rows must be a positive whole number of rows per"),
        (["compact", "--more-than", "-1"], {}, "error: --more-than must be a whole number of objects, 0 or more"),
        (["compact", "--grace", "-2"], {}, "error: --grace must be a number of seconds from 0 to 3600, got -2.0"),
        (["compact", "--day", "2026-13-01"], {}, "error: --month must be a number from 1 to 12, got '13'"),
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
