"""Start and stop the embedded emulator: MiniStack from PyPI, as a process of its own on loopback.

It runs from its own virtualenv (.venv-emu) because it pins an exact botocore. The pid and
log live under the state directory so `make down` stops exactly what `make up` started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from common.aws import emulator_healthy
from common.config import ROOT, Settings
from common.errors import TerminalError

EMULATOR_VENV = ROOT / ".venv-emu"


def emulator_python() -> Path:
    """The interpreter that has MiniStack installed (EMULATOR_PYTHON overrides, e.g. in Docker)."""
    override = os.environ.get("EMULATOR_PYTHON")
    return Path(override) if override else EMULATOR_VENV / "bin" / "python"


def pid_file(settings: Settings) -> Path:
    return settings.state_dir / f"emulator-{settings.port}.pid"


def log_file(settings: Settings) -> Path:
    return settings.state_dir / f"emulator-{settings.port}.log"


def emulator_env(settings: Settings, persist: bool = False) -> dict[str, str]:
    """MiniStack's own settings: loopback only, quiet, in memory unless persistence is asked for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        GATEWAY_PORT=str(settings.port),
        BIND_HOST=settings.host,
        LOG_LEVEL="WARNING",
        PERSIST_STATE="1" if persist else "0",
        S3_PERSIST="1" if persist else "0",
        STATE_DIR=str(settings.state_dir / "emulator-data"),
        S3_DATA_DIR=str(settings.state_dir / "emulator-data" / "s3"),  # default is a shared /tmp folder
        MINISTACK_REGION=settings.region,
    )
    return env


def running_pid(settings: Settings) -> int | None:
    """The pid from the pid file if that process is still alive."""
    path = pid_file(settings)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def start(settings: Settings, persist: bool = False, timeout: float = 30.0) -> int:
    """Start MiniStack in the background and return its pid once the health check answers."""
    endpoint = settings.endpoint_url or ""
    pid = running_pid(settings)
    if pid and emulator_healthy(endpoint):
        return pid
    if port_in_use(settings.host, settings.port):
        if emulator_healthy(endpoint):
            raise TerminalError(
                f"an emulator not started by this project already answers on port {settings.port}; "
                "stop it or set PORT to another port"
            )
        raise TerminalError(f"port {settings.port} is taken by another program; set PORT to a free port")
    python = emulator_python()
    if not python.exists():
        raise TerminalError(f"the emulator is not installed at {python}; run `make install`")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with log_file(settings).open("ab") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "ministack"],
            env=emulator_env(settings, persist),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the `make up` shell, stopped by `make down`
        )
    pid_file(settings).write_text(str(proc.pid))
    try:
        wait_healthy(settings, timeout, proc)
    except TerminalError:
        stop(settings)
        raise
    return proc.pid


def wait_healthy(settings: Settings, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Block until the health endpoint answers; fail fast if the process died."""
    endpoint = settings.endpoint_url or ""
    deadline = time.monotonic() + timeout
    while not emulator_healthy(endpoint, timeout=0.5):
        if proc is not None and proc.poll() is not None:
            raise TerminalError(f"the emulator exited with code {proc.returncode}; see {log_file(settings)}")
        if time.monotonic() > deadline:
            raise TerminalError(f"the emulator did not answer within {timeout:.0f}s; see {log_file(settings)}")
        time.sleep(0.1)


def stop(settings: Settings, timeout: float = 10.0) -> bool:
    """Stop the emulator this project started (by its pid file); False when none was running."""
    pid = running_pid(settings)
    pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    return terminate(pid, timeout)


def terminate(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM the process group, then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)
                if waited == pid:
                    return True
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
    print(f"warning: process {pid} did not stop", file=sys.stderr)
    return False
