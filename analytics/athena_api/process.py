"""Start and stop the Athena endpoint as a background process of its own, like the emulator.

`start(settings)` runs `python -m analytics.athena_api` from the project's interpreter on
127.0.0.1:<athena_port(settings)> (pid and log under the state directory) and returns its pid once
its health check answers (`launch` and `Launch.wait` are its two halves, for `make up`);
`stop(settings)` stops exactly that process. A second `start` while one
runs returns its pid and registers it with the emulator again (a restarted emulator forgot it).
Both hold `<state>/up.lock` like the emulator's start and stop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from analytics.athena_api import athena_port, endpoint_healthy, endpoint_url, register_with_emulator
from common.config import ROOT, Settings
from common.errors import TerminalError
from common.process import live_pid, recorded, spawn, stop_recorded, terminate, up_lock
from common.state_dir import athena_log_file, athena_pid_file

# The settings the endpoint reads; the child gets them as environment variables.
_PASSED = ("target", "region", "host", "port", "endpoint", "state_dir", "project", "lake_bucket",
           "results_bucket", "glue_database", "glue_table", "workgroup")


def pid_file(settings: Settings, port: int | None = None) -> Path:
    return athena_pid_file(settings.state_dir, port or athena_port(settings))


def log_file(settings: Settings, port: int | None = None) -> Path:
    return athena_log_file(settings.state_dir, port or athena_port(settings))


def running_pid(settings: Settings, port: int | None = None) -> int | None:
    return live_pid(pid_file(settings, port))


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name in _PASSED:
        value = getattr(settings, name)
        if value not in ("", None):
            env[name.upper()] = str(value)
    return env


def start(settings: Settings, port: int | None = None, timeout: float = 30.0) -> int:
    """The endpoint's pid, started if it is not running; raises TerminalError naming its log if it cannot.

    `port`: default athena_port(settings) (the emulator's + 41); tests pass a free one.
    """
    return launch(settings, port).wait(timeout)


class Launch:
    """An endpoint being started: `make up` launches it first and waits last, so its start-up (importing
    DuckDB and sqlglot) overlaps the bootstrap and the runners' instead of adding to them."""

    def __init__(self, settings: Settings, port: int, proc: subprocess.Popen[bytes] | None, pid: int) -> None:
        self.settings, self.port, self.proc, self.pid = settings, port, proc, pid

    def wait(self, timeout: float = 30.0) -> int:
        """The pid once the endpoint answers its health check; a failed start is taken back (no pid file).

        Then it is registered with the emulator (again): `make up` may launch it before the emulator answers,
        and a restarted emulator forgot an endpoint that was already running.
        """
        url = endpoint_url(self.settings, self.port)
        if self.proc is None:
            register_with_emulator(self.settings.endpoint_url or "", url)
            return self.pid
        with up_lock(self.settings.state_dir), recorded(pid_file(self.settings, self.port), self.proc):
            deadline = time.monotonic() + timeout
            while not endpoint_healthy(url, timeout=0.5):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TerminalError(f"the Athena endpoint did not start on {url}; "
                                        f"see {log_file(self.settings, self.port)}")
                time.sleep(0.05)
        register_with_emulator(self.settings.endpoint_url or "", url)
        return self.proc.pid

    def abandon(self) -> None:
        """`make up` failed before waiting: stop the process it launched (no pid file names it yet)."""
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc.pid)


def launch(settings: Settings, port: int | None = None) -> Launch:
    """Start the endpoint's process without waiting for it (`Launch.wait` does, and registers it with the
    emulator); one already running is returned as it is. The emulator need not answer yet."""
    if not settings.emulated:
        raise TerminalError("TARGET=aws uses AWS's own Athena; the local Athena endpoint runs on embedded and compose")
    with up_lock(settings.state_dir):
        port = port or athena_port(settings)
        url = endpoint_url(settings, port)
        pid = running_pid(settings, port)
        if pid:
            return Launch(settings, port, None, pid)
        if endpoint_healthy(url):
            raise TerminalError(f"an Athena endpoint not started by this state directory answers at {url}; "
                                "stop it or set PORT to another port")
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        proc = spawn([sys.executable, "-m", "analytics.athena_api", "--port", str(port)], log_file(settings, port),
                     child_env(settings), cwd=ROOT)
        return Launch(settings, port, proc, proc.pid)


def stop(settings: Settings, port: int | None = None, timeout: float = 10.0) -> bool:
    """Stop the endpoint this state directory started (SIGTERM: it leaves the emulator); False when none ran."""
    with up_lock(settings.state_dir):
        return stop_recorded(pid_file(settings, port), timeout)
