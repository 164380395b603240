"""What `make status` and `make drain` show: one row per runner, the problems worth a line, the drain progress.

`read_view` reads each runner's status file and lock; everything else is pure, tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config import Settings
from runners import service
from runners.loop import read_status

COLUMNS = ("runner", "state", "in", "out", "objects", "pending", "lag", "errors")
LEFT_ALIGNED = ("runner", "state")  # words; the other columns are numbers, aligned right


@dataclass(frozen=True)
class RunnerRow:
    """One runner's cells, and whether it is stopped (the table shows that row in red)."""

    cells: tuple[str, ...]
    stopped: bool


@dataclass(frozen=True)
class StatusView:
    """Every runner's row, in `service.RUNNERS` order, and the lines a human must read."""

    rows: tuple[RunnerRow, ...]
    problems: tuple[str, ...]


def read_view(settings: Settings) -> StatusView:
    """The view now: each runner's last status file (empty before its first pass) and the pid holding its lock."""
    rows: list[RunnerRow] = []
    problems: list[str] = []
    for name in service.RUNNERS:
        status = read_status(settings.runner_dir, name) or {}
        pid = service.running(settings, name)
        rows.append(RunnerRow(status_row(name, status, pid), stopped=pid is None))
        problems += status_problems(name, status)
    return StatusView(tuple(rows), tuple(problems))


def status_row(name: str, status: dict[str, Any], pid: int | None) -> tuple[str, ...]:
    """The table row of one runner (numbers with thousands separators, lag in ms or '-')."""
    lag = status.get("lag_ms")
    return (name, f"pid {pid}" if pid is not None else "stopped",
            *(f"{status.get(k, 0):,}" for k in ("records_in", "records_out", "objects_out", "pending")),
            "-" if lag is None else f"{lag:,} ms", f"{status.get('errors', 0):,}")


def status_problems(name: str, status: dict[str, Any]) -> list[str]:
    """The lines a human must read: data loss, dead letters, the last error."""
    problems = [f"{name}: DATA LOSS: {line}" for line in status.get("data_loss", [])]
    if status.get("dead_letters"):
        problems.append(f"{name}: {status['dead_letters']:,} record(s) sent to the dead-letter destination; "
                        "fix the cause, then `make redrive` replays them")
    if status.get("last_error"):
        problems.append(f"{name}: last error: {status['last_error']}")
    return problems


def drain_progress(statuses: dict[str, dict[str, Any]]) -> str:
    """`make drain`'s spinner line: what each runner has moved so far, and what the firehose still buffers."""
    pipe, firehose = statuses.get("pipe", {}), statuses.get("firehose", {})
    return (f"draining: pipe moved {pipe.get('records_out', 0):,}, firehose delivered "
            f"{firehose.get('records_out', 0):,} ({firehose.get('pending', 0):,} buffered)")
