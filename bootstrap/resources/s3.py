"""S3 buckets: private, encrypted, TLS-only, tagged, with lifecycle rules; the lake is versioned.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients


class Bucket(NoFacts):
    def desired(self, res: Resource) -> State:
        p = res.params
        return {
            "PublicAccessBlock": p["PublicAccessBlock"],
            "Encryption": p["Encryption"],
            "BucketKeyEnabled": p.get("BucketKeyEnabled", False),
            "Versioning": p["Versioning"],
            "Lifecycle": sorted(p.get("Lifecycle") or [], key=lambda rule: rule.get("ID", "")) or None,
            "Policy": p["Policy"],
            "Tags": p["Tags"],
        }

    def observe(self, clients: Clients, res: Resource) -> State | None:
        s3, bucket = clients.s3, res.name
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if missing(exc, "NoSuchBucket", "404"):
                return None
            raise
        rule = _get(lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0])
        return {
            "PublicAccessBlock": _get(lambda: s3.get_public_access_block(Bucket=bucket)
                                      ["PublicAccessBlockConfiguration"]),
            "Encryption": None if rule is None else rule.get("ApplyServerSideEncryptionByDefault"),
            "BucketKeyEnabled": bool((rule or {}).get("BucketKeyEnabled", False)),
            "Versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status", "Suspended"),
            "Lifecycle": _get(lambda: sorted(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
                                             key=lambda rule: rule.get("ID", ""))),
            "Policy": _get(lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])),
            "Tags": _get(lambda: {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}),
        }

    def create(self, clients: Clients, res: Resource) -> None:
        region = res.params["Region"]
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        clients.s3.create_bucket(Bucket=res.name, **kwargs)
        self.update(clients, res, list(self.desired(res)))

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        """Tags first: a bucket left half-configured by a failure is still found as ours."""
        s3, bucket, want = clients.s3, res.name, self.desired(res)
        if "Tags" in changed:
            s3.put_bucket_tagging(
                Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in want["Tags"].items()]}
            )
        if "PublicAccessBlock" in changed:
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=want["PublicAccessBlock"])
        if "Encryption" in changed or "BucketKeyEnabled" in changed:
            s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": want["Encryption"],
                               "BucketKeyEnabled": want["BucketKeyEnabled"]}]
                },
            )
        if "Versioning" in changed:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": want["Versioning"]})
        if "Lifecycle" in changed:
            if want["Lifecycle"]:
                s3.put_bucket_lifecycle_configuration(
                    Bucket=bucket, LifecycleConfiguration={"Rules": want["Lifecycle"]}
                )
            else:
                s3.delete_bucket_lifecycle(Bucket=bucket)
        if "Policy" in changed:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(want["Policy"]))

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        found = _get(lambda: clients.s3.get_bucket_tagging(Bucket=res.name)["TagSet"]) or []
        return {t["Key"]: t["Value"] for t in found}

    def delete(self, clients: Clients, res: Resource) -> None:
        """Only an empty bucket is deleted; `destroy --empty-buckets` empties it first."""
        clients.s3.delete_bucket(Bucket=res.name)


def empty_bucket(clients: Clients, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many were removed."""
    s3, removed = clients.s3, 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(batch), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch[start:start + 1000], "Quiet": True})
        removed += len(batch)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            removed += len(keys)
    return removed


NOT_CONFIGURED = (
    "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchBucketPolicy",
    "NoSuchLifecycleConfiguration",
    "NoSuchTagSet",
)


def _get(read: Callable[[], Any]) -> Any:
    """A bucket sub-resource that is not configured reads as None (each has its own error code)."""
    try:
        return read()
    except ClientError as exc:
        if missing(exc, *NOT_CONFIGURED):
            return None
        raise
