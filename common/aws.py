"""The one place boto3 clients are made: endpoint, region, credentials and retry mode from Settings.

On the emulated targets the endpoint is the local emulator and the credentials are dummies;
on `aws` both come from boto3's standard chain. Everything else receives clients from here.
Retries of SDK calls are botocore's standard mode, set here once (common/retry.py has the policy).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.hooks import first_non_none_response
from botocore.httpsession import URLLib3Session

from common.config import Settings
from common.errors import EmulatorDownError, TransientError
from common.raw_http import PlainHttp, host_header, request_target, takes_plain_http

# The retry policy lives in common/retry.py; these names stay importable from here for existing callers.
from common.retry import TRANSIENT_CODES as TRANSIENT_CODES
from common.retry import error_code as error_code
from common.retry import retrying as retrying

DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
# What botocore gives its own clients' connections (botocore/args.py _compute_socket_options): without
# TCP_NODELAY a request whose headers and body go out in two writes waits for the server's delayed ACK,
# about 40 ms per call on Linux (Nagle's algorithm), which made every raw call slower than boto3's.
RAW_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class Clients:
    """Lazily built, cached boto3 clients for one Settings; pass this object down, not Settings+boto3.

    `max_attempts` is botocore's retries after the first attempt (its `max_attempts` key): every SDK call
    is retried by botocore's standard mode and by nothing else (common/retry.py).
    """

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
        self._lock = threading.Lock()  # a boto3 session is not thread-safe; the clients it made are
        self._account_id: str | None = None
        self._http: URLLib3Session | None = None  # raw calls to https endpoints (real AWS)
        # Raw calls to the emulator's plain http endpoint (common/raw_http.py); None on https (real AWS).
        endpoint = settings.endpoint_url
        self._plain = PlainHttp(endpoint) if endpoint and takes_plain_http(endpoint) else None

    def client(self, service: str, *, validated: bool = True) -> Any:
        """A boto3 client; `validated=False` skips botocore's client-side parameter validation.

        Only for hot paths whose requests code builds from typed data (the generator's
        BatchWriteItem): there validation is a fifth of the writer's CPU and can only find our
        own bugs, which the service still rejects with a ValidationException naming the field.
        """
        key = service if validated else f"{service}/unvalidated"
        if key not in self._cache:
            config = self._config if validated else self._config.merge(Config(parameter_validation=False))
            self._make(key, service, config)
        return self._cache[key]

    def _make(self, key: str, service: str, config: Config) -> None:
        """Build and cache a client under `key`, once even when threads ask at the same time."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._session.client(service, endpoint_url=self.settings.endpoint_url,
                                                        config=config)

    def preload(self, *services: str) -> None:
        """Build these clients now: each loads its service model (most of what a client costs), e.g. while a
        process waits for the emulator or for its turn, instead of on its first call."""
        for service in services:
            self.client(service)

    def one_attempt(self, service: str, read_timeout: float | None = None) -> Any:
        """A client botocore does not retry (one attempt per call), waiting `read_timeout` s for an answer.

        For calls whose caller owns the retry policy (Firehose's Lambda Invoke under NumberOfRetries), so
        botocore's attempts never multiply the caller's.
        """
        key = f"{service}/one-attempt/{read_timeout}"
        if key not in self._cache:
            options: dict[str, Any] = {"retries": {"mode": "standard", "total_max_attempts": 1}}
            if read_timeout is not None:
                options["read_timeout"] = read_timeout
            self._make(key, service, self._config.merge(Config(**options)))
        return self._cache[key]

    def __getattr__(self, service: str) -> Any:
        # clients.dynamodb, clients.s3 ... read naturally at call sites.
        if service.startswith("_"):
            raise AttributeError(service)
        return self.client(service.replace("_", "-"))

    def raw_json(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call a JSON-protocol operation and parse the answer with orjson, in AWS's wire form.

        Why: botocore walks every attribute of a response against the service model; for
        DynamoDB Streams GetRecords that costs more than the rest of the pipe runner together
        (docs/decisions.md section 2: GetRecords was bounded by client-side parsing). The request is signed with
        botocore's own SigV4 signer and sent over a kept-alive connection on the emulator's plain http
        (common/raw_http.py), botocore's HTTP session elsewhere; errors come back as ClientError with
        AWS's code, so callers handle them exactly as with a boto3 client. The
        client's `before-send` event fires as botocore fires it, so whatever hooks there (moto,
        the fault injector of the tests) sees these calls too. No retries: callers own them. orjson, not
        the json module: these bodies are AWS wire JSON (strings, 64-bit numbers), where the two agree, and
        writing and reading them was a fifth of the generator's and the pipe runner's CPU.
        """
        client = self.client(service)
        model = client.meta.service_model
        url = client.meta.endpoint_url.rstrip("/") + "/"
        plain = self._plain_http(url)
        headers = {
            "Content-Type": f"application/x-amz-json-{model.metadata['jsonVersion']}",
            "X-Amz-Target": f"{model.metadata['targetPrefix']}.{operation}",
        }
        if plain is not None:
            headers["Host"] = host_header(url)  # signed and sent as one value
        request = AWSRequest(method="POST", url=url, data=orjson.dumps(params), headers=headers)
        with self._lock:
            credentials = self._session.get_credentials().get_frozen_credentials()
        SigV4Auth(credentials, model.signing_name, self.settings.region).add_auth(request)
        prepared = request.prepare()
        hooked = client.meta.events.emit(f"before-send.{model.service_id.hyphenize()}.{operation}", request=prepared)
        response = first_non_none_response(hooked)
        if response is not None:
            status, content = response.status_code, response.content
        elif plain is not None:
            status, content = plain.post(request_target(url), prepared.body, dict(prepared.headers.items()))
        else:
            if self._http is None:
                self._http = URLLib3Session(timeout=70, max_pool_connections=4, socket_options=RAW_SOCKET_OPTIONS)
            sent = self._http.send(prepared)
            status, content = sent.status_code, sent.content
        body = orjson.loads(content or b"{}")
        if status >= 300:
            code = str(body.get("__type", "UnknownError")).rsplit("#", 1)[-1]
            error = {"Code": code, "Message": body.get("message", body.get("Message", ""))}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)
        return body

    def _plain_http(self, url: str) -> PlainHttp | None:
        """The kept-alive connections when `url` is the emulator's plain http (None: botocore's session)."""
        return self._plain if self._plain is not None and self._plain.serves(url) else None

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


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = 120.0, interval: float = 0.5, first: float = 0.05
) -> None:
    """Poll `check` until true; a clear TransientError naming `what` when it never is.

    The pause starts at `first` and doubles up to `interval`: a resource an emulator makes ready in a few
    milliseconds costs no half second, and one AWS takes minutes over is still asked every `interval`.
    """
    deadline = time.monotonic() + timeout
    pause = min(first, interval)
    while not check():
        if time.monotonic() > deadline:
            raise TransientError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, interval)
