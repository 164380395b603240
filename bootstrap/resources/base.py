"""What every resource handler offers; the plan and apply steps only ever talk to this.

Also the one place AWS errors become one-line messages: AccessDenied names the missing IAM
action and the resource, throttling says to run again, anything else names the call and AWS's
own message. https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from botocore.exceptions import ClientError

from bootstrap.spec import Resource
from common.aws import TRANSIENT_CODES, Clients, error_code
from common.errors import PipelineError, TerminalError, TransientError

State = dict[str, Any]

ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "403"}
)
# The IAM service prefix of the API each kind calls (a few calls cross over: see OPERATION_ACTION).
SERVICE_OF_KIND = {
    "s3_bucket": "s3", "dynamodb_table": "dynamodb", "kinesis_stream": "kinesis", "iam_role": "iam",
    "log_group": "logs", "lambda_function": "lambda", "glue_database": "glue", "glue_table": "glue",
    "sqs_queue": "sqs", "pipe": "pipes", "delivery_stream": "firehose", "glue_crawler": "glue",
    "athena_workgroup": "athena",
}
# API operations whose IAM action is not "<service>:<operation>".
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
OPERATION_ACTION = {
    "HeadBucket": "s3:ListBucket",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListObjectsV2": "s3:ListBucket",
    "DeleteObjects": "s3:DeleteObjectVersion",
    "GetRole": "iam:GetRole",
    "ListRoleTags": "iam:ListRoleTags",
    "DescribeStream": "dynamodb:DescribeStream",
    "GetResources": "tag:GetResources",
}
_NOT_AUTHORIZED = re.compile(r"not authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")
_ON_RESOURCE = re.compile(r"on resource: (\S+)")


class Handler(Protocol):
    def desired(self, res: Resource) -> State:
        """The managed fields as the spec wants them."""

    def observe(self, clients: Clients, res: Resource) -> State | None:
        """The managed fields as they are now; None when the resource does not exist."""

    def facts(self, clients: Clients, res: Resource) -> dict[str, Any]:
        """Values later resources refer to (e.g. the table's stream ARN)."""

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        """The live resource's tags: `destroy` on aws deletes only what carries the project's."""

    def create(self, clients: Clients, res: Resource) -> None: ...

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None: ...

    def delete(self, clients: Clients, res: Resource) -> None:
        """Delete by name alone: resources found by their tags have no spec parameters."""


class NoFacts:
    def facts(self, clients: Clients, res: Resource) -> dict[str, Any]:
        return {}


def missing(exc: ClientError, *codes: str) -> bool:
    """True when the error says the thing is not there (each API spells it differently)."""
    return error_code(exc) in codes or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


def iam_action(exc: ClientError, kind: str) -> str:
    """The IAM action a failed call needed: from AWS's message when it names it, else from the API."""
    named = _NOT_AUTHORIZED.search(str(exc.response.get("Error", {}).get("Message", "")))
    if named:
        return named.group(1)
    operation = getattr(exc, "operation_name", "") or "unknown"
    return OPERATION_ACTION.get(operation, f"{SERVICE_OF_KIND.get(kind, 'unknown')}:{operation}")


def explain(exc: ClientError, res: Resource, arn: str) -> PipelineError:
    """One line for the CLI's error boundary, naming what failed and how to fix it."""
    code = error_code(exc) or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    action = iam_action(exc, res.kind)
    message = str(exc.response.get("Error", {}).get("Message", "")).strip() or code
    if code in ACCESS_DENIED_CODES:
        on = _ON_RESOURCE.search(message)
        resource = on.group(1) if on else arn
        hint = ""
        if res.kind == "s3_bucket" and action == "s3:ListBucket":
            hint = " (if it has it, another account owns this bucket name: set LAKE_BUCKET/RESULTS_BUCKET)"
        return TerminalError(f"AccessDenied on {action} for {resource}: grant it to the deploying identity{hint}")
    if code in TRANSIENT_CODES:
        return TransientError(
            f"AWS throttled {action} for {arn} ({code}) after retries; wait a minute and run it again "
            "(apply is idempotent)"
        )
    return TerminalError(f"{action} failed for {arn}: {code}: {message}")
