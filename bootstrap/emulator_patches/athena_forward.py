"""Patch: Athena requests that reach the emulator go to the project's Athena endpoint once it has registered.

MiniStack 1.5.33 runs Athena queries as DuckDB SQL without translation (Trino functions such as
date_format or approx_distinct fail) and writes a result at `<OutputLocation>/<id>.csv/<id>.csv` while
reporting `<OutputLocation>/<id>.csv`, so awswrangler finds no result file. The project serves Athena
itself (analytics/athena_api: Trino SQL transpiled with the KPIs' sqlglot path, run on the local mirror),
reached through AWS_ENDPOINT_URL_ATHENA. `awslocal` cannot be pointed at it: it passes
`--endpoint-url=$AWS_ENDPOINT_URL` to every command, which overrides any per-service endpoint. So this
patch forwards, unchanged, every Athena request that reaches the emulator to the registered endpoint.

- Registering: POST /_ministack/config {"athena.LOCAL_QUERY_ENDPOINT": "http://127.0.0.1:4607"} (the
  endpoint does it when it starts, and sends "" when it stops); LOCAL_ATHENA_ENDPOINT in the emulator's
  environment sets it from the start.
- A request carrying the header `x-sales-orders-athena-origin` comes from the endpoint itself
  (workgroups, named queries, data catalogs stay in MiniStack): MiniStack's own Athena answers it.
- When no endpoint is registered, MiniStack's Athena answers everything, as without the patch.
- When the registered endpoint does not answer, the client gets InternalServerException naming it.

Runs in the emulator's interpreter: standard library and MiniStack only. docs/emulator-patches.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from typing import Any

CONFIG_KEY = "athena.LOCAL_QUERY_ENDPOINT"
ORIGIN_HEADER = "x-sales-orders-athena-origin"
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "expect"}
FORWARD_TIMEOUT_S = 120.0

_state = {"endpoint": os.environ.get("LOCAL_ATHENA_ENDPOINT", "").rstrip("/")}


def endpoint() -> str:
    return _state["endpoint"]


def _error(code: str, message: str, status: int) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"__type": code, "Message": message}).encode()
    return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, body


def forward(target: str, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
    """Send one request to the endpoint as it came; its answer, status and body unchanged."""
    sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
    request = urllib.request.Request(f"{target}{path or '/'}", data=body or None, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_S) as resp:
            return resp.status, {"Content-Type": resp.headers.get("Content-Type", "application/x-amz-json-1.1")}, \
                resp.read()
    except urllib.error.HTTPError as exc:
        answer = {"Content-Type": exc.headers.get("Content-Type", "application/x-amz-json-1.1")}
        if exc.headers.get("x-amzn-ErrorType"):
            answer["x-amzn-ErrorType"] = exc.headers["x-amzn-ErrorType"]
        return exc.code, answer, exc.read()
    except OSError as exc:
        return _error("InternalServerException",
                      f"the project's Athena endpoint at {target} does not answer ({exc}); `make up` starts it", 500)


def apply() -> None:
    from ministack import app

    original_get_module = app._get_module
    original_config = app._handle_admin_config_request

    def wrap(module: Any) -> Any:
        if getattr(module, "_athena_forward_patched", False):
            return module
        original_handle = module.handle_request

        async def handle_request(method: str, path: str, headers: dict, body: bytes, query_params: dict) -> Any:
            target = endpoint()
            if not target or headers.get(ORIGIN_HEADER):
                return await original_handle(method, path, headers, body, query_params)
            return await asyncio.to_thread(forward, target, method, path, headers, body)

        module.handle_request = handle_request
        module._athena_forward_patched = True
        return module

    def get_module(name: str) -> Any:
        module = original_get_module(name)
        return wrap(module) if name == "athena" else module

    async def handle_admin_config_request(path: str, method: str, body: bytes) -> Any:
        if path == "/_ministack/config" and method == "POST":
            try:
                config = json.loads(body) if body else {}
            except json.JSONDecodeError:
                config = {}
            if isinstance(config, dict) and CONFIG_KEY in config:
                _state["endpoint"] = str(config.pop(CONFIG_KEY) or "").rstrip("/")
                rest = await original_config(path, method, json.dumps(config).encode()) if config else None
                applied = json.loads(rest[2]).get("applied", {}) if rest else {}
                applied[CONFIG_KEY] = _state["endpoint"]
                return 200, {"Content-Type": "application/json"}, json.dumps({"applied": applied}).encode()
        return await original_config(path, method, body)

    app._get_module = get_module
    app._handle_admin_config_request = handle_admin_config_request
