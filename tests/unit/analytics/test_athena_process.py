"""make up launches the Athena endpoint early and waits for it last: a start that fails, or an up that fails
in between, leaves no process and no pid file behind (no server: the endpoint is stood in for)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.athena_api import process
from common.config import load_settings
from common.errors import TerminalError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StandIn:
    """Started by `spawn` instead of the endpoint: `python -c <code>`, the code set per test."""

    def __init__(self) -> None:
        self.code = ""
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], log: Path, env: dict[str, str],
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        self.started.append(subprocess.Popen([sys.executable, "-c", self.code]))
        return self.started[-1]


@pytest.fixture()
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    fake = StandIn()
    monkeypatch.setattr(process, "spawn", fake.spawn)
    yield fake
    for proc in fake.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_up_that_fails_before_waiting_stops_the_launched_endpoint(tmp_path: Path, stand_in: StandIn) -> None:
    stand_in.code = "import time; time.sleep(120)"
    settings = load_settings(env={}, port=free_port(), state_dir=tmp_path)
    launch = process.launch(settings, port=free_port())
    assert stand_in.started[0].poll() is None
    launch.abandon()
    assert stand_in.started[0].wait(timeout=30) is not None
    assert not process.pid_file(settings, launch.port).exists()


def test_an_endpoint_that_dies_while_starting_is_one_line_and_leaves_no_pid_file(tmp_path: Path,
                                                                                stand_in: StandIn) -> None:
    stand_in.code = "raise SystemExit(3)"
    settings = load_settings(env={}, port=free_port(), state_dir=tmp_path)
    launch = process.launch(settings, port=free_port())
    with pytest.raises(TerminalError, match=r"the Athena endpoint did not start on http://127\.0\.0\.1:"):
        launch.wait(timeout=30)
    assert not process.pid_file(settings, launch.port).exists()
