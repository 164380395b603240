"""Build the runners from the specs the bootstrap wrote, and run them as background processes.

Each runner is its own process (docs/decisions.md section 2: separate processes use both cores), with a lock, a log
and a status file under <state>/runners/ (common/state_dir.py), so `make down` stops exactly what `make up` started.
A runner holds `<name>.lock` (common/process.py) for its whole life: a second one of the same kind
exits at once, and the lock's holder is the running one (a pid file could name a reused pid).
Starting and stopping hold `<state>/up.lock`, as the emulator's start and stop do.

`make up` launches both runners at once, right after the emulator and before the bootstrap is applied
(`launch`): each takes its lock, imports its modules and builds its clients while the bootstrap runs, then
waits for one line on its stdin. `Launch.go` tells the firehose runner to start, and the pipe runner only
once the firehose runner completed a pass (it then reads every shard from its starting position), as on
AWS the delivery stream is ACTIVE before the pipe exists (bootstrap/spec.py KIND_ORDER): nothing the pipe
puts can precede its reader. A runner whose stdin closes before it was told (a `make up` that failed, or
was killed) exits without reading anything.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING

from common.config import ROOT, Settings, load_settings, writable_state_dir
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
from runners.loop import Runner, read_status, run_forever

# The runners' own modules (boto3, and PyArrow for the firehose runner) are imported where a runner is built:
# `make up` imports this module to launch them, and the pipe runner's process never needs PyArrow.
if TYPE_CHECKING:
    from common.aws import Clients

RUNNERS = ("pipe", "firehose")  # stopped in this order: the writer first, then the reader flushes
START_ORDER = ("firehose", "pipe")  # the reader holds its starting position before the writer starts
GO = b"go\n"  # what `Launch.go` writes on a launched runner's stdin: start reading now
# The clients each runner builds while it waits for GO (their service models load then, not on the clock).
PRELOADED = {"pipe": ("dynamodbstreams", "kinesis"), "firehose": ("kinesis", "s3", "lambda", "glue")}
POLL_S = 0.02  # how often `make up` looks at a starting runner's status file


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
        from runners.pipe import PipeRunner

        return PipeRunner(clients, spec, checkpoint)
    if name == "firehose":
        from runners.firehose import FirehoseRunner
        from runners.firehose_config import parse_config

        return FirehoseRunner(clients, parse_config(spec, settings.max_active_partitions), checkpoint)
    raise TerminalError(f"unknown runner {name!r}; use one of {', '.join(RUNNERS)}")


def new_clients(settings: Settings) -> Clients:
    from common.aws import Clients

    return Clients(settings)


def prepare(name: str, clients: Clients) -> None:
    """What a runner can do before its spec exists: import its modules, load its clients' service models."""
    if name == "pipe":
        import runners.pipe
    else:
        import runners.firehose
        import runners.firehose_config  # noqa: F401
    clients.preload(*PRELOADED[name])


def told_to_go(go: IO[bytes]) -> bool:
    """Block until `make up` says go (True) or closes the pipe without saying it (False)."""
    try:
        return go.readline() == GO
    except OSError:
        return False


def run(name: str, settings: Settings, go: IO[bytes] | None = None) -> None:
    """Foreground: run one runner until SIGTERM/SIGINT; its warnings go to stderr (the runner's log).

    `go`: launched by `make up` (`launch`): get ready, then read nothing until that stream says GO.
    """
    claim(settings, check_name(name))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    gc.disable()  # while modules and service models load (10^5 objects the collector would walk again and again)
    clients = new_clients(settings)
    if go is not None:
        prepare(name, clients)
        gc.freeze()  # they live as long as the process: later collections skip them
        if not told_to_go(go):
            logging.getLogger("runners").info("the %s runner was not started: `make up` ended before", name)
            return
    clients.ensure_reachable()
    try:
        runner = build_runner(name, clients, settings)
        gc.freeze()
        gc.enable()
        run_forever(runner, settings.runner_dir)
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
    clients = new_clients(settings)
    clients.ensure_reachable()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    failures: list[BaseException] = []

    runners = {name: build_runner(name, new_clients(settings), settings) for name in START_ORDER}

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
    Both are launched at once; the pipe runner reads only once the firehose runner is healthy (`Launch.go`).
    """
    with up_lock(settings.state_dir):
        launched = launch(settings, env)
        try:
            return launched.go(timeout)
        except BaseException:
            launched.abandon()
            raise


class Launch:
    """The runners `launch` started (ready, each waiting to be told) and those that already ran."""

    def __init__(self, settings: Settings, started: dict[str, tuple[subprocess.Popen[bytes], int]],
                 pids: dict[str, int]) -> None:
        self.settings, self.started, self.pids = settings, started, pids
        self.told: set[str] = set()

    def go(self, timeout: float = 60.0) -> dict[str, int]:
        """In START_ORDER, tell each launched runner to start and wait until it is healthy; their pids."""
        with up_lock(self.settings.state_dir):
            for name in START_ORDER:
                if name not in self.started:
                    continue
                proc, _ = self.started[name]
                self.told.add(name)
                _tell(proc)
                wait_healthy(self.settings, {name: self.started[name]}, timeout)
        return {name: self.pids[name] for name in RUNNERS}

    def abandon(self) -> None:
        """`make up` failed: stop the runners it launched and never told to start (they hold their locks)."""
        for name, (proc, _) in self.started.items():
            if name in self.told:
                continue  # it may be running; as before, a failed start leaves it to `make down`
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.poll() is None:
                terminate(proc.pid)
            proc.wait()


def _tell(proc: subprocess.Popen[bytes]) -> None:
    try:
        assert proc.stdin is not None
        proc.stdin.write(GO)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # it died before it was told: wait_healthy names it, with its log's last line


def launch(settings: Settings, env: dict[str, str] | None = None) -> Launch:
    """Launch every runner not already running, both at once; none reads before `Launch.go` tells it."""
    with up_lock(settings.state_dir):
        settings.runner_dir.mkdir(parents=True, exist_ok=True)
        started: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        pids = {}
        for name in START_ORDER:
            pid = running(settings, name)
            if pid is None:
                log_path = log_file(settings, name)
                offset = log_path.stat().st_size if log_path.is_file() else 0
                proc = _spawn_waiting(name, log_path, {**os.environ, **(env or {}), **settings_env(settings)})
                started[name], pid = (proc, offset), proc.pid
            pids[name] = pid
        return Launch(settings, started, pids)


def _spawn_waiting(name: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The runner in the background (common/process.py `spawn`), with a pipe on stdin for `Launch.go`."""
    return spawn([sys.executable, "-m", "runners.service", name], log, env, cwd=ROOT, stdin=subprocess.PIPE)


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
            time.sleep(POLL_S)


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
    """Stop the runners (SIGTERM lets them flush and checkpoint; `kill` is SIGKILL, for fault tests).

    Both are signalled and waited for at once: each one's flush and exit no longer waits behind the other's.
    """
    with up_lock(settings.state_dir):
        pids = {}
        for name in RUNNERS:
            old_runner_pid_file(settings.runner_dir, name).unlink(missing_ok=True)
            pid = running(settings, name)
            if pid:
                pids[name] = pid
        with ThreadPoolExecutor(max_workers=max(len(pids), 1), thread_name_prefix="stop-runner") as pool:
            list(pool.map(lambda pid: terminate(pid, timeout=30, force=kill), pids.values()))
    return list(pids)


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


def main(argv: list[str] | None = None) -> int:
    """`python -m runners.service NAME`: a runner as `make up` launches it (stdin: the go line, see `run`).

    Lighter than `python -m cli runner NAME` (no CLI to import); a known error is one `error:` line, the
    last of the runner's log, which `make up` quotes (DEBUG=1: the traceback).
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) != 1:
            raise ConfigError(f"usage: python -m runners.service {{{'|'.join(RUNNERS)}}}")
        settings = load_settings()
        if not settings.emulated:
            raise PipelineError("on TARGET=aws the managed Pipe and Firehose run; the local runners never start")
        writable_state_dir(settings)
        run(check_name(args[0]), settings, go=sys.stdin.buffer)
    except PipelineError as exc:
        if os.environ.get("DEBUG"):
            raise
        print("error: " + " ".join(str(exc).split()), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
