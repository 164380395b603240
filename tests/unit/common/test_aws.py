"""common.aws.retrying: transient codes are retried, bounded; a lost endpoint only when reconnecting is safe."""

from __future__ import annotations

import socket
from unittest import mock

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from common.aws import retrying


def failing(*errors: Exception) -> mock.Mock:
    """A call that raises `errors` in turn, then answers "ok"."""
    return mock.Mock(side_effect=[*errors, "ok"])


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                       "GetRecords")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("common.aws.time.sleep", lambda _: None)


def test_throttling_is_retried_until_it_passes_and_then_raised_when_it_does_not() -> None:
    call = failing(throttled(), throttled())
    assert retrying(attempts=3)(call)() == "ok" and call.call_count == 3
    with pytest.raises(ClientError):
        retrying(attempts=2)(failing(throttled(), throttled()))()


def test_a_lost_endpoint_is_retried_unless_the_call_holds_state_it_may_have_lost() -> None:
    gone = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    call = failing(gone)
    assert retrying(attempts=3)(call)() == "ok" and call.call_count == 2
    call = failing(gone)
    with pytest.raises(EndpointConnectionError):
        retrying(attempts=3, reconnect=False)(call)()
    assert call.call_count == 1
    call = failing(throttled())
    assert retrying(attempts=3, reconnect=False)(call)() == "ok"  # throttling is still retried


def test_other_errors_are_not_retried() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetRecords")
    call = failing(denied)
    with pytest.raises(ClientError):
        retrying(attempts=5)(call)()
    assert call.call_count == 1


def test_raw_calls_use_the_socket_options_botocore_gives_its_own_clients() -> None:
    """Without TCP_NODELAY a raw request (headers, then body) waited for the server's delayed ACK: ~40 ms a call."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from common.aws import Clients
    from common.config import load_settings

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"TableNames":[]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        clients = Clients(load_settings(env={}, port=server.server_address[1]), max_attempts=1)
        clients.raw_json("dynamodb", "ListTables", {})
        own = clients.client("dynamodb")._endpoint.http_session._socket_options
        assert (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in own
        assert clients._http is not None and clients._http._socket_options == own
    finally:
        server.shutdown()
        server.server_close()
