"""moto in server mode on 127.0.0.1, a stand-in for AWS's control plane (no account needed).

One server per test session (a thread of this process, bound to loopback, stopped at the end);
its state is reset before each test. The `aws` target reaches it only through boto3's standard
AWS_ENDPOINT_URL variable: the code under test is unchanged and builds its clients exactly as it
does against AWS. Role propagation waits are set to zero (moto's roles are usable at once).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.resources import propagation
from common.aws import Clients
from common.config import Settings, load_settings
from tests.conftest import free_port

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A clean moto, and an environment where boto3 finds it and nothing of the user's AWS setup."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).close()
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setattr(propagation, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(propagation, "RETRY_INTERVAL_SECONDS", 0.0)
    return moto_url


@pytest.fixture()
def aws_settings(aws_env: str, tmp_path: Path) -> Settings:
    return load_settings(env={}, target="aws", region=REGION, state_dir=tmp_path / "state")


@pytest.fixture()
def aws_clients(aws_settings: Settings) -> Clients:
    return Clients(aws_settings)
