"""The runner loop's status file: atomic per writer, naming the process and its completed passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from botocore.exceptions import ClientError, ConnectionClosedError

from common.errors import TerminalError, TransientError
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


# --- which failed passes are retried, and which end the runner ------------------------------------


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "User: arn:aws:iam::1:user/x is not authorized"}},
                       operation)


def run_in_thread(runner: FakeRunner, tmp_path: Path, stop: threading.Event) -> list[BaseException]:
    """run_forever in a thread (it installs signal handlers only in the main thread); what it raised."""
    failures: list[BaseException] = []

    def work() -> None:
        try:
            run_forever(runner, tmp_path, stop, idle_sleep=0, max_backoff=0)
        except BaseException as exc:  # the caller's assertions report it
            failures.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return failures


def test_a_terminal_error_ends_the_runner_at_once_with_one_line_naming_the_error_and_the_fix(tmp_path: Path) -> None:
    stop = threading.Event()
    runner = FakeRunner("pipe", [client_error("AccessDeniedException", "PutRecords"), True, True], stop)
    (failure,) = run_in_thread(runner, tmp_path, stop)
    assert isinstance(failure, TerminalError)
    assert str(failure).startswith("the pipe runner stopped: PutRecords answered AccessDeniedException (")
    assert "grant the permission" in str(failure) and "\n" not in str(failure)
    assert len(runner.outcomes) == 2  # not retried
    assert runner.closed
    status = read_status(tmp_path, "pipe") or {}
    assert status["last_error"] == str(failure)  # `make status` says why it stopped


def test_transient_and_unknown_errors_keep_being_retried(tmp_path: Path) -> None:
    stop = threading.Event()
    outcomes: list[bool | BaseException] = [
        client_error("ProvisionedThroughputExceededException", "PutRecords"),
        client_error("ExpiredIteratorException", "GetRecords"),
        TransientError("shard s: ExpiredIteratorException; reopening from the checkpoint"),
        client_error("SomeNewCode", "PutRecords"),  # neither list: retried, as every ClientError was before
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1/"),
        OSError("disk busy"),
        True,
    ]
    runner = FakeRunner("firehose", outcomes, stop)
    assert run_in_thread(runner, tmp_path, stop) == []
    status = read_status(tmp_path, "firehose") or {}
    assert (status["passes"], status["ok_passes"], status["errors"]) == (7, 1, 6)


def test_a_terminal_error_exits_the_runner_process_non_zero_with_one_line(tmp_path: Path) -> None:
    """What `python -m cli runner <name>` does with it: the CLI's boundary prints one line and exits 1."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path

        import typer
        from botocore.exceptions import ClientError

        import cli
        from runners.loop import Stats, run_forever


        class Denied:
            name = "pipe"
            stats = Stats()

            def run_once(self):
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutRecords")

            def close(self):
                pass


        try:
            cli.boundary(lambda: run_forever(Denied(), Path(sys.argv[1])))()
        except typer.Exit as exc:  # what the CLI's app turns into the exit code
            sys.exit(exc.exit_code)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[3], timeout=60,
                          env={**os.environ, "DEBUG": "", "COLUMNS": "400"})
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the pipe runner stopped: PutRecords answered AccessDeniedException (no); ")
