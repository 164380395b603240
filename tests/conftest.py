"""Shared fixtures: one emulator per test session, on a free loopback port, stopped at the end.

With a Docker engine (and testcontainers installed) the emulator runs as a MiniStack container;
without one, the same fixture starts the embedded MiniStack process. Tests see only `settings`
and `clients`, so both paths run the same tests.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.athena_api import free_stack_port as free_port  # importable from here, as before
from bootstrap import emulator
from common.aws import Clients
from common.config import Settings, load_settings

MINISTACK_IMAGE = "ministackorg/ministack:1.5.33-full"  # as compose: DuckDB inside, Athena runs SQL


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "emulator", "aws", "browser", "readme")  # a folder under tests/ each, and a marker each


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's tier is the folder it sits in (tests/<tier>/...): mark it so `-m <tier>` selects it."""
    for item in items:
        path = item.path.resolve()
        parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
        tier = parts[0] if len(parts) > 1 else None
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives under one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(tier)


@pytest.fixture(scope="session")
def emulator_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a fresh emulator that lives for the whole test session."""
    state_dir: Path = tmp_path_factory.mktemp("state")
    if docker_available():  # pragma: no cover - no Docker engine on CI
        from testcontainers.core.container import DockerContainer

        with DockerContainer(MINISTACK_IMAGE).with_bind_ports(4566, ("127.0.0.1", free_port())) as c:
            port = int(c.get_exposed_port(4566))
            settings = load_settings(env={}, target="compose", port=port, state_dir=state_dir)
            emulator.wait_healthy(settings)
            yield settings
        return
    settings = load_settings(env={}, target="embedded", port=free_port(), state_dir=state_dir)
    emulator.start(settings)
    try:
        yield settings
    finally:
        emulator.stop(settings)


@pytest.fixture(scope="session")
def emulator_clients(emulator_settings: Settings) -> Clients:
    return Clients(emulator_settings)


@pytest.fixture()
def persistent_emulator(tmp_path: Path) -> Iterator[Settings]:
    """An emulator of the test's own, with persistence, so the test may restart it; stopped at the end."""
    settings = load_settings(env={}, port=free_port(), state_dir=tmp_path, buffer_interval_s=1,
                             processor_interval_s=0)
    emulator.start(settings, persist=True)
    try:
        yield settings
    finally:
        from runners import service

        service.stop(settings)
        emulator.stop(settings)
