"""`make status`'s rows and problem lines, from status files as the runners write them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from runners.status_view import COLUMNS, status_problems, status_row


def test_a_row_has_every_column_with_readable_numbers() -> None:
    row = status_row("firehose", {"records_in": 12345, "records_out": 12000, "objects_out": 7, "pending": 345,
                                  "lag_ms": 1500, "errors": 2}, pid=42)
    assert len(row) == len(COLUMNS)
    assert row == ("firehose", "pid 42", "12,345", "12,000", "7", "345", "1,500 ms", "2")
    assert status_row("pipe", {}, pid=None)[1:] == ("stopped", "0", "0", "0", "0", "-", "0")


def test_data_loss_dead_letters_and_the_last_error_each_get_a_line() -> None:
    lines = status_problems("pipe", {"data_loss": ["shard-1: trimmed"], "dead_letters": 3, "last_error": "boom"})
    assert lines == ["pipe: DATA LOSS: shard-1: trimmed",
                     "pipe: 3 record(s) sent to the dead-letter destination; fix the cause, then `make redrive` "
                     "replays them",
                     "pipe: last error: boom"]
    assert status_problems("pipe", {"records_in": 5}) == []


def test_watch_refreshes_until_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli

    ticks: list[float] = []

    def tick(seconds: float) -> None:
        ticks.append(seconds)
        if len(ticks) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", tick)
    result = CliRunner().invoke(app, ["status", "--watch"], env={"STATE_DIR": str(tmp_path)})
    assert result.exit_code == 0
    assert len(ticks) == 3  # three refreshes, then Ctrl-C ends it quietly
    assert "local runners" in result.output
