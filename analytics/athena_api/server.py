"""The HTTP side of the endpoint: Athena's JSON 1.1 protocol on 127.0.0.1, one thread per connection.

`POST /` with `X-Amz-Target: AmazonAthena.<Action>` and a JSON body, as every SDK sends it. The query
actions are answered by service.AthenaService; every other action (CreateWorkGroup, ListWorkGroups,
named queries, data catalogs, prepared statements, table metadata, tags) is passed to the emulator's
own Athena unchanged, with the origin header so the emulator answers it instead of forwarding it back.
`GET /_athena/health` answers while the endpoint runs.

Errors have Athena's shape: HTTP 400 with `{"__type": "InvalidRequestException", "Message": ...,
"AthenaErrorCode": ...}` (and `x-amzn-ErrorType`), so botocore raises the modelled exception.

Start it with `serve(settings, port)` (blocking, what `python -m analytics.athena_api` runs) or
`AthenaServer(settings, port).start()` (a background thread; tests), and stop it with `close()`.
On start it registers with the emulator so `awslocal athena ...` reaches it too; on close it leaves.

The query service (service.py: DuckDB, pyarrow, the query core, boto3) is imported and built on the first
query action other than GetWorkGroup (workgroups.py), not at start: importing it costs about a second of CPU,
which `make up` would otherwise spend while the bootstrap runs on the same cores, and the health check, the
proxied actions and the plan's GetWorkGroup need none of it.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TYPE_CHECKING, Any

from analytics.athena_api import HEALTH_PATH, athena_port, register_with_emulator
from analytics.athena_api.protocol import QUERY_ACTIONS, ApiError
from analytics.athena_api.workgroups import JSON_TYPE, emulator_athena, get_work_group, to_emulator
from common.config import Settings

if TYPE_CHECKING:
    from analytics.athena_api.service import AthenaService
    from common.aws import Clients

log = logging.getLogger("athena_api")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str = JSON_TYPE, error: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, exc: ApiError) -> None:
        body = {"__type": exc.code, "Message": exc.message, **exc.extra}
        self._send(exc.status, json.dumps(body).encode(), error=exc.code)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == HEALTH_PATH:
            answer = {"service": "athena", "status": "running", "emulator": self.server.settings.endpoint_url}
            self._send(200, json.dumps(answer).encode(), "application/json")
            return
        self._send(404, b'{"message": "not found"}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        target = headers.get("x-amz-target", "")
        service, _, action = target.partition(".")
        if service != "AmazonAthena" or not action:
            self._error(ApiError("UnknownOperationException", f"unknown operation {target!r}"))
            return
        if action not in QUERY_ACTIONS:
            self._send(*self.server.proxy(headers, raw))
            return
        try:
            params = json.loads(raw) if raw else {}
            if not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError:
            self._error(ApiError("SerializationException", "the request body is not a JSON object"))
            return
        try:
            if action == "GetWorkGroup":  # the emulator's workgroup, completed: no query engine needed (workgroups.py)
                answer = get_work_group(self.server.emulator_athena, headers, params)
            else:
                answer = self.server.service.handle(action, headers, params)
        except ApiError as exc:
            self._error(exc)
            return
        except Exception as exc:  # one bad request never stops the endpoint
            log.exception("%s failed", action)
            self._error(ApiError("InternalServerException", f"{type(exc).__name__}: {exc}", 500))
            return
        self._send(200, json.dumps(answer, default=str).encode())


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], settings: Settings,
                 make_service: Callable[[], AthenaService]) -> None:
        super().__init__(address, _Handler)
        self.settings = settings
        self.emulator_athena = emulator_athena(settings)
        self._make_service = make_service
        self._service: AthenaService | None = None
        self._service_lock = threading.Lock()

    @property
    def service(self) -> AthenaService:
        """The query service, built by the first query action (requests run one thread each)."""
        with self._service_lock:
            if self._service is None:
                self._service = self._make_service()
            return self._service

    def close_service(self) -> None:
        """Stop the query service's running executions and workers, if a query ever built it."""
        with self._service_lock:
            service, self._service = self._service, None
        if service is not None:
            service.close()

    def proxy(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str, str | None]:
        """An action the emulator's Athena answers: sent there as it came, its answer returned as it is."""
        return to_emulator(self.settings, headers, body)


class AthenaServer:
    """The endpoint on host:port (127.0.0.1 by default); `start()` serves from a thread, `close()` stops it."""

    def __init__(self, settings: Settings, port: int | None = None, host: str | None = None,
                 clients: Clients | None = None, register: bool = True, workers: int = 2,
                 advertise: str | None = None) -> None:
        self.settings = settings
        self._advertise = advertise  # the address the emulator reaches us at, when not our own (compose)

        def make_service() -> AthenaService:
            from analytics.athena_api.service import AthenaService
            from common.aws import Clients

            return AthenaService(clients or Clients(settings), settings, workers=workers)

        self._http = _HttpServer((host or settings.host, athena_port(settings) if port is None else port),
                                 settings, make_service)
        self._register = register
        self.registered = False
        self._thread: threading.Thread | None = None

    @property
    def service(self) -> AthenaService:
        """The query service (built now if no query has built it yet)."""
        return self._http.service

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        host = self._http.server_address[0]
        return self._advertise or f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def _announce(self) -> None:
        if self._register and self.settings.emulated:
            self.registered = register_with_emulator(self.settings.endpoint_url or "", self.url)

    def start(self) -> AthenaServer:
        self._thread = threading.Thread(target=self._http.serve_forever, name="athena-endpoint", daemon=True)
        self._thread.start()
        self._announce()
        return self

    def serve_forever(self) -> None:
        self._announce()
        self._http.serve_forever()

    def close(self) -> None:
        if self.registered:
            register_with_emulator(self.settings.endpoint_url or "", "")
            self.registered = False
        self._http.shutdown()
        self._http.server_close()
        self._http.close_service()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> AthenaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(settings: Settings, port: int | None = None, host: str | None = None, advertise: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT (what `python -m analytics.athena_api` runs), then leave cleanly."""
    server = AthenaServer(settings, port, host, advertise=advertise)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server._http.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"athena endpoint on {server.url} (emulator {settings.endpoint_url})", flush=True)
    try:
        server.serve_forever()
    finally:
        if server.registered:
            register_with_emulator(settings.endpoint_url or "", "")
        server._http.server_close()
        server._http.close_service()
