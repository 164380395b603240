"""common.raw_http: raw calls keep one connection alive, survive a server that closed it, and fail as botocore fails."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from common.aws import Clients, wait_until
from common.config import load_settings
from common.raw_http import PlainHttp, _dropped, takes_plain_http

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy in the environment would send these calls to botocore's session instead (takes_plain_http)."""
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive unless a handler says otherwise

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(dict(self.headers.items()))
                answer(self)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def _json(status: int, body: bytes, close: bool = False) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(body)
    return answer


@contextmanager
def serving(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[_Server]:
    server = _Server(answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _clients(server: _Server) -> Clients:
    return Clients(load_settings(env={}, port=server.server_address[1]), max_attempts=1)


def test_calls_share_one_kept_alive_connection_with_nagle_off_and_the_signed_host() -> None:
    with serving(_json(200, b'{"TableNames":[]}')) as server:
        clients = _clients(server)
        for _ in range(3):
            assert clients.raw_json("dynamodb", "ListTables", {}) == {"TableNames": []}
        assert server.connections == 1
        (headers,) = {tuple(sorted((k.lower(), v) for k, v in h.items() if k.lower() in ("host", "x-amz-target")))
                      for h in server.requests}
        assert dict(headers) == {"host": f"127.0.0.1:{server.server_address[1]}",
                                 "x-amz-target": "DynamoDB_20120810.ListTables"}
        assert all(h["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=") for h in server.requests)
        # Without TCP_NODELAY a request (headers, then body) waits for the server's delayed ACK: ~40 ms a call.
        assert clients._plain is not None
        assert clients._plain._connection().sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_connection_the_server_closed_is_replaced_without_an_error() -> None:
    with serving(_json(200, b"{}", close=True)) as server:
        clients = _clients(server)
        for _ in range(3):
            assert clients.raw_json("dynamodb", "ListTables", {}) == {}
        assert server.connections == 3


def test_an_idle_connection_the_server_dropped_is_noticed_before_reuse() -> None:
    """As after an emulator restart: the server closed the connection without saying so in its answer."""
    def answer_then_hang_up(handler: BaseHTTPRequestHandler) -> None:
        _json(200, b"{}")(handler)
        handler.close_connection = True  # no "Connection: close": the client believes it is still open

    with serving(answer_then_hang_up) as server:
        plain = PlainHttp(f"http://127.0.0.1:{server.server_address[1]}")
        assert plain.post("/", b"{}", {}) == (200, b"{}")
        sock = plain._local.conn.sock  # as it is, before the next call checks it
        assert sock is not None
        wait_until(lambda: _dropped(sock), "the server's FIN", timeout=10, interval=0.01)
        assert plain.post("/", b"{}", {}) == (200, b"{}")  # not ConnectionClosedError: a new connection
        assert server.connections == 2


def test_aws_errors_come_back_as_client_errors_with_their_code() -> None:
    body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}'
    with serving(_json(400, body)) as server, pytest.raises(ClientError) as caught:
        _clients(server).raw_json("dynamodb", "DescribeTable", {"TableName": "nope"})
    assert caught.value.response["Error"] == {"Code": "ResourceNotFoundException", "Message": "no table"}
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_socket_failures_are_botocores_exceptions() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(EndpointConnectionError):
            PlainHttp(f"http://127.0.0.1:{port}").post("/", b"{}", {})

    def hang_up(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True  # closes without a status line

    with serving(hang_up) as server, pytest.raises(ConnectionClosedError):
        PlainHttp(f"http://127.0.0.1:{server.server_address[1]}").post("/", b"{}", {})

    answered = threading.Event()

    def never_answer(handler: BaseHTTPRequestHandler) -> None:
        answered.wait(10)

    with serving(never_answer) as server:
        try:
            with pytest.raises(ReadTimeoutError):
                PlainHttp(f"http://127.0.0.1:{server.server_address[1]}", timeout=0.2).post("/", b"{}", {})
        finally:
            answered.set()


def test_only_plain_http_without_a_proxy_takes_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert takes_plain_http("http://127.0.0.1:4566")
    assert not takes_plain_http("https://dynamodb.us-east-1.amazonaws.com")
    assert not takes_plain_http(None)
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    assert not takes_plain_http("http://emulator.example:4566")
    monkeypatch.setenv("no_proxy", "emulator.example")
    assert takes_plain_http("http://emulator.example:4566")
