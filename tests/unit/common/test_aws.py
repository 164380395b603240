"""common.aws.retrying: transient codes are retried, bounded; a lost endpoint only when reconnecting is safe."""

from __future__ import annotations

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
