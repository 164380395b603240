"""The project's Athena endpoint: Athena's JSON 1.1 API in front of the one query core (analytics/query.py).

On the emulated targets every Athena client (awswrangler, PyAthena, dbt-athena, the AWS CLI, boto3,
`make query ENGINE=athena`, the KPIs' ENGINE=athena) reaches the local mirror of Athena through this
endpoint, so Trino SQL runs unchanged and fails, when it must, with the same one line as `make query`.

How a client reaches it (docs/athena.md):
- `AWS_ENDPOINT_URL_ATHENA=<endpoint_url(settings)>` (the SDKs' and the AWS CLI's per-service endpoint
  setting; `make env` exports it) while `AWS_ENDPOINT_URL` keeps every other service on the emulator;
- or through the emulator: the pinned MiniStack patch `athena_forward` sends every Athena request that
  reaches the emulator to the endpoint that registered itself, so `awslocal athena ...` works too.

This module stays light (no HTTP server, no DuckDB, no boto3 until a client is asked for): the CLI imports
it for the address and to launch the endpoint, and `make up` launches it before importing boto3.
The server is `analytics.athena_api.server`, started with `python -m analytics.athena_api` or
`analytics.athena_api.process.start(settings)`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from common.config import ATHENA_PORT_OFFSET, Settings
from common.process import free_port

if TYPE_CHECKING:
    from common.aws import Clients

PORT_OFFSET = ATHENA_PORT_OFFSET  # the endpoint listens beside the emulator (common/config.py)
HEALTH_PATH = "/_athena/health"
# Requests the endpoint sends to the emulator's own Athena carry this header, so the emulator's
# forwarding patch answers them itself instead of sending them back (bootstrap/emulator_patches).
ORIGIN_HEADER = "x-sales-orders-athena-origin"
# The key the endpoint sets through MiniStack's POST /_ministack/config to register (or, empty, leave).
FORWARD_CONFIG_KEY = "athena.LOCAL_QUERY_ENDPOINT"


def athena_port(settings: Settings) -> int:
    """The endpoint's port for this stack: the emulator's port + 41 (4607 beside 4566)."""
    return settings.port + PORT_OFFSET


def free_stack_port() -> int:
    """A free loopback port for a whole stack (tests, the bench): its Athena endpoint's port is free too."""
    return free_port(also=(PORT_OFFSET,))


def endpoint_url(settings: Settings, port: int | None = None) -> str:
    """http://127.0.0.1:<port>: what AWS_ENDPOINT_URL_ATHENA is set to on the emulated targets."""
    return f"http://{settings.host}:{port or athena_port(settings)}"


def athena_client(clients: Clients, settings: Settings | None = None, url: str | None = None) -> Any:
    """An Athena client for the target: the project's endpoint on the emulated targets, AWS's on aws."""
    import boto3
    from botocore.config import Config

    from common.aws import DUMMY_CREDENTIALS

    settings = settings or clients.settings
    if not settings.emulated:
        return clients.athena
    session = boto3.Session(region_name=settings.region, **DUMMY_CREDENTIALS)
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=70)
    return session.client("athena", endpoint_url=url or endpoint_url(settings), config=config)


def endpoint_healthy(url: str, timeout: float = 1.0) -> bool:
    """True when a project Athena endpoint answers its health check at `url`."""
    try:
        with urllib.request.urlopen(f"{url}{HEALTH_PATH}", timeout=timeout) as resp:
            return resp.status == 200 and json.loads(resp.read() or b"{}").get("service") == "athena"
    except (OSError, ValueError):
        return False


def register_with_emulator(emulator_url: str, athena_url: str, timeout: float = 5.0) -> bool:
    """Ask the emulator (patched MiniStack) to forward its Athena requests to `athena_url` ('' stops it).

    False when the emulator does not know the key (an unpatched MiniStack, LocalStack): clients then
    reach the endpoint through AWS_ENDPOINT_URL_ATHENA only.
    """
    request = urllib.request.Request(
        f"{emulator_url}/_ministack/config", data=json.dumps({FORWARD_CONFIG_KEY: athena_url}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            applied = json.loads(resp.read() or b"{}").get("applied", {})
    except (OSError, ValueError):
        return False
    return FORWARD_CONFIG_KEY in applied
