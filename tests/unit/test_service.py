"""Starting the runners: `make up` reports only runners that came up, and names the one that did not."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from common.config import Settings, load_settings
from common.errors import TerminalError
from runners import service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def nowhere(tmp_path: Path) -> Settings:
    """Settings whose emulator port has nothing listening: a runner started there dies at once."""
    return load_settings(env={}, port=free_port(), state_dir=tmp_path)


def test_start_fails_with_one_line_naming_the_runner_that_died(nowhere: Settings) -> None:
    try:
        with pytest.raises(TerminalError) as err:
            service.start(nowhere, timeout=60)
    finally:
        service.stop(nowhere)
    message = str(err.value)
    assert "\n" not in message
    name = re.match(r"the (pipe|firehose) runner exited right after it started \(code 1\)", message)
    assert name, message  # both die; whichever is seen first is named
    assert f"its log {nowhere.runner_dir / (name[1] + '.log')} ends with: error: no AWS emulator answers" in message
