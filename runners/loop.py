"""The one loop every runner shares: call `run_once`, sleep when idle, back off on errors, stop on signal.

A runner's pass returns how much it did; the loop never knows what a runner is for. How long it waits
between passes (`pass_delay`):
- after a pass that found work, the next pass starts at once, unless that would read a shard more often
  than AWS allows (the runner's `ready_in()`, from runners/shards.py `ShardPacer`: Kinesis GetRecords 5
  calls/s per shard, DynamoDB Streams 4, with the pages that say so);
- after an idle pass it sleeps 0.2 s; from the fourth idle pass in a row on, twice as long as the last
  time (0.4 s, 0.8 s, then 1 s, the cap), and 0.2 s again once a pass finds work. The cap is never longer
  than the runner's `idle_poll_s()`, the base rate at which AWS's own poller reads an idle shard
  (runners/shards.py): a Kinesis shard once a second (Firehose and Lambda alike), a DynamoDB stream shard
  4 times a second, so the pipe is never a second late for the first change after a quiet spell. The
  first three stay short so that `make drain`, which waits for three idle passes of each runner after the
  last change, is not kept waiting by the backoff;
- something buffered that falls due (the runner's `due_in()`) is written on time: an idle sleep ends
  early for it, and while the loop waits for the next allowed read it wakes to write it alone (the
  runner's `flush_due()`, a pass that reads nothing), not behind the next read and invoke.
A poll costs the emulator CPU whether or not it finds records; polling faster than AWS allows only
took that CPU from the writes (docs/decisions.md section 5).

A pass that raises is retried after a full-jitter backoff (common/retry.py `Backoff`, 0.4 s doubling up to
`max_backoff`) when another attempt may pass: a transient error (throttling, 5xx, a lost connection, an
expired iterator), or any other ClientError or OSError that is not terminal. A terminal one (common/retry.py
`TERMINAL_CODES`: permissions, credentials, a missing resource of the runner's own, a request AWS refuses)
ends the runner with one line naming the error and its fix; the process then exits non-zero.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from common.files import replace_file
from common.retry import Backoff, is_transient, terminal_error
from common.state_dir import status_file


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
    reads: dict[str, int] = field(default_factory=dict)  # GetRecords calls per shard (`make bench`: calls/s)
    phase_s: dict[str, float] = field(default_factory=dict)  # wall seconds per phase of the passes (`make bench`)


log = logging.getLogger("runners")


class Runner(Protocol):
    name: str
    stats: Stats

    def run_once(self) -> bool:
        """Do one pass; return True if it found nothing to do (so the loop may sleep)."""

    def close(self) -> None:
        """Flush what can be flushed and save checkpoints (called on a graceful stop)."""

    # Optional (the loop asks only if a runner has them):
    # ready_in() -> float: seconds before the next pass may read every shard again within its limit
    #   (runners/shards.py ShardPacer).
    # due_in() -> float | None: seconds before something buffered falls due (None: nothing buffered).
    # flush_due() -> bool: write what is due without reading (True if it wrote something).
    # idle_poll_s() -> float: the longest idle sleep (runners/shards.py ReadsShards).


IDLE_SLEEP_S = 0.2  # the first sleep after an idle pass
IDLE_SLEEP_CAP_S = 1.0  # what repeated idle passes double it up to


IDLE_PASSES_BEFORE_BACKOFF = 3  # `make drain` (runners/service.py wait_drained) waits for 3 idle passes


class IdleBackoff:
    """The sleep after each pass: 0 after a pass that found work; `base` after each of the first `patience`
    idle passes in a row, then doubling on each further one up to `cap`."""

    def __init__(self, base: float = IDLE_SLEEP_S, cap: float = IDLE_SLEEP_CAP_S,
                 patience: int = IDLE_PASSES_BEFORE_BACKOFF) -> None:
        self.base, self.cap, self.patience = base, max(base, cap), patience
        self._idle = 0

    def after(self, idle: bool) -> float:
        if not idle:
            self._idle = 0
            return 0.0
        self._idle += 1
        return min(self.base * 2 ** max(self._idle - self.patience, 0), self.cap)


def pass_delay(runner: Runner, idle_sleep: float) -> float:
    """How long to wait before the next pass: `idle_sleep` (0 after a pass that found work), cut short when
    something buffered falls due, and never so short that a shard would be read faster than its limit."""
    wait = idle_sleep
    due_in = getattr(runner, "due_in", None)
    due = due_in() if due_in is not None else None
    if due is not None:
        wait = min(wait, max(due, 0.0))
    ready_in = getattr(runner, "ready_in", None)
    return max(wait, ready_in()) if ready_in is not None else wait


def wait_for_next_pass(runner: Runner, stop: Any, idle_sleep: float) -> None:
    """Wait `pass_delay`; whatever falls due before it ends is written then, by `flush_due()`, so a buffer
    never waits for the next allowed read. A flush that fails is left to the next pass (which fails and
    backs off as any pass does)."""
    wait = pass_delay(runner, idle_sleep)
    flush_due = getattr(runner, "flush_due", None)
    due_in = getattr(runner, "due_in", None)
    while flush_due is not None and due_in is not None and wait > 0:
        due = due_in()
        if due is None or due >= wait:
            break
        if stop.wait(due):
            return
        idle_sleep = max(idle_sleep - due, 0.0)
        try:
            wrote = flush_due()
        except Exception as exc:  # the next pass meets it again, with the loop's error handling
            runner.stats.errors += 1
            runner.stats.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            log.warning("%s: writing a due buffer between reads: %s", runner.name, runner.stats.last_error)
            wrote = False
        wait = pass_delay(runner, idle_sleep)  # the read limit is counted again from the clock
        if not wrote:
            break
    if wait > 0:
        stop.wait(wait)


def idle_cap(runner: Runner, max_idle_sleep: float) -> float:
    """The idle sleep's cap: `max_idle_sleep`, never longer than the runner's idle_poll_s() (AWS's base rate)."""
    idle_poll_s = getattr(runner, "idle_poll_s", None)
    return min(max_idle_sleep, idle_poll_s()) if idle_poll_s is not None else max_idle_sleep


def write_status(runner: Runner, directory: Path) -> None:
    """Replace the status file atomically; each write has a temp file of its own, so writers never collide."""
    runner.stats.updated = time.time()
    replace_file(status_file(directory, runner.name), json.dumps(asdict(runner.stats), sort_keys=True))


def read_status(directory: Path, name: str) -> dict[str, Any] | None:
    path = status_file(directory, name)
    return json.loads(path.read_text()) if path.is_file() else None


def run_forever(
    runner: Runner,
    status_dir: Path,
    stop: threading.Event | None = None,
    idle_sleep: float = IDLE_SLEEP_S,
    max_backoff: float = 10.0,
    max_idle_sleep: float = IDLE_SLEEP_CAP_S,
) -> None:
    """Run passes until SIGTERM/SIGINT (or `stop`); transient errors back off with jitter, terminal ones end it
    with a TerminalError of one line (the CLI prints it and exits 1).

    Idle passes sleep `idle_sleep`, doubling up to `max_idle_sleep`; see the module docstring."""
    stop = stop or threading.Event()
    idle_backoff = IdleBackoff(idle_sleep, idle_cap(runner, max_idle_sleep))
    error_backoff = Backoff(base_s=0.2, cap_s=max_backoff)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    status_dir.mkdir(parents=True, exist_ok=True)
    runner.stats.pid = os.getpid()
    failures = 0
    ending: BaseException | None = None
    try:
        while not stop.is_set():
            try:
                idle = runner.run_once()
                failures = 0
                runner.stats.idle_passes = runner.stats.idle_passes + 1 if idle else 0
                runner.stats.passes += 1
                runner.stats.ok_passes += 1
            except Exception as exc:
                terminal = terminal_error(exc, f"the {runner.name} runner")
                if terminal is not None:  # `make status` shows it; the CLI prints it as the runner's last line
                    ending = terminal
                    runner.stats.last_error = str(terminal)[:500]
                    if terminal is exc:
                        raise
                    raise terminal from exc
                if not is_transient(exc) and not isinstance(exc, ClientError | OSError):
                    ending = exc
                    raise
                failures += 1
                runner.stats.idle_passes = 0  # a failed pass is not a quiet one: drain must wait
                runner.stats.passes += 1
                runner.stats.errors += 1
                runner.stats.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                log.warning("%s: %s (retrying, attempt %d)", runner.name, runner.stats.last_error, failures)
                idle = True
                stop.wait(error_backoff.delay(failures))
            write_status(runner, status_dir)
            wait_for_next_pass(runner, stop, idle_backoff.after(idle))
    finally:
        try:
            runner.close()
        except Exception:
            if ending is None:
                raise
            log.exception("%s: closing after %s failed too", runner.name, type(ending).__name__)
        write_status(runner, status_dir)
