"""Build the runners from the specs the bootstrap wrote, and run them as background processes.

Each runner is its own process (docs/decisions.md section 2: separate processes use both cores), with a lock, a log
and a status file under <state>/runners/ (common/state_dir.py), so `make down` stops exactly what `make up` started.
A runner holds `<name>.lock` (common/process.py) for its whole life: a second one of the same kind
exits at once, and the lock's holder is the running one (a pid file could name a reused pid).
Starting and stopping hold `<state>/up.lock`, as the emulator's start and stop do.

The firehose runner starts first, and the pipe runner only once the firehose runner completed a pass
(it then reads every shard from its starting position), as on AWS the delivery stream is ACTIVE before
the pipe exists (bootstrap/spec.py KIND_ORDER): nothing the pipe puts can precede its reader.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common.aws import Clients
from common.config import ROOT, Settings
from common.errors import ConfigError, PipelineError, TerminalError
from common.process import hold_for_life, holder, spawn, terminate, up_lock
from common.state_dir import (
    checkpoint_file,
    old_runner_pid_file,
    read_spec,
    runner_lock_file,
    runner_log_file,
    runner_spec_file,
)
from runners.firehose import FirehoseRunner
from runners.firehose_config import parse_config
from runners.loop import Runner, read_status, run_forever
from runners.pipe import PipeRunner

RUNNERS = ("pipe", "firehose")  # stopped in this order: the writer first, then the reader flushes
START_ORDER = ("firehose", "pipe")  # the reader holds its starting position before the writer starts


def load_spec(settings: Settings, name: str) -> dict:
    path = runner_spec_file(settings.runner_dir, name)
    spec = read_spec(path)
    if spec is None:
        raise TerminalError(f"no {name} spec at {path}; run `make up` (it applies the bootstrap) first")
    return spec


def check_name(name: str) -> str:
    if name not in RUNNERS:
        raise ConfigError(f"unknown runner {name!r}; use one of {', '.join(RUNNERS)}")
    return name


def lock_path(settings: Settings, name: str) -> Path:
    return runner_lock_file(settings.runner_dir, name)


def claim(settings: Settings, name: str) -> None:
    """Hold this runner kind's lock until the process exits; one line if another process holds it."""
    pid = hold_for_life(lock_path(settings, name))
    if pid is not None:
        raise TerminalError(f"the {name} runner already runs as pid {pid or '?'}; `make down` stops it")


def build_runner(name: str, clients: Clients, settings: Settings) -> Runner:
    spec = load_spec(settings, name)
    checkpoint = checkpoint_file(settings.runner_dir, name)
    if name == "pipe":
        return PipeRunner(clients, spec, checkpoint)
    if name == "firehose":
        return FirehoseRunner(clients, parse_config(spec, settings.max_active_partitions), checkpoint)
    raise TerminalError(f"unknown runner {name!r}; use one of {', '.join(RUNNERS)}")


def run(name: str, settings: Settings) -> None:
    """Foreground: run one runner until SIGTERM/SIGINT; its warnings go to stderr (the runner's log)."""
    claim(settings, check_name(name))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    clients = Clients(settings)
    clients.ensure_reachable()
    try:
        run_forever(build_runner(name, clients, settings), settings.runner_dir)
    except PipelineError:
        raise
    except Exception as exc:  # the traceback goes to the log; its last line says what stopped the runner
        logging.getLogger("runners").exception("the %s runner stopped", name)
        detail = " ".join(str(exc).split())[:300]
        raise TerminalError(f"the {name} runner stopped: {type(exc).__name__}: {detail}") from exc


def run_all(settings: Settings) -> None:
    """Foreground: every runner in a thread of this process; SIGTERM stops them all, gracefully."""
    for name in RUNNERS:
        claim(settings, name)
    clients = Clients(settings)
    clients.ensure_reachable()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    failures: list[BaseException] = []

    runners = {name: build_runner(name, Clients(settings), settings) for name in START_ORDER}

    def work(name: str) -> None:
        try:
            run_forever(runners[name], settings.runner_dir, stop)
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = []
    for name in START_ORDER:
        while threads and runners[START_ORDER[0]].stats.ok_passes < 1 and not stop.is_set():
            stop.wait(0.1)  # the firehose runner's first pass opened every shard at its starting position
        if stop.is_set():
            break
        threads.append(threading.Thread(target=work, args=(name,), name=name))
        threads[-1].start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def running(settings: Settings, name: str) -> int | None:
    """The pid of the process holding this runner's lock (0: it has not written its pid yet), or None."""
    return holder(lock_path(settings, name))


def start(settings: Settings, env: dict[str, str] | None = None, timeout: float = 60.0) -> dict[str, int]:
    """Start every runner not already running, in the background; return their pids once each is healthy.

    Healthy: its process is alive and it wrote a status showing a completed pass. A runner that dies
    or does not get there within `timeout` fails this with one line naming it and its log's last line.
    In START_ORDER, each healthy before the next starts: the pipe runner never writes before the firehose
    runner reads.
    """
    with up_lock(settings.state_dir):
        return _start(settings, env, timeout)


def _start(settings: Settings, env: dict[str, str] | None, timeout: float) -> dict[str, int]:
    settings.runner_dir.mkdir(parents=True, exist_ok=True)
    pids = {}
    for name in START_ORDER:
        pid = running(settings, name)
        if pid is None:
            log_path = log_file(settings, name)
            offset = log_path.stat().st_size if log_path.is_file() else 0
            proc = spawn([sys.executable, "-m", "cli", "runner", name], log_path,
                         {**os.environ, **(env or {}), **settings_env(settings)}, cwd=ROOT)
            pid = proc.pid
            wait_healthy(settings, {name: (proc, offset)}, timeout)
        pids[name] = pid
    return {name: pids[name] for name in RUNNERS}


def log_file(settings: Settings, name: str) -> Path:
    return runner_log_file(settings.runner_dir, name)


def wait_healthy(settings: Settings, started: dict[str, tuple[subprocess.Popen, int]], timeout: float) -> None:
    """Block until each started runner completed a pass; one line naming the first that died or hung."""
    deadline = time.monotonic() + timeout
    pending = dict(started)
    while pending:
        for name, (proc, offset) in list(pending.items()):
            if proc.poll() is not None:
                raise TerminalError(
                    f"the {name} runner exited right after it started (code {proc.returncode}); "
                    f"its log {log_file(settings, name)} ends with: {last_log_line(settings, name, offset)}"
                )
            status = read_status(settings.runner_dir, name) or {}
            if status.get("pid") == proc.pid and status.get("ok_passes", 0) >= 1:
                del pending[name]
        if pending and time.monotonic() > deadline:
            name = next(iter(pending))
            raise TerminalError(
                f"the {name} runner (pid {pending[name][0].pid}) completed no pass within {timeout:.0f}s; "
                f"its log {log_file(settings, name)} ends with: {last_log_line(settings, name, pending[name][1])}"
                "; `make down` stops it"
            )
        if pending:
            time.sleep(0.1)


def last_log_line(settings: Settings, name: str, offset: int = 0) -> str:
    """The last non-empty line the runner logged since `offset` (this start), shortened."""
    try:
        with log_file(settings, name).open("rb") as fh:
            fh.seek(offset)
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    if not lines:
        return "(nothing)"
    line = lines[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def stop(settings: Settings, kill: bool = False) -> list[str]:
    """Stop the runners (SIGTERM lets them flush and checkpoint; `kill` is SIGKILL, for fault tests)."""
    stopped = []
    with up_lock(settings.state_dir):
        for name in RUNNERS:
            old_runner_pid_file(settings.runner_dir, name).unlink(missing_ok=True)
            pid = running(settings, name)
            if not pid:
                continue
            terminate(pid, timeout=30, force=kill)
            stopped.append(name)
    return stopped


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings a child process needs to rebuild the same Settings."""
    return {
        "TARGET": settings.target,
        "PORT": str(settings.port),
        "STATE_DIR": str(settings.state_dir),
        "AWS_REGION": settings.region,
        **({"ENDPOINT": settings.endpoint} if settings.endpoint else {}),
    }


def wait_drained(
    settings: Settings, timeout: float = 120.0, quiet_passes: int = 3,
    on_poll: Callable[[dict[str, dict]], None] | None = None,
) -> dict[str, dict]:
    """Block until every runner reports idle passes with nothing pending (the pipeline has drained)."""
    deadline = time.monotonic() + timeout
    started = {name: (read_status(settings.runner_dir, name) or {}).get("passes", 0) for name in RUNNERS}

    def quiet(name: str, status: dict) -> bool:
        """Only passes made after we started count: a status written before an outage proves nothing."""
        fresh = status.get("passes", 0) - started[name]
        return min(fresh, status.get("idle_passes", 0)) >= quiet_passes and status.get("pending", 1) == 0

    while True:
        statuses = {name: read_status(settings.runner_dir, name) or {} for name in RUNNERS}
        if all(quiet(name, s) for name, s in statuses.items()):
            return statuses
        if on_poll:
            on_poll(statuses)
        dead = [n for n in RUNNERS if running(settings, n) is None]
        if dead:
            raise TerminalError(f"runner(s) {', '.join(dead)} not running; see {settings.runner_dir}/*.log")
        if time.monotonic() > deadline:
            raise TerminalError(f"the pipeline did not drain within {timeout:.0f}s; see `make status`")
        time.sleep(0.3)
