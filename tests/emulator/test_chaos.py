"""The chaos drill, short: runners SIGKILLed at random moments and one emulator restart during a seed,
and still every change in the stream reaches the lake and the lake equals a DynamoDB scan."""

from __future__ import annotations

from chaos.drill import run_drill
from common.config import Settings
from common.console import Console


def test_kills_and_a_restart_during_a_seed_lose_nothing(persistent_emulator: Settings) -> None:
    console = Console(capture=True)
    report = run_drill(persistent_emulator, orders=240, kills=4, seed=5, console=console, window_s=2.0)

    assert len(report.kills) == 4 and report.emulator_restarts == 1
    assert report.stream_changes > 240  # placements and their later changes
    assert report.changes_lost == 0
    assert report.error_records == 0
    assert report.reconciliation is not None and report.reconciliation.ok, report.reconciliation.report_lines()
    assert report.ok
    assert any(line.startswith("changes lost: 0") for line in report.lines())
