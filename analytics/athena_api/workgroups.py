"""Workgroups live in the emulator's own Athena; the endpoint reads them there for GetWorkGroup and for each
query's result settings.

Kept apart from service.py (DuckDB, pyarrow, the query core: about a second of CPU to import) so that the
endpoint answers GetWorkGroup without loading the query engine: `make up`'s plan asks for the workgroup while
the endpoint starts, and building the engine for that answer had made the plan take 2 to 5 s instead of 0.7.
https://docs.aws.amazon.com/athena/latest/APIReference/API_GetWorkGroup.html
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from analytics.athena_api import ORIGIN_HEADER
from analytics.athena_api.protocol import ApiError, invalid
from common.config import Settings

ENGINE_VERSION = {"SelectedEngineVersion": "AUTO", "EffectiveEngineVersion": "Athena engine version 3"}

# (the caller's headers, action, params) -> the emulator's answer; tests pass a fake.
EmulatorAthena = Callable[[dict[str, str], str, dict[str, Any]], dict[str, Any]]


def emulator_athena(settings: Settings) -> EmulatorAthena:
    """Athena calls answered by the emulator itself (the origin header stops its forwarding them back here)."""

    def call(headers: dict[str, str], action: str, params: dict[str, Any]) -> dict[str, Any]:
        sent = {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-amz-date",
                                                                  "x-amz-security-token")}
        sent.update({"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AmazonAthena.{action}",
                     ORIGIN_HEADER: "1"})
        request = urllib.request.Request(f"{settings.endpoint_url}/", data=json.dumps(params).encode(),
                                         headers=sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            code = str(body.get("__type", "InternalServerException")).rsplit("#", 1)[-1]
            raise ApiError(code, body.get("message") or body.get("Message") or "", exc.code) from None
        except OSError as exc:
            raise ApiError("InternalServerException", f"the emulator at {settings.endpoint_url} does not "
                           f"answer ({exc}); `make up` starts it", 500) from None

    return call


def get_work_group(call: EmulatorAthena, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """GetWorkGroup with the Configuration members AWS always returns (MiniStack omits some)."""
    name = params.get("WorkGroup") or ""
    group = dict(call(headers, "GetWorkGroup", {"WorkGroup": name}).get("WorkGroup") or {})
    if not group:
        raise invalid(f"WorkGroup {name} is not found.")
    group.pop("WorkGroupConfiguration", None)
    configuration = dict(group.get("Configuration") or {})
    configuration.setdefault("EnforceWorkGroupConfiguration", False)
    configuration.setdefault("PublishCloudWatchMetricsEnabled", False)
    configuration.setdefault("RequesterPaysEnabled", False)
    configuration.setdefault("EngineVersion", ENGINE_VERSION)
    group["Configuration"] = configuration
    group.setdefault("State", "ENABLED")
    return {"WorkGroup": group}
