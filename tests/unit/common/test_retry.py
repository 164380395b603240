"""common/retry.py: one full-jitter backoff, one bounded retry loop, and which AWS errors end a runner."""

from __future__ import annotations

from unittest import mock

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, NoCredentialsError

from common.aws import Clients
from common.config import load_settings
from common.errors import TerminalError, TransientError
from common.retry import (
    RAW_CALL_ATTEMPTS,
    TERMINAL_CODES,
    TRANSIENT_CODES,
    Backoff,
    is_transient,
    retried_by_standard_mode,
    retry_as_sdk,
    retry_call,
    terminal_error,
)


def client_error(code: str, operation: str = "GetRecords", message: str = "injected") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_backoff_is_full_jitter_doubling_up_to_its_cap() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0)
    assert [backoff.delay(n, draw=1.0) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.delay(3, draw=0.0) == 0.0  # full jitter: anywhere from nothing to the bound
    assert backoff.delay(10_000, draw=0.5) == 0.5  # a huge attempt number does not overflow
    assert all(0 <= backoff.delay(2) <= 0.4 for _ in range(200))


def test_retry_call_retries_what_is_retryable_up_to_its_attempts_and_no_further() -> None:
    slept: list[float] = []
    call = mock.Mock(side_effect=[client_error("ThrottlingException")] * 2 + ["ok"])
    assert retry_call(call, attempts=3, backoff=Backoff(1.0, 10.0), retryable=is_transient, sleep=slept.append) == "ok"
    assert call.call_count == 3 and len(slept) == 2 and slept[0] <= 1.0 and slept[1] <= 2.0

    call = mock.Mock(side_effect=[client_error("ThrottlingException")] * 3)
    with pytest.raises(ClientError):
        retry_call(call, attempts=3, backoff=Backoff(1.0, 10.0), retryable=is_transient, sleep=slept.append)
    assert call.call_count == 3

    call = mock.Mock(side_effect=[client_error("AccessDeniedException"), "ok"])
    with pytest.raises(ClientError):
        retry_call(call, attempts=5, backoff=Backoff(1.0, 10.0), retryable=is_transient, sleep=slept.append)
    assert call.call_count == 1


@pytest.mark.parametrize("exc", [
    client_error("ProvisionedThroughputExceededException"), client_error("ThrottlingException"),
    client_error("SlowDown", "PutObject"), client_error("InternalServerError"),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ConnectionClosedError(endpoint_url="http://x"),
    TransientError("busy"),
])
def test_transient_errors_are_retried_and_never_end_a_runner(exc: Exception) -> None:
    assert is_transient(exc)
    assert terminal_error(exc, "the pipe runner") is None


@pytest.mark.parametrize(("code", "operation", "fix"), [
    ("AccessDeniedException", "PutRecords", "grant the permission"),
    ("AccessDenied", "PutObject", "grant the permission"),
    ("UnrecognizedClientException", "GetRecords", "refresh them"),
    ("ExpiredTokenException", "DescribeStream", "refresh them"),
    ("ResourceNotFoundException", "DescribeStream", "`make up` creates it"),
    ("NoSuchBucket", "PutObject", "`make up` creates it"),
    ("ValidationException", "GetShardIterator", "`make plan`"),
    ("KMSAccessDeniedException", "GetRecords", "KMS key"),
])
def test_a_terminal_error_becomes_one_line_naming_the_call_the_code_and_the_fix(
        code: str, operation: str, fix: str) -> None:
    terminal = terminal_error(client_error(code, operation, "User: x is not\nauthorized"), "the pipe runner")
    assert isinstance(terminal, TerminalError)
    line = str(terminal)
    assert "\n" not in line
    assert line.startswith(f"the pipe runner stopped: {operation} answered {code} (User: x is not authorized); ")
    assert fix in line


def test_no_credentials_at_all_is_terminal_too() -> None:
    terminal = terminal_error(NoCredentialsError(), "the firehose runner")
    assert terminal is not None and "refresh them" in str(terminal)


def test_an_unknown_error_code_is_neither_list_s() -> None:
    exc = client_error("SomethingNew")
    assert terminal_error(exc, "the pipe runner") is None and not is_transient(exc)


def test_no_code_is_both_transient_and_terminal() -> None:
    assert not TRANSIENT_CODES & set(TERMINAL_CODES)


def test_sdk_clients_are_retried_by_botocore_s_standard_mode_configured_in_one_place() -> None:
    clients = Clients(load_settings(env={}), max_attempts=3)
    retries = clients.client("kinesis").meta.config.retries
    assert (retries["mode"], retries["total_max_attempts"]) == ("standard", 4)
    one = clients.one_attempt("lambda", read_timeout=42)
    assert one.meta.config.retries["total_max_attempts"] == 1 and one.meta.config.read_timeout == 42
    assert clients.one_attempt("lambda", read_timeout=42) is one  # built once


def test_a_raw_call_is_retried_as_botocore_standard_mode_would_retry_its_sdk_call() -> None:
    server_error = ClientError({"Error": {"Code": "InternalFailure", "Message": "x"},
                                "ResponseMetadata": {"HTTPStatusCode": 500}}, "PutRecords")
    refused = ClientError({"Error": {"Code": "ValidationException", "Message": "x"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutRecords")
    assert retried_by_standard_mode(server_error)
    assert retried_by_standard_mode(client_error("ProvisionedThroughputExceededException"))
    assert retried_by_standard_mode(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert not retried_by_standard_mode(refused)
    calls = mock.Mock(side_effect=[server_error] * (RAW_CALL_ATTEMPTS - 1) + ["ok"])
    assert retry_as_sdk(calls, sleep=lambda s: None) == "ok" and calls.call_count == RAW_CALL_ATTEMPTS
    with pytest.raises(ClientError, match="ValidationException"):
        retry_as_sdk(mock.Mock(side_effect=[refused, "ok"]), sleep=lambda s: None)
