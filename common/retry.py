"""One retry policy: which AWS errors are worth another attempt, which end a runner, and one backoff.

- SDK calls are retried by botocore alone: the standard retry mode, configured once where clients are
  built (common/aws.py `Clients`). It retries throttling codes, 5xx answers and lost connections with
  full-jitter exponential backoff (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
  Code here does not wrap SDK calls in a loop of its own, so attempts never multiply.
- A call botocore does not retry has its own loop, with `Backoff` (full jitter, capped: "Exponential Backoff
  And Jitter", https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/): the raw GetRecords
  calls (`Clients.raw_json`), the entries a PutRecords or BatchWriteItem answered as unprocessed, a Lambda
  Invoke under Firehose's NumberOfRetries.
- A runner's pass that fails is retried by the loop (runners/loop.py) when the error is transient, and ends
  the runner with one line naming the error and its fix when it is terminal (`terminal_error`): retrying
  cannot grant a permission or create a resource. The codes come from the AWS common errors
  (https://docs.aws.amazon.com/kinesis/latest/APIReference/CommonErrors.html), DynamoDB's
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html), S3's
  (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html) and Kinesis's KMS errors
  (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from common.errors import TerminalError, TransientError

T = TypeVar("T")

# Error codes that mean "try again later" (throttling, eventual consistency, the service's own 5xx).
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "SlowDown",
        "LimitExceededException",
        "KMSThrottlingException",
    }
)

# Error codes no retry can fix, each with the fix a person has to make. A missing resource is terminal when
# a runner's own resource is missing (its stream, its target, its bucket); a shard that vanished is not, the
# shard reader turns that into a transient error and looks for the stream's shards again (runners/shards.py).
_PERMISSION_FIX = ("the credentials the runner uses may not do this: grant the permission (on TARGET=aws the "
                   "role's policy in the plan, `make plan`), then restart the runners (`make up`)")
_CREDENTIALS_FIX = ("the endpoint does not accept the runner's credentials: refresh them (e.g. `aws sso login`) "
                    "or check TARGET/ENDPOINT, then restart the runners (`make up`)")
_MISSING_FIX = ("a resource the runner's spec names does not exist: `make up` creates it and restarts the runners "
                "(`make plan` shows what is missing)")
_REQUEST_FIX = ("AWS refused a request the runner built from its spec: check the spec with `make plan` and the "
                "runner's log")
_KMS_FIX = ("the stream's KMS key cannot be used: enable the key or grant its use to the runner's credentials, "
            "then restart the runners (`make up`)")
TERMINAL_CODES: dict[str, str] = {
    **dict.fromkeys(("AccessDenied", "AccessDeniedException", "NotAuthorized", "UnauthorizedOperation",
                     "AllAccessDisabled", "AccountProblem", "OptInRequired"), _PERMISSION_FIX),
    **dict.fromkeys(("UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId",
                     "SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature",
                     "IncompleteSignatureException", "MissingAuthenticationToken",
                     "MissingAuthenticationTokenException", "ExpiredToken", "ExpiredTokenException", "InvalidToken",
                     "AuthFailure"), _CREDENTIALS_FIX),
    **dict.fromkeys(("ResourceNotFoundException", "NoSuchBucket"), _MISSING_FIX),
    **dict.fromkeys(("ValidationException", "ValidationError", "InvalidArgumentException",
                     "InvalidParameterValue", "InvalidParameterValueException", "InvalidParameterCombination",
                     "MissingParameter", "InvalidQueryParameter", "MalformedQueryString", "InvalidAction",
                     "MissingAction", "SerializationException", "InvalidBucketName"), _REQUEST_FIX),
    **dict.fromkeys(("KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException",
                     "KMSNotFoundException", "KMSOptInRequired"), _KMS_FIX),
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_transient(exc: BaseException) -> bool:
    """Another attempt may pass: throttling, the service's 5xx, a lost or closed connection (an emulator restart)."""
    return isinstance(exc, TransientError | BotoConnectionError | HTTPClientError) or (
        isinstance(exc, ClientError) and error_code(exc) in TRANSIENT_CODES
    )


def terminal_error(exc: BaseException, who: str) -> TerminalError | None:
    """The one line that ends `who` (e.g. "the pipe runner") for an error no retry can fix, else None."""
    if isinstance(exc, TerminalError):
        return exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return TerminalError(f"{who} stopped: {type(exc).__name__}: {exc}; {_CREDENTIALS_FIX}")
    fix = TERMINAL_CODES.get(error_code(exc))
    if fix is None:
        return None
    assert isinstance(exc, ClientError)
    message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())[:200]
    return TerminalError(f"{who} stopped: {exc.operation_name} answered {error_code(exc)}"
                         f"{f' ({message})' if message else ''}; {fix}")


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: the wait before retry `n` (0 first) is uniform in [0, min(cap, base * 2**n))."""

    base_s: float
    cap_s: float

    def delay(self, retry: int, draw: float | None = None) -> float:
        """`draw` (uniform in [0, 1)) is injectable so tests can ask for the bound itself."""
        return (random.random() if draw is None else draw) * min(self.cap_s, self.base_s * 2 ** min(retry, 32))


def retry_call(
    fn: Callable[[], T], *, attempts: int, backoff: Backoff, retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` up to `attempts` times while what it raises is `retryable`, waiting `backoff` in between."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not retryable(exc) or attempt == attempts - 1:
                raise
            sleep(backoff.delay(attempt))
    raise AssertionError("unreachable: attempts must be at least 1")


# A raw write (common/aws.py Clients.raw_json: the generator's BatchWriteItem, the pipe's PutRecords) is tried
# as botocore's standard mode tries an SDK call: 5 attempts in all, what it retries, a short full-jitter backoff.
RAW_CALL_ATTEMPTS = 5
RAW_CALL_BACKOFF = Backoff(base_s=0.05, cap_s=2.0)


def retried_by_standard_mode(exc: BaseException) -> bool:
    """What botocore's standard mode retries: throttling, a lost connection, the service's 5xx."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if isinstance(exc, ClientError) else 0
    return is_transient(exc) or status >= 500


def retry_as_sdk(fn: Callable[[], T], attempts: int = RAW_CALL_ATTEMPTS,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """`fn` (a raw call) retried as botocore would retry the SDK call it stands for."""
    return retry_call(fn, attempts=attempts, backoff=RAW_CALL_BACKOFF, retryable=retried_by_standard_mode,
                      sleep=sleep)


def retrying(
    attempts: int = 6, base: float = 0.2, cap: float = 5.0, codes: frozenset[str] = TRANSIENT_CODES,
    reconnect: bool = True,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """`retry_call` as a decorator: `codes` (or TransientError) are retried, with `Backoff(base, cap)`.

    For calls botocore does not retry: raw calls, or codes outside its list (a resource still being
    created). `reconnect=False` raises a lost endpoint at once: for calls holding server-side state (a
    stream iterator) that an endpoint which went away may have lost, so the caller re-opens it.
    """

    def retryable(exc: BaseException) -> bool:
        return (isinstance(exc, TransientError) or (reconnect and isinstance(exc, EndpointConnectionError))
                or error_code(exc) in codes)

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            return retry_call(lambda: fn(*args, **kwargs), attempts=attempts, backoff=Backoff(base, cap),
                              retryable=retryable, sleep=time.sleep)

        return wrapper

    return decorate
