"""Starting the runners: `make up` reports only runners that came up, and names the one that did not."""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from common.config import ROOT, Settings, load_settings
from common.errors import TerminalError
from common.process import terminate
from runners import service
from runners.loop import read_status
from tests.conftest import free_port


@pytest.fixture()
def nowhere(tmp_path: Path) -> Settings:
    """Settings whose emulator port has nothing listening: a runner started there dies at once."""
    return load_settings(env={}, port=free_port(), state_dir=tmp_path)


def test_start_fails_with_one_line_naming_the_runner_that_died(nowhere: Settings) -> None:
    try:
        with pytest.raises(TerminalError) as err:
            service.start(nowhere, timeout=60)
    finally:
        service.stop(nowhere)
    message = str(err.value)
    assert "\n" not in message
    name = re.match(r"the (pipe|firehose) runner exited right after it started \(code 1\)", message)
    assert name, message
    assert f"its log {nowhere.runner_dir / (name[1] + '.log')} ends with: error: no AWS emulator answers" in message


def test_the_pipe_runner_reads_only_once_the_firehose_runner_reads(nowhere: Settings) -> None:
    """As on AWS the delivery stream is ACTIVE before the pipe exists (Firehose reads from LATEST): a firehose
    runner that never completes a pass keeps the pipe runner from reading at all (it was launched beside it,
    and exits untold)."""
    try:
        with pytest.raises(TerminalError, match=r"^the firehose runner exited right after it started"):
            service.start(nowhere, timeout=60)
        assert service.running(nowhere, "pipe") is None  # stopped, not left waiting
    finally:
        service.stop(nowhere)
    assert (nowhere.runner_dir / "firehose.log").is_file()
    assert read_status(nowhere.runner_dir, "pipe") is None  # not one pass
    assert "error" not in (nowhere.runner_dir / "pipe.log").read_text()


def test_make_up_launches_both_runners_before_either_reads(nowhere: Settings) -> None:
    """Both runners start (imports, clients) at once, each holding its lock, and read nothing until told."""
    launched = service.launch(nowhere)
    try:
        assert set(launched.started) == set(service.RUNNERS)
        pids = {name: proc.pid for name, (proc, _) in launched.started.items()}
        for name, pid in pids.items():  # each one holds its lock, i.e. runs, while neither was told to go
            wait_for(lambda n=name, p=pid: service.running(nowhere, n) == p, f"the {name} runner's lock")
        assert all(proc.poll() is None for proc, _ in launched.started.values())
        assert all(read_status(nowhere.runner_dir, n) is None for n in service.RUNNERS)
        assert service.launch(nowhere).started == {}  # a second `make up` finds them running
    finally:
        launched.abandon()
    assert all(service.running(nowhere, n) is None for n in service.RUNNERS)
    assert all(read_status(nowhere.runner_dir, n) is None for n in service.RUNNERS)


def test_go_tells_the_pipe_runner_only_once_the_firehose_runner_is_healthy(
    nowhere: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []

    class FakeProc:
        def __init__(self, name: str) -> None:
            self.name, self.pid = name, {"pipe": 11, "firehose": 22}[name]

    monkeypatch.setattr(service, "_tell", lambda proc: events.append(("told", proc.name)))
    monkeypatch.setattr(service, "wait_healthy", lambda settings, started, timeout: events.extend(
        ("healthy", name) for name in started))
    launched = service.Launch(nowhere, {n: (FakeProc(n), 0) for n in service.RUNNERS},  # type: ignore[misc]
                              {"pipe": 11, "firehose": 22})
    assert launched.go(timeout=5) == {"pipe": 11, "firehose": 22}
    assert events == [("told", "firehose"), ("healthy", "firehose"), ("told", "pipe"), ("healthy", "pipe")]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- one runner per kind, one `make up`/`make down` at a time ---------------------------------------------------


def hold(path: Path) -> int:
    """Take a lock the way another process of this project would: flock, then write the holder's pid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def cli_env(settings: Settings) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k not in ("TARGET", "PIPELINE_CONFIG", "DEBUG", "ENDPOINT")}
    return {**keep, "PORT": str(settings.port), "STATE_DIR": str(settings.state_dir)}


def readline(stream: IO[str], timeout: float) -> str:
    """The next line of a child's output, or '' if none comes within `timeout` (or the stream ends)."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


def test_a_second_runner_of_one_kind_exits_with_one_line(nowhere: Settings) -> None:
    fd = hold(nowhere.runner_dir / "pipe.lock")
    try:
        result = subprocess.run([sys.executable, "-m", "cli", "runner", "pipe"], cwd=ROOT, env=cli_env(nowhere),
                                capture_output=True, text=True, timeout=60)
    finally:
        os.close(fd)
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    assert result.returncode == 1
    assert lines == [f"error: the pipe runner already runs as pid {os.getpid()}; `make down` stops it"]


def test_runners_are_found_by_their_lock_never_by_a_stale_pid_file(nowhere: Settings) -> None:
    nowhere.runner_dir.mkdir(parents=True)
    (nowhere.runner_dir / "pipe.pid").write_text(str(os.getpid()))  # a dead runner's pid, reused by pytest
    assert service.running(nowhere, "pipe") is None
    assert service.stop(nowhere) == []  # and `make down` signals nobody
    fd = hold(nowhere.runner_dir / "pipe.lock")
    try:
        assert service.running(nowhere, "pipe") == os.getpid()
    finally:
        os.close(fd)
    assert service.running(nowhere, "pipe") is None


def test_make_down_waits_for_a_make_up_in_progress_and_says_so(nowhere: Settings) -> None:
    fd = hold(nowhere.state_dir / "up.lock")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "down"], cwd=ROOT, env=cli_env(nowhere),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = readline(proc.stdout, timeout=60)  # type: ignore[arg-type]
        assert line.strip() == f"! waiting for another `make up` or `make down` (pid {os.getpid()}) to finish"
        assert proc.poll() is None
    finally:
        os.close(fd)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "emulator was not running" in out


def test_terminate_stops_a_process_that_leads_no_process_group() -> None:
    """A runner started by hand in a terminal shares the shell's group: it is signalled by pid."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert terminate(proc.pid, timeout=30)
        assert proc.wait(timeout=30) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_all_starts_the_pipe_runner_once_the_firehose_runner_completed_a_pass(
    nowhere: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compose runner container runs every runner in one process: the same order as `make up`."""
    import threading

    from runners.loop import Stats

    class FakeRunner:
        def __init__(self, name: str) -> None:
            self.name, self.stats = name, Stats()

    seen: list[tuple[str, int]] = []
    firehose_may_pass = threading.Event()

    def fake_run_forever(runner: FakeRunner, status_dir: Path, stop: threading.Event) -> None:
        seen.append((runner.name, runners["firehose"].stats.ok_passes))
        if runner.name == "firehose":
            firehose_may_pass.wait(30)
            runner.stats.ok_passes = 1
            stop.wait(30)
        else:
            stop.set()

    runners = {name: FakeRunner(name) for name in service.RUNNERS}
    monkeypatch.setattr(service, "build_runner", lambda name, clients, settings: runners[name])
    monkeypatch.setattr(service, "run_forever", fake_run_forever)
    monkeypatch.setattr(service, "new_clients",
                        lambda settings: type("C", (), {"ensure_reachable": lambda self: None})())
    monkeypatch.setattr(service.signal, "signal", lambda *_: None)
    timer = threading.Timer(0.3, firehose_may_pass.set)  # the pipe runner must not start before this
    timer.start()
    try:
        service.run_all(nowhere)
    finally:
        timer.cancel()
    assert seen == [("firehose", 0), ("pipe", 1)]
