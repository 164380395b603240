"""Find what this project created on AWS by its tags, and name each ARN as a planned resource kind.

`destroy` on aws deletes the planned resources that carry the project's tags, plus anything
else the Resource Groups Tagging API finds with them (e.g. a stream left behind by an earlier
STREAM_NAME), and nothing that lacks them.
https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/API_GetResources.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html
"""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

from bootstrap.spec import tags
from common.aws import Clients, error_code
from common.config import Settings

# (service, resource-type prefix) -> kind; the name is what follows the prefix.
_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("dynamodb", "table/", "dynamodb_table"),
    ("kinesis", "stream/", "kinesis_stream"),
    ("iam", "role/", "iam_role"),
    ("logs", "log-group:", "log_group"),
    ("lambda", "function:", "lambda_function"),
    ("glue", "database/", "glue_database"),
    ("glue", "crawler/", "glue_crawler"),
    ("pipes", "pipe/", "pipe"),
    ("firehose", "deliverystream/", "delivery_stream"),
    ("athena", "workgroup/", "athena_workgroup"),
)
# An SQS queue's ARN ends in the bare queue name (no resource type): 1-80 of these, `.fifo` included.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo")


def key_of_arn(arn: str) -> tuple[str, str] | None:
    """Pure: (kind, name) of an ARN this bootstrap knows how to delete, else None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    service, resource = parts[2], parts[5]
    if service == "s3":
        return ("s3_bucket", resource) if resource and "/" not in resource else None
    if service == "sqs":
        return ("sqs_queue", resource) if _QUEUE_NAME.fullmatch(resource) else None
    for svc, prefix, kind in _PREFIXES:
        if service == svc and resource.startswith(prefix):
            name = resource[len(prefix):]
            if kind == "log_group":
                name = name.removesuffix(":*")
            elif kind == "iam_role":
                name = name.rsplit("/", 1)[-1]  # roles may carry a path
            elif kind == "lambda_function":
                name = name.split(":", 1)[0]  # a version or alias suffix names the same function
            if not name or (kind == "dynamodb_table" and "/" in name):
                return None  # e.g. table/NAME/stream/...: part of a table, not a resource of its own
            return kind, name
    return None


def tagged_arns(clients: Clients, settings: Settings) -> list[str]:
    """Every ARN in the region that carries all of the project's tags (raises ClientError)."""
    filters = [{"Key": k, "Values": [v]} for k, v in tags(settings).items()]
    arns: list[str] = []
    for page in clients.resourcegroupstaggingapi.get_paginator("get_resources").paginate(TagFilters=filters):
        arns += [m["ResourceARN"] for m in page.get("ResourceTagMappingList", [])]
    return arns


def tag_lookup_denied(exc: ClientError) -> bool:
    return error_code(exc) in ("AccessDenied", "AccessDeniedException")
