"""The one loop every runner shares: call `run_once`, sleep when idle, back off on errors, stop on signal.

A runner's pass returns how much it did; the loop never knows what a runner is for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from common.aws import TRANSIENT_CODES, error_code
from common.errors import TerminalError, TransientError


@dataclass
class Stats:
    """What `make status` shows per runner; written to <state>/runners/<name>.status.json each pass."""

    records_in: int = 0
    records_out: int = 0
    objects_out: int = 0
    errors: int = 0
    pending: int = 0
    lag_ms: int | None = None
    position: dict[str, str] = field(default_factory=dict)
    last_error: str = ""
    data_loss: list[str] = field(default_factory=list)  # never overwritten: each one needs a human
    dead_letters: int = 0  # records sent to the error output / dead-letter destination (`make redrive` replays)
    updated: float = 0.0
    idle_passes: int = 0  # consecutive passes that found nothing to do and raised nothing
    passes: int = 0
    ok_passes: int = 0  # passes that completed without raising (`make up` waits for the first one)
    pid: int = 0  # the process that wrote this status (a status from an earlier run proves nothing)


log = logging.getLogger("runners")


class Runner(Protocol):
    name: str
    stats: Stats

    def run_once(self) -> bool:
        """Do one pass; return True if it found nothing to do (so the loop may sleep)."""

    def close(self) -> None:
        """Flush what can be flushed and save checkpoints (called on a graceful stop)."""


def write_status(runner: Runner, directory: Path) -> None:
    """Replace the status file atomically; each write has a temp file of its own, so writers never collide."""
    runner.stats.updated = time.time()
    path = directory / f"{runner.name}.status.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{runner.name}.status.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; `make status` and healthchecks read it
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(asdict(runner.stats), sort_keys=True))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_status(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / f"{name}.status.json"
    return json.loads(path.read_text()) if path.is_file() else None


def is_transient(exc: BaseException) -> bool:
    """Retry (after a backoff) what may pass: throttling, and a lost or closed connection (an emulator restart)."""
    return isinstance(exc, TransientError | BotoConnectionError | HTTPClientError) or (
        isinstance(exc, ClientError) and error_code(exc) in TRANSIENT_CODES
    )


def run_forever(
    runner: Runner,
    status_dir: Path,
    stop: threading.Event | None = None,
    idle_sleep: float = 0.2,
    max_backoff: float = 10.0,
) -> None:
    """Run passes until SIGTERM/SIGINT (or `stop`); transient errors back off with jitter, terminal ones end it."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    status_dir.mkdir(parents=True, exist_ok=True)
    runner.stats.pid = os.getpid()
    failures = 0
    try:
        while not stop.is_set():
            try:
                idle = runner.run_once()
                failures = 0
                runner.stats.idle_passes = runner.stats.idle_passes + 1 if idle else 0
                runner.stats.passes += 1
                runner.stats.ok_passes += 1
            except TerminalError:
                raise
            except Exception as exc:
                if not is_transient(exc) and not isinstance(exc, ClientError | OSError):
                    raise
                failures += 1
                runner.stats.idle_passes = 0  # a failed pass is not a quiet one: drain must wait
                runner.stats.passes += 1
                runner.stats.errors += 1
                runner.stats.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                log.warning("%s: %s (retrying, attempt %d)", runner.name, runner.stats.last_error, failures)
                idle = True
                stop.wait(random.uniform(0, min(max_backoff, 0.2 * 2**failures)))
            write_status(runner, status_dir)
            if idle:
                stop.wait(idle_sleep)
    finally:
        runner.close()
        write_status(runner, status_dir)
