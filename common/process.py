"""The project's own processes: pid files, locks, and stopping a process. The one place for them.

Locks are `fcntl.flock` on a file under the state directory, and the holder writes its pid into that
file. The kernel drops a flock when its holder dies, however it dies, so "the lock is held" means
"that process is alive"; a pid file alone can name a process that died and whose pid was reused.

- `hold_for_life(path)`: a runner takes `<state>/runners/<name>.lock` and keeps it until it exits,
  so a second runner of one kind cannot start, and `holder(path)` finds the running one.
- `exclusive(path)`: `make up` and `make down` take `<state>/up.lock` around starting and stopping
  the emulator and the runners; a concurrent one waits (and says so once). Re-entrant within a thread.
- `spawn(argv, log)`: a background process of the project (the emulator, the Athena endpoint, a runner)
  in a session of its own, so it outlives `make up`'s shell and `terminate` stops its whole group.
- `recorded(pid_file, proc)` and `stop_recorded(pid_file)`: the emulator and the Athena endpoint hold no
  lock of ours (the emulator is not our code), so a pid file names them, written only while starting
  under `up.lock` and removed only once the process is gone.

Which file is which lives in `common/state_dir.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from common.errors import TerminalError
from common.state_dir import up_lock_file

_held_for_life: list[int] = []  # fds kept open (and so locked) until the process exits
_local = threading.local()  # path -> [fd, depth] of the `exclusive` locks this thread holds


def read_pid(path: Path) -> int | None:
    """The pid a pid or lock file names, or None (no file, empty, not a number)."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def alive(pid: int) -> bool:
    """True when `pid` is a live process this user may signal (an exited one not yet collected is not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return not zombie(pid)


def zombie(pid: int) -> bool:
    """Has `pid` exited, every thread of it, and only waits for its parent to collect it? (Linux /proc;
    False elsewhere.)

    A process `make up` started outlives its parent, so init collects it when it exits, and some inits
    (a container's, a microVM's) take a second or more to do so. It holds no lock, port or file by then:
    waiting for it to vanish only made every stop slower. But its main thread shows the zombie state as soon
    as that thread ends, while the others still run and hold the process's files and locks (a runner's
    threads, ending one by one at exit): only a zombie with no thread left is gone.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return fields.get("State", "").strip().startswith("Z") and int(fields.get("Threads", "1")) <= 1


def live_pid(path: Path) -> int | None:
    """The pid from a pid file if that process is still alive."""
    pid = read_pid(path)
    return pid if pid is not None and alive(pid) else None


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def holder(path: Path, settle: float = 1.0) -> int | None:
    """The pid of the process holding the lock at `path`, or None when nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        # A shared probe: it never blocks the holder, only tells whether an exclusive lock is held.
        if _try_flock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
    finally:
        os.close(fd)
    deadline = time.monotonic() + settle
    while True:  # the holder writes its pid just after taking the lock
        pid = read_pid(path)
        if pid is not None or time.monotonic() > deadline:
            return pid or 0  # 0: held, by a pid not yet written (callers never signal pid 0)
        time.sleep(0.01)


def hold_for_life(path: Path, settle: float = 1.0) -> int | None:
    """Take the lock at `path` until this process exits; None on success, else the holder's pid (0: unknown).

    A `holder()` probe holds the lock for an instant, so a busy lock is retried for `settle` seconds.
    """
    fd = _open_lock(path)
    deadline = time.monotonic() + settle
    while not _try_flock(fd, fcntl.LOCK_EX):
        if time.monotonic() > deadline:
            os.close(fd)
            return holder(path) or 0
        time.sleep(0.02)
    _write_pid(fd)
    _held_for_life.append(fd)
    return None


@contextlib.contextmanager
def exclusive(path: Path, timeout: float = 600.0, what: str = "",
              on_wait: Callable[[int | None], None] | None = None) -> Iterator[None]:
    """Hold the lock at `path` for the block; wait (bounded) while another process or thread holds it.

    `on_wait(pid)` is called once if it has to wait; the TerminalError after `timeout` names `what` holds it.
    """
    held: dict[str, list[int]] = _local.__dict__.setdefault("held", {})
    key = str(path)
    if key in held:  # this thread holds it already: re-enter
        held[key][1] += 1
        try:
            yield
        finally:
            held[key][1] -= 1
        return
    fd = _open_lock(path)
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while not _try_flock(fd, fcntl.LOCK_EX):
            if not waited and on_wait is not None:
                on_wait(holder(path))
            waited = True
            if time.monotonic() > deadline:
                raise TerminalError(f"{what or 'another process'} (pid {holder(path) or '?'}) still holds {path} "
                                    f"after {timeout:.0f}s; wait for it to finish, then try again")
            time.sleep(0.05)
        _write_pid(fd)
        held[key] = [fd, 1]
        try:
            yield
        finally:
            del held[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def terminate(pid: int, timeout: float = 10.0, force: bool = False) -> bool:
    """SIGTERM the process (its whole group when it leads one), then SIGKILL if it lingers; True once gone.

    `force` sends SIGKILL at once (fault tests). A child of ours is reaped, so it leaves no zombie.
    """
    if pid <= 0:
        raise ValueError(f"refusing to signal pid {pid}")
    for sig in (signal.SIGKILL,) if force else (signal.SIGTERM, signal.SIGKILL):
        try:
            leads_group = os.getpgid(pid) == pid
            (os.killpg if leads_group else os.kill)(pid, sig)
        except ProcessLookupError:
            _reap(pid)
            return True
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _reap(pid) or not alive(pid):
                return True
            time.sleep(0.05)
    print(f"warning: process {pid} did not stop", file=sys.stderr)
    return False


def _reap(pid: int) -> bool:
    """Collect `pid` if it is our child and has exited; True when it was."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return waited == pid


UP_WHAT = "another `make up` or `make down`"


def up_lock(state_dir: Path, on_wait: Callable[[int | None], None] | None = None,
            timeout: float = 600.0) -> contextlib.AbstractContextManager[None]:
    """`<state>/up.lock`: held while the emulator or the runners are started or stopped."""
    return exclusive(up_lock_file(state_dir), timeout=timeout, what=UP_WHAT, on_wait=on_wait)


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path | None = None,
          stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start `argv` in the background, its output appended to `log`, in a session (and group) of its own.

    The new session survives the `make up` shell, and makes the process lead a group that `terminate`
    signals whole (a runner's or the emulator's children go with it). `stdin=subprocess.PIPE` gives the
    caller a line to tell it something later (runners/service.py: when to start reading).
    """
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                                stdin=stdin, start_new_session=True)


@contextlib.contextmanager
def recorded(pid_file: Path, proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Name `proc` in `pid_file` for good unless the block fails (a start that never became healthy).

    On failure the pid file goes first and then the process, so the file never names a process that
    is not the one answering.
    """
    pid_file.write_text(str(proc.pid))
    try:
        yield
    except BaseException:
        pid_file.unlink(missing_ok=True)
        terminate(proc.pid)
        raise


def stop_recorded(pid_file: Path, timeout: float = 10.0) -> bool:
    """Stop the process `pid_file` names, then remove the file; False when no live process was named."""
    pid = live_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    stopped = terminate(pid, timeout)
    pid_file.unlink(missing_ok=True)  # only once it is gone: the file never names a live one wrongly
    return stopped


def free_port(also: Sequence[int] = ()) -> int:
    """A loopback port free now, with port + each offset in `also` free too: a stack needs its emulator's
    port and its Athena endpoint's (PORT + 41). For tests and the bench; someone may still take it later."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if all(_bindable(port + offset) for offset in also):
            return port


def _bindable(port: int) -> bool:
    if port > 65535:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
