"""common.raw_http: raw calls keep one connection alive, survive a server that closed it, and fail as botocore fails."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.auth import SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from common.aws import Clients, wait_until
from common.config import load_settings
from common.raw_http import PlainHttp, _dropped, host_header, takes_plain_http

pytestmark = pytest.mark.unit


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        self.received: list[tuple[str, bytes]] = []  # (request target, body)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive unless a handler says otherwise

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(dict(self.headers.items()))
                server.received.append((self.path, body))
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


def _answer_then_hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Answers, then closes without "Connection: close": the client believes the connection still open."""
    _json(200, b"{}")(handler)
    handler.close_connection = True


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


def _signature_checks(headers: dict[str, str], target: str, body: bytes, clients: Clients) -> bool:
    """Would AWS accept this request's SigV4 signature? Recomputed by botocore from what the server received."""
    authorization = headers["Authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    received = {k: v for k, v in headers.items() if k.lower() in signed}
    request = AWSRequest(method="POST", url=f"http://{headers['Host']}{target}", data=body, headers=received)
    request.context["timestamp"] = headers["X-Amz-Date"]
    credentials = clients._session.get_credentials().get_frozen_credentials()
    signer = SigV4Auth(credentials, "dynamodb", clients.settings.region)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return "host" in signed and authorization.endswith(f"Signature={signature}")


def test_calls_share_one_kept_alive_connection_and_send_what_was_signed() -> None:
    with serving(_json(200, b'{"TableNames":[]}')) as server:
        port = server.server_address[1]
        # An endpoint with a path and an uppercase host: the Host and the path sent are the ones signed.
        clients = Clients(load_settings(env={"TARGET": "compose", "ENDPOINT": f"http://LOCALHOST:{port}/emu/"}),
                          max_attempts=1)
        for _ in range(3):
            assert clients.raw_json("dynamodb", "ListTables", {}) == {"TableNames": []}
        assert server.connections == 1
        assert [target for target, _ in server.received] == ["/emu/"] * 3
        assert {h["Host"] for h in server.requests} == {f"localhost:{port}"}
        assert {h["X-Amz-Target"] for h in server.requests} == {"DynamoDB_20120810.ListTables"}
        assert all(_signature_checks(h, target, body, clients)
                   for h, (target, body) in zip(server.requests, server.received, strict=True))
        # Without TCP_NODELAY a request (headers, then body) waits for the server's delayed ACK: ~40 ms a call.
        assert clients._plain is not None
        assert clients._plain._connection().sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_the_host_header_is_the_one_sigv4_signs_without_one() -> None:
    assert host_header("http://LOCALHOST:4566/") == _host_from_url("http://LOCALHOST:4566/") == "localhost:4566"
    assert host_header("http://Emulator:80/x/") == _host_from_url("http://Emulator:80/x/") == "emulator"
    assert host_header("http://[::1]:4566") == _host_from_url("http://[::1]:4566") == "[::1]:4566"


def test_a_connection_the_server_closed_is_replaced_without_an_error() -> None:
    with serving(_json(200, b"{}", close=True)) as server:
        clients = _clients(server)
        for _ in range(3):
            assert clients.raw_json("dynamodb", "ListTables", {}) == {}
        assert server.connections == 3


def test_an_idle_connection_the_server_dropped_is_noticed_before_reuse() -> None:
    """As after an emulator restart: the server closed the connection without saying so in its answer."""
    with serving(_answer_then_hang_up) as server:
        plain = PlainHttp(f"http://127.0.0.1:{server.server_address[1]}")
        assert plain.post("/", b"{}", {}) == (200, b"{}")
        sock = plain._local.conn.sock  # as it is, before the next call checks it
        assert sock is not None
        wait_until(lambda: _dropped(plain._local.conn), "the server's FIN", timeout=10, interval=0.01)
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


def test_a_kept_connection_whose_server_is_gone_reports_the_endpoint_lost() -> None:
    """The emulator stopped: the next call reconnects and is refused, EndpointConnectionError as with boto3
    (the retry policy tells it apart: a call holding state may not reconnect, common/retry.py)."""
    with serving(_answer_then_hang_up) as server:
        plain = PlainHttp(f"http://127.0.0.1:{server.server_address[1]}")
        assert plain.post("/", b"{}", {}) == (200, b"{}")
    with pytest.raises(EndpointConnectionError):
        plain.post("/", b"{}", {})


def test_a_call_interrupted_mid_answer_never_leaves_its_connection_to_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(_json(200, b'{"n":1}')) as server:
        plain = PlainHttp(f"http://127.0.0.1:{server.server_address[1]}")
        real_read = http.client.HTTPResponse.read
        interrupted: list[bool] = []

        def read_once_interrupted(self: http.client.HTTPResponse, *args: object) -> bytes:
            if not interrupted:
                interrupted.append(True)
                raise KeyboardInterrupt
            return real_read(self, *args)

        monkeypatch.setattr(http.client.HTTPResponse, "read", read_once_interrupted)
        with pytest.raises(KeyboardInterrupt):
            plain.post("/", b"{}", {})
        assert plain.post("/", b"{}", {}) == (200, b'{"n":1}')
        assert len(server.received) == 2  # each call sent once


def test_only_plain_http_takes_the_direct_path() -> None:
    assert takes_plain_http("http://127.0.0.1:4566")
    assert not takes_plain_http("https://dynamodb.us-east-1.amazonaws.com")
    assert not takes_plain_http(None)
