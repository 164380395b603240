"""common/process.py with real processes: pid files, locks, starting in the background and stopping.

`make up` / `make down` rely on these to stop exactly what they started and nothing else, so each is
checked against a live child process (the runner-level behaviour is in test_service.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import ROOT
from common.errors import TerminalError
from common.process import (
    alive,
    exclusive,
    hold_for_life,
    holder,
    live_pid,
    read_pid,
    recorded,
    spawn,
    stop_recorded,
    terminate,
    zombie,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture()
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A background process of ours; stopped at the end whatever the test did."""
    proc = spawn(SLEEPER, tmp_path / "sleeper.log", os.environ)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_read_pid_accepts_only_a_positive_number(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    assert read_pid(path) is None  # no file
    for text, pid in (("123\n", 123), ("", None), ("0", None), ("-5", None), ("12a", None)):
        path.write_text(text)
        assert read_pid(path) == pid, text
    assert read_pid(tmp_path / "x.pid" / "below-a-file") is None


def test_live_pid_names_only_a_live_process(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    path.write_text(str(os.getpid()))
    assert live_pid(path) == os.getpid()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    path.write_text(str(proc.pid))  # reaped: that pid names no process now
    assert not alive(proc.pid)
    assert live_pid(path) is None


def test_an_exited_process_not_yet_collected_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while not zombie(proc.pid):  # exited, not yet waited for: a zombie of ours
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        assert not alive(proc.pid)
    finally:
        proc.wait()
    assert not zombie(os.getpid()) and alive(os.getpid())


# The main thread holds a lock, starts a thread that ends when told, and ends itself (pthread_exit): the process
# then shows the zombie state while that thread still runs and the lock is still held.
MAIN_THREAD_ENDS_FIRST = """
import ctypes, fcntl, os, sys, threading
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
threading.Thread(target=sys.stdin.readline).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_process_whose_main_thread_ended_while_another_runs_is_alive(tmp_path: Path) -> None:
    """A stopping runner's threads end one by one; until the last has, it holds its lock, and a new runner
    started in its place would find the lock taken (the start then skipped it)."""
    lock = tmp_path / "runner.lock"
    proc = subprocess.Popen([sys.executable, "-c", MAIN_THREAD_ENDS_FIRST, str(lock)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 30
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the main thread never ended"
            time.sleep(0.01)
        assert holder(lock) is not None  # the other thread still holds the process's files
        assert not zombie(proc.pid) and alive(proc.pid)
        proc.stdin.write("end\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
        assert holder(lock) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_terminate_returns_once_the_process_exits_even_if_its_parent_never_collects_it() -> None:
    """A runner outlives the `make up` that started it: whoever collects it may be slow, or (here) never."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
         "print(child.pid, flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert terminate(child, timeout=5)  # before: the zombie looked alive until the timeout, then False
        assert zombie(child)  # its parent has still not collected it
    finally:
        parent.kill()
        parent.wait()


def test_spawn_appends_to_the_log_and_starts_a_session_of_its_own(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("earlier run\n")
    proc = spawn([sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid(), os.getcwd())"],
                 log, {**os.environ, "X": "1"}, cwd=tmp_path)
    assert proc.wait(timeout=30) == 0
    assert log.read_text().splitlines() == ["earlier run", f"True {tmp_path}"]


def test_recorded_keeps_the_pid_file_when_the_start_succeeds(tmp_path: Path, sleeper: subprocess.Popen) -> None:
    pid_file = tmp_path / "svc.pid"
    with recorded(pid_file, sleeper):
        assert read_pid(pid_file) == sleeper.pid  # named while it becomes healthy
    assert live_pid(pid_file) == sleeper.pid


def test_recorded_takes_back_a_start_that_failed(tmp_path: Path, sleeper: subprocess.Popen) -> None:
    pid_file = tmp_path / "svc.pid"
    with pytest.raises(TerminalError, match="never healthy"), recorded(pid_file, sleeper):
        raise TerminalError("never healthy")
    assert not pid_file.exists()
    assert sleeper.poll() is not None  # stopped (and reaped: no zombie left)


def test_stop_recorded_stops_the_named_process_and_removes_its_file(tmp_path: Path,
                                                                    sleeper: subprocess.Popen) -> None:
    pid_file = tmp_path / "svc.pid"
    pid_file.write_text(str(sleeper.pid))
    assert stop_recorded(pid_file, timeout=30)
    assert sleeper.poll() is not None and not pid_file.exists()
    assert stop_recorded(pid_file) is False  # nothing named: nothing signalled


def test_stop_recorded_signals_nobody_for_a_stale_pid_file(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid_file = tmp_path / "svc.pid"
    pid_file.write_text(str(proc.pid))
    assert stop_recorded(pid_file) is False
    assert not pid_file.exists()


def gone(pid: int) -> bool:
    """No such process, or a zombie whose parent died (reaping it is up to whoever adopted it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_terminate_stops_the_process_with_its_children_and_refuses_pid_0(tmp_path: Path) -> None:
    """A spawned process leads its group: its children (the emulator's Lambda workers) stop with it."""
    with pytest.raises(ValueError):
        terminate(0)
    log = tmp_path / "parent.log"
    code = ("import subprocess, sys, time; child = subprocess.Popen(SLEEPER); print(child.pid, flush=True); "
            "time.sleep(120)").replace("SLEEPER", repr(SLEEPER))
    parent = spawn([sys.executable, "-c", code], log, os.environ)
    try:
        deadline = time.monotonic() + 30
        while not log.read_text().strip():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.02)
        child = int(log.read_text())
        assert terminate(parent.pid, timeout=30)
        assert parent.poll() is not None
        while not gone(child):
            assert time.monotonic() < deadline + 30, f"the child {child} outlived its parent"
            time.sleep(0.02)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_lock_held_for_life_is_found_by_its_holder_and_freed_by_its_death(tmp_path: Path) -> None:
    lock = tmp_path / "runners" / "pipe.lock"
    code = ("import sys, time; from common.process import hold_for_life; "
            f"assert hold_for_life(__import__('pathlib').Path({str(lock)!r})) is None; "
            "print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert holder(lock) == proc.pid
        assert hold_for_life(lock, settle=0.1) == proc.pid  # a second one of the kind does not get it
    finally:
        terminate(proc.pid, timeout=30)
    assert holder(lock) is None  # the kernel dropped the lock with its holder


def test_exclusive_reenters_in_one_thread_and_makes_another_wait(tmp_path: Path) -> None:
    lock = tmp_path / "up.lock"
    waits: list[int | None] = []
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with exclusive(lock, timeout=0.3, what="the test", on_wait=waits.append):
                pass
        except TerminalError as exc:
            errors.append(exc)

    with exclusive(lock), exclusive(lock):  # re-entrant: the inner one does not deadlock
        assert read_pid(lock) == os.getpid()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(30)
    assert waits == [os.getpid()]  # told once who it waits for
    assert len(errors) == 1 and f"the test (pid {os.getpid()}) still holds {lock}" in str(errors[0])
    assert read_pid(lock) is None  # released: the file no longer names a holder
    with exclusive(lock, timeout=1):  # and free for the next one
        pass
