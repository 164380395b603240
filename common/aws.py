"""The one place boto3 clients are made: endpoint, region, credentials and retry mode from Settings.

On the emulated targets the endpoint is the local emulator and the credentials are dummies;
on `aws` both come from boto3's standard chain. Everything else receives clients from here.
"""

from __future__ import annotations

import functools
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.hooks import first_non_none_response
from botocore.httpsession import URLLib3Session

from common.config import Settings
from common.errors import EmulatorDownError, TransientError

T = TypeVar("T")

# Error codes that mean "try again later" (throttling and eventual consistency).
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
DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


class Clients:
    """Lazily built, cached boto3 clients for one Settings; pass this object down, not Settings+boto3."""

    def __init__(self, settings: Settings, session: boto3.Session | None = None, max_attempts: int = 5) -> None:
        self.settings = settings
        creds = DUMMY_CREDENTIALS if settings.emulated else {}
        self._session = session or boto3.Session(region_name=settings.region, **creds)
        self._config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=70,
            max_pool_connections=16,
        )
        self._cache: dict[str, Any] = {}
        self._account_id: str | None = None
        self._http: URLLib3Session | None = None

    def client(self, service: str, *, validated: bool = True) -> Any:
        """A boto3 client; `validated=False` skips botocore's client-side parameter validation.

        Only for hot paths whose requests code builds from typed data (the generator's
        BatchWriteItem): there validation is a fifth of the writer's CPU and can only find our
        own bugs, which the service still rejects with a ValidationException naming the field.
        """
        key = service if validated else f"{service}/unvalidated"
        if key not in self._cache:
            config = self._config if validated else self._config.merge(Config(parameter_validation=False))
            self._cache[key] = self._session.client(service, endpoint_url=self.settings.endpoint_url, config=config)
        return self._cache[key]

    def __getattr__(self, service: str) -> Any:
        # clients.dynamodb, clients.s3 ... read naturally at call sites.
        if service.startswith("_"):
            raise AttributeError(service)
        return self.client(service.replace("_", "-"))

    def raw_json(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call a JSON-protocol operation and parse the answer with json.loads, in AWS's wire form.

        Why: botocore walks every attribute of a response against the service model; for
        DynamoDB Streams GetRecords that costs more than the rest of the pipe runner together
        (docs/decisions.md section 2: GetRecords was bounded by client-side parsing). The request is signed with
        botocore's own SigV4 signer and sent over botocore's HTTP session; errors come back as
        ClientError with AWS's code, so callers handle them exactly as with a boto3 client. The
        client's `before-send` event fires as botocore fires it, so whatever hooks there (moto,
        the fault injector of the tests) sees these calls too. No retries: callers own them.
        """
        client = self.client(service)
        model = client.meta.service_model
        request = AWSRequest(
            method="POST",
            url=client.meta.endpoint_url.rstrip("/") + "/",
            data=json.dumps(params).encode(),
            headers={
                "Content-Type": f"application/x-amz-json-{model.metadata['jsonVersion']}",
                "X-Amz-Target": f"{model.metadata['targetPrefix']}.{operation}",
            },
        )
        credentials = self._session.get_credentials().get_frozen_credentials()
        SigV4Auth(credentials, model.signing_name, self.settings.region).add_auth(request)
        prepared = request.prepare()
        hooked = client.meta.events.emit(f"before-send.{model.service_id.hyphenize()}.{operation}", request=prepared)
        response = first_non_none_response(hooked)
        if response is None:
            if self._http is None:
                self._http = URLLib3Session(timeout=70, max_pool_connections=4)
            response = self._http.send(prepared)
        body = json.loads(response.content or b"{}")
        if response.status_code >= 300:
            code = str(body.get("__type", "UnknownError")).rsplit("#", 1)[-1]
            error = {"Code": code, "Message": body.get("message", body.get("Message", ""))}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": response.status_code}},
                              operation)
        return body

    @property
    def account_id(self) -> str:
        """From STS on every target: no code assumes the emulator's account id."""
        if self._account_id is None:
            self._account_id = self.client("sts").get_caller_identity()["Account"]
        return self._account_id

    def ensure_reachable(self) -> None:
        """One-line error instead of a stack trace when the emulator is down."""
        if self.settings.endpoint_url and not emulator_healthy(self.settings.endpoint_url):
            raise EmulatorDownError(self.settings.endpoint_url)


def emulator_healthy(endpoint: str, timeout: float = 1.0) -> bool:
    """True when the emulator's health endpoint answers (MiniStack and LocalStack share it)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def retrying(
    attempts: int = 6, base: float = 0.2, cap: float = 5.0, codes: frozenset[str] = TRANSIENT_CODES,
    reconnect: bool = True,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Retry on transient AWS error codes (or TransientError) with full-jitter exponential backoff.

    `reconnect=False` raises a connection failure at once: for calls holding server-side state
    (a stream iterator) that an endpoint which went away may have lost, so the caller re-opens it.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            for attempt in range(attempts):
                try:
                    return fn(*args, **kwargs)
                except (ClientError, TransientError, EndpointConnectionError) as exc:
                    lost_endpoint = isinstance(exc, EndpointConnectionError)
                    transient = (isinstance(exc, TransientError) or (reconnect and lost_endpoint)
                                 or error_code(exc) in codes)
                    if not transient or attempt == attempts - 1:
                        raise
                    time.sleep(random.uniform(0, min(cap, base * 2**attempt)))
            raise AssertionError("unreachable")

        return wrapper

    return decorate


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = 120.0, interval: float = 0.5
) -> None:
    """Poll `check` until true; a clear TransientError naming `what` when it never is."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TransientError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
