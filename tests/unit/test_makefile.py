"""The Makefile is the user's interface: `make help` names every target, and misuse gets one clear line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "TARGET", "EMULATOR")}
    return subprocess.run(["make", "-s", *args], cwd=ROOT, env={**full, **(env or {})}, capture_output=True,
                          text=True, timeout=60)


def makefile_targets(internal: bool = False) -> set[str]:
    """The user's targets; `internal` adds helpers named with a leading underscore (not in help)."""
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^(_?[a-z][a-z-]*):" if internal else r"^([a-z][a-z-]*):", text, re.M))


def test_help_lists_every_target_with_a_line_and_the_variables() -> None:
    out = make("help").stdout
    listed = set(re.findall(r"^\s+(?:\x1b\[36m)?([a-z][a-z-]*)", out, re.M)) - {"variables"}
    assert makefile_targets() <= listed | {"variables"}
    for variable in ("TARGET", "PORT", "ORDERS", "RATE", "DURATION", "SEED", "DAYS", "ENGINE", "AUTO_APPROVE"):
        assert f"{variable}=" in out


def test_every_phony_target_exists() -> None:
    text = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"\.PHONY:(.*?)\n\n", text, re.S).group(1).replace("\\", " ").split())
    assert phony <= makefile_targets(internal=True)


def test_localstack_without_its_token_says_so_in_one_line() -> None:
    proc = make("up", env={"TARGET": "compose", "EMULATOR": "localstack", "LOCALSTACK_AUTH_TOKEN": ""})
    assert proc.returncode != 0
    assert proc.stdout.strip() == (
        "error: LOCALSTACK_AUTH_TOKEN is not set; export your LocalStack token or use EMULATOR=ministack")


def test_help_is_plain_text_when_not_on_a_terminal() -> None:
    out = make("help").stdout  # captured: a pipe, not a terminal
    assert "\x1b[" not in out
    assert "  help " in out
