"""`make status`'s rows and problem lines, from status files as the runners write them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from common.config import load_settings
from common.process import exclusive
from runners import service
from runners.status_view import COLUMNS, RunnerRow, drain_progress, read_view, status_problems, status_row


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


def test_the_view_reads_each_runners_status_file_and_lock(tmp_path: Path) -> None:
    settings = load_settings(env={"STATE_DIR": str(tmp_path)})
    settings.runner_dir.mkdir(parents=True)
    (settings.runner_dir / "firehose.status.json").write_text(json.dumps(
        {"records_in": 1200, "records_out": 1100, "pending": 100, "data_loss": ["shard-0: trimmed"]}))
    with exclusive(service.lock_path(settings, "pipe")):  # the pipe runner holds its lock: it runs
        view = read_view(settings)
    pipe, firehose = view.rows
    assert pipe == RunnerRow(status_row("pipe", {}, pid=os.getpid()), stopped=False)  # no status file yet
    assert firehose == RunnerRow(("firehose", "stopped", "1,200", "1,100", "0", "100", "-", "0"), stopped=True)
    assert view.problems == ("firehose: DATA LOSS: shard-0: trimmed",)


def test_drain_progress_names_what_each_runner_moved() -> None:
    assert drain_progress({}) == "draining: pipe moved 0, firehose delivered 0 (0 buffered)"
    assert drain_progress({"pipe": {"records_out": 5000}, "firehose": {"records_out": 4000, "pending": 1200}}) == (
        "draining: pipe moved 5,000, firehose delivered 4,000 (1,200 buffered)")
