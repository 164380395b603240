"""The emulator's own Athena, where workgroups live: the one way the endpoint sends it a request (`to_emulator`:
the actions it proxies, GetWorkGroup, each query's result settings).

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


JSON_TYPE = "application/x-amz-json-1.1"
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "expect"}


def to_emulator(settings: Settings, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str, str | None]:
    """One Athena request sent to the emulator's own Athena, as it came (the origin header stops the emulator
    forwarding it back here): (status, body, content type, AWS error type). An emulator that does not answer
    is Athena's InternalServerException naming the fix."""
    sent = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
    sent[ORIGIN_HEADER] = "1"
    request = urllib.request.Request(f"{settings.endpoint_url}/", data=body, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", JSON_TYPE), None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", JSON_TYPE), exc.headers.get("x-amzn-ErrorType")
    except OSError as exc:
        message = f"the emulator at {settings.endpoint_url} does not answer ({exc}); `make up` starts it"
        return 500, json.dumps({"__type": "InternalServerException", "Message": message}).encode(), JSON_TYPE, \
            "InternalServerException"


def emulator_athena(settings: Settings) -> EmulatorAthena:
    """Athena calls answered by the emulator itself, signed as the caller's request was."""

    def call(headers: dict[str, str], action: str, params: dict[str, Any]) -> dict[str, Any]:
        sent = {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-amz-date",
                                                                  "x-amz-security-token")}
        sent.update({"Content-Type": JSON_TYPE, "X-Amz-Target": f"AmazonAthena.{action}"})
        status, body, _, _ = to_emulator(settings, sent, json.dumps(params).encode())
        answer = json.loads(body or b"{}")
        if status >= 300:
            code = str(answer.get("__type", "InternalServerException")).rsplit("#", 1)[-1]
            raise ApiError(code, answer.get("message") or answer.get("Message") or "", status)
        return answer

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
