"""The chaos drill, short: runners SIGKILLed at random moments and one emulator restart during a seed,
and still every change in the stream reaches the lake and the lake equals a DynamoDB scan."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap import emulator
from chaos.drill import run_drill
from common.config import Settings, load_settings
from common.console import Console
from runners import service


@pytest.fixture()
def persistent(tmp_path: Path) -> Iterator[Settings]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings(env={}, port=port, state_dir=tmp_path, buffer_interval_s=1, processor_interval_s=0)
    emulator.start(settings, persist=True)
    try:
        yield settings
    finally:
        service.stop(settings)
        emulator.stop(settings)


def test_kills_and_a_restart_during_a_seed_lose_nothing(persistent: Settings) -> None:
    console = Console(capture=True)
    report = run_drill(persistent, orders=240, kills=4, seed=5, console=console, window_s=2.0)

    assert len(report.kills) == 4 and report.emulator_restarts == 1
    assert report.stream_changes > 240  # placements and their later changes
    assert report.changes_lost == 0
    assert report.error_records == 0
    assert report.reconciliation is not None and report.reconciliation.ok, report.reconciliation.report_lines()
    assert report.ok
    assert any(line.startswith("changes lost: 0") for line in report.lines())
