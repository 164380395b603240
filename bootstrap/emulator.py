"""Start and stop the embedded emulator: MiniStack from PyPI, as a process of its own on loopback.

It runs from its own virtualenv (.venv-emu) because it pins an exact botocore. The pid and
log live under the state directory so `make down` stops exactly what `make up` started.
Starting and stopping hold `<state>/up.lock` (common/process.py): two `make up` at once never start
two emulators or stop each other's, and the pid file always names the emulator that answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from common.config import ROOT, Settings
from common.errors import TerminalError
from common.process import live_pid, recorded, spawn, stop_recorded, terminate, up_lock
from common.state_dir import emulator_data_dir, emulator_log_file, emulator_pid_file, emulator_s3_dir

EMULATOR_VENV = ROOT / ".venv-emu"
PATCHED_BOOT = Path(__file__).resolve().parent / "emulator_patches" / "boot.py"


def emulator_python() -> Path:
    """The interpreter that has MiniStack installed (EMULATOR_PYTHON overrides, e.g. in Docker)."""
    override = os.environ.get("EMULATOR_PYTHON")
    return Path(override) if override else EMULATOR_VENV / "bin" / "python"


def pid_file(settings: Settings) -> Path:
    return emulator_pid_file(settings.state_dir, settings.port)


def log_file(settings: Settings) -> Path:
    return emulator_log_file(settings.state_dir, settings.port)


def emulator_env(settings: Settings, persist: bool = False) -> dict[str, str]:
    """MiniStack's own settings: loopback only, quiet, in memory unless persistence is asked for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        GATEWAY_PORT=str(settings.port),
        BIND_HOST=settings.host,
        LOG_LEVEL="WARNING",
        PERSIST_STATE="1" if persist else "0",
        S3_PERSIST="1" if persist else "0",
        STATE_DIR=str(emulator_data_dir(settings.state_dir)),
        S3_DATA_DIR=str(emulator_s3_dir(settings.state_dir)),
        MINISTACK_REGION=settings.region,
    )
    return env


def running_pid(settings: Settings) -> int | None:
    """The pid from the pid file if that process is still alive."""
    return live_pid(pid_file(settings))


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def start(settings: Settings, persist: bool = False, timeout: float = 30.0) -> int:
    """Start MiniStack in the background and return its pid once the health check answers."""
    with up_lock(settings.state_dir):
        return launch(settings, persist).wait(timeout)


class Launch:
    """An emulator being started (or the one already running): `make up` launches it first, does what needs no
    emulator (imports, the clients' service models, the runners' start-up) meanwhile, then waits."""

    def __init__(self, settings: Settings, proc: subprocess.Popen[bytes] | None, pid: int) -> None:
        self.settings, self.proc, self.pid = settings, proc, pid

    def wait(self, timeout: float = 30.0) -> int:
        """Its pid once the health check answers; a start that failed leaves no process and no pid file."""
        settings = self.settings
        with up_lock(settings.state_dir):
            if self.proc is None:
                try:  # ours, alive: a busy one may answer slowly; a hung one is never killed from `make up`
                    wait_healthy(settings, min(timeout, 10.0))
                except TerminalError:
                    raise TerminalError(f"the emulator (pid {self.pid}) runs but does not answer at "
                                        f"{settings.endpoint_url}; see {log_file(settings)}, or `make down` then "
                                        "`make up`") from None
                return self.pid
            with recorded(pid_file(settings), self.proc):
                wait_healthy(settings, timeout, self.proc)
            self.proc = None  # healthy and recorded: from now on it is the running emulator
            return self.pid

    def abandon(self) -> None:
        """`make up` failed before waiting: stop the emulator it launched (nothing else would)."""
        if self.proc is not None:
            pid_file(self.settings).unlink(missing_ok=True)
            terminate(self.proc.pid)
            self.proc = None


def launch(settings: Settings, persist: bool = False) -> Launch:
    """Start MiniStack's process without waiting for it (`Launch.wait` does); the running one if there is one."""
    with up_lock(settings.state_dir):
        endpoint = settings.endpoint_url or ""
        pid = running_pid(settings)
        if pid:
            return Launch(settings, None, pid)
        if port_in_use(settings.host, settings.port):
            from common.aws import emulator_healthy  # only here: `make up` launches it before importing boto3

            if emulator_healthy(endpoint):
                raise TerminalError(
                    f"an emulator not started by this project already answers on port {settings.port}; "
                    "stop it or set PORT to another port"
                )
            raise TerminalError(f"port {settings.port} is taken by another program; set PORT to a free port")
        python = emulator_python()
        if not python.exists():
            raise TerminalError(f"the emulator is not installed at {python}; run `make install`")
        # the emulator's command line: MiniStack with our pinned patches (docs/emulator-patches.md)
        proc = spawn([str(python), str(PATCHED_BOOT)], log_file(settings), emulator_env(settings, persist))
        pid_file(settings).write_text(str(proc.pid))  # `make down` finds it even if this `make up` is killed now
        return Launch(settings, proc, proc.pid)


def wait_healthy(settings: Settings, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Block until the health endpoint answers (and `proc`, if given, is the one answering); fail fast if it died."""
    from common.aws import emulator_healthy

    endpoint = settings.endpoint_url or ""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise TerminalError(f"the emulator exited with code {proc.returncode}; see {log_file(settings)}")
        if emulator_healthy(endpoint, timeout=0.5) and (proc is None or proc.poll() is None):
            return
        if time.monotonic() > deadline:
            raise TerminalError(f"the emulator did not answer within {timeout:.0f}s; see {log_file(settings)}")
        time.sleep(0.02)


def stop(settings: Settings, timeout: float = 10.0) -> bool:
    """Stop the emulator this project started (by its pid file); False when none was running."""
    with up_lock(settings.state_dir):
        return stop_recorded(pid_file(settings), timeout)
