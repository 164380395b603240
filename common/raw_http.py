"""Keep-alive plain-HTTP connections for `Clients.raw_json` on the emulator's endpoint.

Why: botocore's HTTP session (urllib3's pool, botocore's request and response wrappers) cost
about 0.75 ms of CPU per call on the emulator, more than signing and JSON together: a third of
the generator's CPU per write (docs/decisions.md section 2). `http.client` on a kept-alive
connection does the same exchange for a fraction of it. Only plain `http://` endpoints take this
path (raw calls never went through a proxy); real AWS (https) keeps botocore's session, which owns
TLS and CA bundles.

What botocore's session did that callers rely on, kept here:
- an idle connection the server closed (an emulator restart) is noticed before reuse and replaced,
  as urllib3 does, so a restart costs no retry;
- socket errors become botocore's exceptions, mapped as botocore maps urllib3's (connecting: refused
  or unreachable -> EndpointConnectionError, timeout -> ConnectTimeoutError; waiting for the answer:
  timeout -> ReadTimeoutError; anything else lost mid-call -> ConnectionClosedError), so retries
  (common/retry.py) and the chaos drill see the same;
- a connection is never reused after a call that did not finish (an error, Ctrl-C), so no later call
  reads an earlier call's answer or is sent twice;
- a reset while sending still reads the answer the server may have sent first, as urllib3 does;
- TCP_NODELAY (http.client sets it on connect).
http.client connections are not thread-safe: each thread keeps its own.
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from urllib3.util.wait import wait_for_read

TIMEOUT_S = 70.0  # as the botocore session it replaces (connect and each read)


def takes_plain_http(url: str | None) -> bool:
    """Whether raw calls to this URL may use a direct connection: plain http."""
    return bool(url) and urlsplit(url).scheme == "http"


def host_header(url: str) -> str:
    """The Host of a URL as SigV4 signs it when none is given: lowercase, without a default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, 80) else f"{host}:{parts.port}"


def request_target(url: str) -> str:
    """The path (and query) of a URL, as the request line carries it."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class PlainHttp:
    """POSTs to one http:// host and port over one kept-alive connection per thread."""

    def __init__(self, url: str, timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(url)
        self.netloc = parts.netloc
        self.endpoint = f"http://{parts.netloc}"
        self._host, self._port, self._timeout = parts.hostname or "", parts.port or 80, timeout
        self._local = threading.local()

    def serves(self, url: str) -> bool:
        return takes_plain_http(url) and urlsplit(url).netloc == self.netloc

    def post(self, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body) of one POST; botocore's exceptions when the exchange fails."""
        conn = self._connection()
        finished = False
        try:
            if conn.sock is None:
                self._connect(conn)
            self._send(conn, target, body, headers)
            answer = self._receive(conn)
            finished = True
            return answer
        finally:
            if not finished:  # whatever stopped it (an error, Ctrl-C), this connection's state is unknown
                self._drop()

    def _connect(self, conn: http.client.HTTPConnection) -> None:
        try:
            conn.connect()
        except TimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=self.endpoint, error=exc) from exc
        except OSError as exc:
            raise EndpointConnectionError(endpoint_url=self.endpoint, error=exc) from exc

    def _send(self, conn: http.client.HTTPConnection, target: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            conn.request("POST", target, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may have answered before it closed (a 4xx, say): reading the answer tells
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionClosedError(endpoint_url=self.endpoint, error=exc) from exc
        except Exception as exc:
            raise HTTPClientError(error=exc) from exc

    def _receive(self, conn: http.client.HTTPConnection) -> tuple[int, bytes]:
        try:
            response = conn.getresponse()
            return response.status, response.read()
        except TimeoutError as exc:
            raise ReadTimeoutError(endpoint_url=self.endpoint, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionClosedError(endpoint_url=self.endpoint, error=exc) from exc
        except Exception as exc:
            raise HTTPClientError(error=exc) from exc

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        elif conn.sock is not None and _dropped(conn):
            conn.close()  # the server closed it while idle: connect afresh
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed by the server (EOF), as urllib3 checks."""
    try:
        return bool(wait_for_read(conn.sock, timeout=0.0))
    except OSError:
        return True
