"""Restart the embedded emulator (with persistence) in the middle of a run: nothing is lost.

MiniStack alone persists tables, items, Kinesis records, S3 objects and functions but not DynamoDB
stream records, so changes written but not yet read by the pipe vanished at a restart, and an old
stream iterator (it encodes an absolute position) silently skipped new records when the restart
fell between two polls. The stream-persistence patch (bootstrap/emulator_patches) keeps the stream,
as AWS does for 24 hours: every change reaches the lake, and no data-loss notice is raised.
"""

from __future__ import annotations

from bootstrap import emulator
from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from generator.seed import run_seed
from runners import service
from runners.loop import read_status
from tests.emulator.test_pipeline import assert_lake_matches, stream_event_ids


def seed(settings: Settings, orders: int, seed: int) -> None:
    run_seed(Clients(settings), settings, orders=orders, rate=None, duration=None, seed=seed,
             console=Console(capture=True))


def test_a_persisted_restart_keeps_the_stream_and_loses_no_change(persistent_emulator: Settings) -> None:
    clients = Clients(persistent_emulator)
    apply(clients, build_plan(clients, persistent_emulator), Console(capture=True))
    service.start(persistent_emulator)
    seed(persistent_emulator, 120, seed=21)
    service.wait_drained(persistent_emulator, timeout=180)

    # Changes the pipe has not read yet when the emulator goes down: they must survive the restart.
    service.stop(persistent_emulator)
    seed(persistent_emulator, 80, seed=22)
    before = stream_event_ids(clients, persistent_emulator)
    emulator.stop(persistent_emulator)
    emulator.start(persistent_emulator, persist=True)

    clients = Clients(persistent_emulator)
    assert stream_event_ids(clients, persistent_emulator) == before  # the stream came back whole
    assert build_plan(clients, persistent_emulator).pending == ()  # and so did every resource
    service.start(persistent_emulator)
    seed(persistent_emulator, 60, seed=23)
    service.wait_drained(persistent_emulator, timeout=180)

    assert (read_status(persistent_emulator.runner_dir, "pipe") or {}).get("data_loss") == []
    assert_lake_matches(clients, persistent_emulator, stream_complete=True)


def test_a_restart_between_two_polls_does_not_skip_new_changes(persistent_emulator: Settings) -> None:
    """The runners keep running across the restart, so their open iterators outlive it."""
    clients = Clients(persistent_emulator)
    apply(clients, build_plan(clients, persistent_emulator), Console(capture=True))
    service.start(persistent_emulator)
    seed(persistent_emulator, 60, seed=31)
    service.wait_drained(persistent_emulator, timeout=180)

    emulator.stop(persistent_emulator)
    emulator.start(persistent_emulator, persist=True)
    seed(persistent_emulator, 60, seed=32)
    service.wait_drained(persistent_emulator, timeout=180)

    assert (read_status(persistent_emulator.runner_dir, "pipe") or {}).get("data_loss") == []
    assert_lake_matches(Clients(persistent_emulator), persistent_emulator, stream_complete=True)
