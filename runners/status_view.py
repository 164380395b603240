"""What `make status` shows: one row per runner and the problems worth a line, from its status file.

Pure: the CLI reads the status files and the locks, this turns them into cells and sentences.
"""

from __future__ import annotations

from typing import Any

COLUMNS = ("runner", "state", "in", "out", "objects", "pending", "lag", "errors")


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
