"""Keep-alive plain-HTTP connections for `Clients.raw_json` on the emulator's endpoint.

Why: botocore's HTTP session (urllib3's pool, botocore's request and response wrappers) cost
about 0.75 ms of CPU per call on the emulator, more than signing and JSON together: a third of
the generator's CPU per write (docs/decisions.md section 2). `http.client` on a kept-alive
connection does the same exchange for a fraction of it. Only plain `http://` endpoints that no
proxy applies to take this path; real AWS (https) keeps botocore's session, which owns TLS, CA
bundles and proxies.

What botocore's session did that callers rely on, kept here:
- an idle connection the server closed (an emulator restart) is noticed before reuse and replaced,
  as urllib3 does, so a restart costs no retry;
- socket errors become botocore's exceptions, mapped as botocore maps urllib3's (refused ->
  EndpointConnectionError, timeouts -> ConnectTimeoutError / ReadTimeoutError, a connection lost
  mid-call -> ConnectionClosedError), so retries (common/retry.py) and the chaos drill see the same;
- TCP_NODELAY (http.client sets it on connect).
http.client connections are not thread-safe: each thread keeps its own.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import urllib.request
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)

TIMEOUT_S = 70.0  # as the botocore session it replaces (connect and each read)


def takes_plain_http(endpoint_url: str | None) -> bool:
    """Whether raw calls to this endpoint may use a direct connection: plain http, and no proxy for its host."""
    if not endpoint_url or urlsplit(endpoint_url).scheme != "http":
        return False
    host = urlsplit(endpoint_url).hostname or ""
    return "http" not in urllib.request.getproxies_environment() or bool(urllib.request.proxy_bypass_environment(host))


class PlainHttp:
    """POSTs to one http:// endpoint over one kept-alive connection per thread."""

    def __init__(self, endpoint_url: str, timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(endpoint_url)
        self.url = endpoint_url
        self.netloc = parts.netloc
        self._host, self._port, self._timeout = parts.hostname or "", parts.port or 80, timeout
        self._local = threading.local()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body) of one POST; botocore's exceptions when the exchange fails."""
        conn = self._connection()
        try:
            if conn.sock is None:
                conn.connect()
        except TimeoutError as exc:
            self._drop()
            raise ConnectTimeoutError(endpoint_url=self.url, error=exc) from exc
        except OSError as exc:
            self._drop()
            raise EndpointConnectionError(endpoint_url=self.url, error=exc) from exc
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except TimeoutError as exc:
            self._drop()
            raise ReadTimeoutError(endpoint_url=self.url, error=exc) from exc
        except (http.client.HTTPException, ConnectionError) as exc:
            self._drop()
            raise ConnectionClosedError(endpoint_url=self.url, error=exc) from exc
        except OSError as exc:
            self._drop()
            raise HTTPClientError(error=exc) from exc

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        elif conn.sock is not None and _dropped(conn.sock):
            conn.close()  # the server closed it while idle: connect afresh
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _dropped(sock: socket.socket) -> bool:
    """An idle connection with something to read has been closed by the server (EOF), as urllib3 checks."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
