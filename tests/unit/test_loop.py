"""The runner loop's status file: atomic per writer, naming the process and its completed passes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from botocore.exceptions import ConnectionClosedError

from common.errors import TransientError
from runners.loop import Stats, read_status, run_forever, write_status


class FakeRunner:
    """Plays a script of pass outcomes (True/False: idle or not; an exception: the pass raises)."""

    def __init__(self, name: str, outcomes: list[bool | BaseException] | None = None,
                 stop: threading.Event | None = None) -> None:
        self.name = name
        self.stats = Stats()
        self.outcomes = list(outcomes or [])
        self.stop = stop
        self.closed = False

    def run_once(self) -> bool:
        outcome = self.outcomes.pop(0)
        if not self.outcomes and self.stop is not None:
            self.stop.set()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        self.closed = True


def test_writers_of_one_runner_kind_never_share_a_temp_file(tmp_path: Path) -> None:
    writers = [FakeRunner("pipe") for _ in range(4)]
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def work(runner: FakeRunner) -> None:
        barrier.wait()
        try:
            for n in range(300):
                runner.stats.passes = n
                write_status(runner, tmp_path)
        except BaseException as exc:  # the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads((tmp_path / "pipe.status.json").read_text())["passes"] == 299
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.status.json"]  # no temp file left behind


def test_status_names_the_process_and_counts_only_completed_passes(tmp_path: Path) -> None:
    stop = threading.Event()
    runner = FakeRunner("pipe", [TransientError("busy"), True, False], stop)
    # Not in the main thread: run_forever would install its signal handlers into pytest.
    thread = threading.Thread(target=run_forever, args=(runner, tmp_path, stop),
                              kwargs={"idle_sleep": 0, "max_backoff": 0})
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    status = read_status(tmp_path, "pipe") or {}
    assert status["pid"] == os.getpid()
    assert (status["passes"], status["ok_passes"], status["errors"]) == (3, 2, 1)
    assert runner.closed


def test_a_first_pass_that_fails_is_not_a_completed_one(tmp_path: Path) -> None:
    stop = threading.Event()
    runner = FakeRunner("firehose", [TransientError("busy")], stop)
    thread = threading.Thread(target=run_forever, args=(runner, tmp_path, stop),
                              kwargs={"idle_sleep": 0, "max_backoff": 0})
    thread.start()
    thread.join(timeout=30)
    status = read_status(tmp_path, "firehose") or {}
    assert (status["passes"], status["ok_passes"]) == (1, 0)


def test_a_connection_closed_mid_pass_is_retried_not_fatal(tmp_path: Path) -> None:
    """The emulator restarting under a runner closes its connection; the next pass goes on."""
    stop = threading.Event()
    closed = ConnectionClosedError(endpoint_url="http://127.0.0.1:1/")
    runner = FakeRunner("pipe", [closed, True], stop)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            run_forever(runner, tmp_path, stop, idle_sleep=0, max_backoff=0)
        except BaseException as exc:  # the assertion below reports it
            failures.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert failures == []
    status = read_status(tmp_path, "pipe") or {}
    assert (status["passes"], status["ok_passes"], status["errors"]) == (2, 1, 1)
    assert status["last_error"].startswith("ConnectionClosedError: Connection was closed")
