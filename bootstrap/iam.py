"""Least-privilege IAM documents for the pipeline's four roles, as pure values.

Each statement names the exact actions one service needs and the exact ARNs it needs them on;
`*` appears nowhere (CloudWatch Logs log streams use the documented `log-group:NAME:*` form).
References:
- Pipes with a DynamoDB stream source / Kinesis target, and sqs:SendMessage to send the records of
  failed batches to the pipe's dead-letter queue:
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-permissions.html
- Pipes logging to a CloudWatch Logs log group (the pipe's LogConfiguration):
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-logs.html
- Firehose reading Kinesis, invoking Lambda, writing S3, reading Glue for format conversion:
  https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html
- Lambda basic execution: https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html
- Glue crawler: https://docs.aws.amazon.com/glue/latest/dg/crawler-prereqs.html
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config import ROLE_SERVICES, Settings

Document = dict[str, Any]


@dataclass(frozen=True)
class Arns:
    """Every ARN the pipeline's policies point at, derived from settings + account + region."""

    partition: str
    region: str
    account: str
    settings: Settings

    @classmethod
    def build(cls, settings: Settings, account: str) -> Arns:
        return cls(aws_partition(settings.region), settings.region, account, settings)

    def _arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )

    @property
    def table(self) -> str:
        return self._arn("dynamodb", f"table/{self.settings.table_name}")

    @property
    def table_streams(self) -> str:
        return f"{self.table}/stream/*"

    @property
    def kinesis_stream(self) -> str:
        return self._arn("kinesis", f"stream/{self.settings.stream_name}")

    @property
    def lambda_function(self) -> str:
        return self._arn("lambda", f"function:{self.settings.lambda_name}")

    def bucket(self, name: str) -> str:
        return self._arn("s3", name, region=False, account=False)

    def role(self, name: str) -> str:
        return self._arn("iam", f"role/{name}", region=False)

    def log_group(self, name: str) -> str:
        return self._arn("logs", f"log-group:{name}")

    @property
    def glue_catalog(self) -> str:
        return self._arn("glue", "catalog")

    @property
    def glue_database(self) -> str:
        return self._arn("glue", f"database/{self.settings.glue_database}")

    @property
    def glue_table(self) -> str:
        return self._arn("glue", f"table/{self.settings.glue_database}/{self.settings.glue_table}")

    @property
    def pipe(self) -> str:
        return self._arn("pipes", f"pipe/{self.settings.pipe_name}")

    def queue(self, name: str) -> str:
        """An SQS queue's ARN: the queue name follows the account, with no resource-type prefix."""
        return self._arn("sqs", name)

    @property
    def pipe_dead_letter_queue(self) -> str:
        return self.queue(pipe_dead_letter_queue_name(self.settings))

    @property
    def delivery_stream(self) -> str:
        return self._arn("firehose", f"deliverystream/{self.settings.delivery_stream}")

    def of(self, kind: str, name: str) -> str:
        """The ARN of one planned resource (what error messages and the tag lookups name)."""
        by_kind = {
            "s3_bucket": lambda: self.bucket(name),
            "dynamodb_table": lambda: self._arn("dynamodb", f"table/{name}"),
            "kinesis_stream": lambda: self._arn("kinesis", f"stream/{name}"),
            "iam_role": lambda: self.role(name),
            "log_group": lambda: self.log_group(name),
            "sqs_queue": lambda: self.queue(name),
            "lambda_function": lambda: self._arn("lambda", f"function:{name}"),
            "glue_database": lambda: self._arn("glue", f"database/{name}"),
            "glue_table": lambda: self._arn("glue", f"table/{self.settings.glue_database}/{name}"),
            "pipe": lambda: self._arn("pipes", f"pipe/{name}"),
            "delivery_stream": lambda: self._arn("firehose", f"deliverystream/{name}"),
            "glue_crawler": lambda: self._arn("glue", f"crawler/{name}"),
            "athena_workgroup": lambda: self._arn("athena", f"workgroup/{name}"),
        }
        return by_kind[kind]() if kind in by_kind else name


def aws_partition(region: str) -> str:
    """AWS partition for a region: ARNs differ in China and GovCloud."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def log_groups(settings: Settings) -> dict[str, str]:
    """The log groups each role writes to (created with retention by the bootstrap on aws)."""
    return {
        "lambda": f"/aws/lambda/{settings.lambda_name}",
        "firehose": f"/aws/kinesisfirehose/{settings.delivery_stream}",
        "glue": "/aws-glue/crawlers",
        "pipes": pipe_log_group(settings),
    }


def pipe_log_group(settings: Settings) -> str:
    """Where the pipe logs (its LogConfiguration); the name the Pipes console would give it."""
    return f"/aws/vendedlogs/pipes/{settings.pipe_name}"


def pipe_dead_letter_queue_name(settings: Settings) -> str:
    """The SQS queue that receives the pipe's dead letters (DeadLetterConfig)."""
    return f"{settings.pipe_name}-dlq"


def managed_log_groups(settings: Settings) -> dict[str, str]:
    """The log groups the bootstrap creates (with retention) on aws: the Lambda's, Firehose's and the pipe's.

    The pipe's is created before CreatePipe names it in its LogConfiguration, so the pipe's error
    records land in a group that exists and has a retention. `/aws-glue/crawlers` is shared by
    every crawler of the account, so it is not ours to create, set a retention on, or delete.
    """
    groups = log_groups(settings)
    return {"lambda": groups["lambda"], "firehose": groups["firehose"], "pipes": groups["pipes"]}


def role_names(settings: Settings) -> dict[str, str]:
    return {svc: f"{settings.project}-{svc}" for svc in ROLE_SERVICES}


def _statement(sid: str, actions: list[str], resources: list[str]) -> Document:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def _policy(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _log_statement(arns: Arns, group: str) -> Document:
    return _statement(
        "WriteOwnLogs",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [f"{arns.log_group(group)}:*"],
    )


# The key each service is documented to send when it assumes a role on this account's behalf (confused
# deputy): the Pipes user guide and Firehose's "Grant Firehose access" page show these conditions. A
# condition on a key the request lacks denies it, so a service with no such page gets none: Lambda (an
# execution role) and Glue (its guide's role has no condition; with one, CreateCrawler could fail with
# "Service is unable to assume role"). Roles cannot be passed to another account's service, and each role's
# permissions name this stack's resources only. Only a real deploy can confirm these (README, Deploying to AWS).
_ASSUME_CONDITION_KEYS = {"pipes": "aws:SourceAccount", "firehose": "sts:ExternalId"}


def trust_policy(service: str, arns: Arns) -> Document:
    """Who may assume the role: one service principal, limited to this account where the service says how."""
    statement: Document = {"Effect": "Allow", "Principal": {"Service": f"{service}.amazonaws.com"},
                           "Action": "sts:AssumeRole"}
    key = _ASSUME_CONDITION_KEYS.get(service)
    if key:
        statement["Condition"] = {"StringEquals": {key: arns.account}}
    return _policy(statement)


def lambda_policy(arns: Arns) -> Document:
    return _policy(_log_statement(arns, log_groups(arns.settings)["lambda"]))


def pipes_policy(arns: Arns) -> Document:
    """Read the table's stream, write the Kinesis stream, send dead letters, write the pipe's own log group.

    The four stream actions, ListStreams included, on the table's stream ARN: as DynamoDB's own example
    grants them (amazondynamodb/latest/developerguide/iam-policy-read-stream-only.html).

    eb-pipes-permissions.html (DynamoDB execution role permissions): "To send records of failed
    batches to the pipe dead-letter queue, your pipe execution role needs ... sqs:SendMessage".
    eb-pipes-logs.html: the pipe delivers its log records with its execution role, so the role may
    create streams in, and put events to, its log group (what the CDK's CloudwatchLogsLogDestination
    grants the pipe role: logs:CreateLogStream and logs:PutLogEvents on that group).
    """
    return _policy(
        _statement(
            "ReadTableStream",
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
             "dynamodb:ListStreams"],
            [arns.table_streams],
        ),
        _statement("WriteKinesis", ["kinesis:PutRecord", "kinesis:PutRecords"], [arns.kinesis_stream]),
        _statement("SendDeadLetters", ["sqs:SendMessage"], [arns.pipe_dead_letter_queue]),
        _log_statement(arns, log_groups(arns.settings)["pipes"]),
    )


def _kms_statement(sid: str, actions: list[str], arns: Arns, key_arn: str, bucket: str) -> Document:
    """Use of the lake's customer key, only through S3 and only for this bucket's objects.

    With S3 Bucket Keys the encryption context is the bucket ARN, without them the object ARN.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html
    """
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": [key_arn],
        "Condition": {
            "StringEquals": {"kms:ViaService": f"s3.{arns.region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket, f"{bucket}/*"]},
        },
    }


def firehose_policy(arns: Arns, lake_bucket: str, kms_key_arn: str = "") -> Document:
    bucket = arns.bucket(lake_bucket)
    kms = [_kms_statement("EncryptLake", ["kms:Decrypt", "kms:GenerateDataKey"], arns, kms_key_arn, bucket)]
    return _policy(
        _statement(
            "ReadKinesis",
            ["kinesis:DescribeStream", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"],
            [arns.kinesis_stream],
        ),
        _statement(
            "InvokeTransform",
            ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"],
            [arns.lambda_function, f"{arns.lambda_function}:*"],
        ),
        _statement(
            "WriteLake",
            ["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
             "s3:ListBucketMultipartUploads", "s3:PutObject"],
            [bucket, f"{bucket}/*"],
        ),
        _statement(
            "ReadSchemaForConversion",
            ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
            [arns.glue_catalog, arns.glue_database, arns.glue_table],
        ),
        _log_statement(arns, log_groups(arns.settings)["firehose"]),
        *(kms if kms_key_arn else []),
    )


def glue_policy(arns: Arns, lake_bucket: str, kms_key_arn: str = "") -> Document:
    bucket = arns.bucket(lake_bucket)
    kms = [_kms_statement("DecryptLake", ["kms:Decrypt"], arns, kms_key_arn, bucket)]
    return _policy(
        _statement("ListLake", ["s3:ListBucket"], [bucket]),
        _statement("ReadLake", ["s3:GetObject"], [f"{bucket}/{arns.settings.lake_prefix}*"]),
        _statement(
            "MaintainCatalog",
            ["glue:BatchCreatePartition", "glue:BatchGetPartition", "glue:CreateTable", "glue:GetDatabase",
             "glue:GetPartition", "glue:GetPartitions", "glue:GetTable", "glue:UpdatePartition",
             "glue:UpdateTable", "glue:BatchUpdatePartition"],
            [arns.glue_catalog, arns.glue_database, arns.glue_table],
        ),
        _statement(
            "CreateCrawlerLogs",
            ["logs:CreateLogGroup"],
            [arns.log_group(log_groups(arns.settings)["glue"])],
        ),
        _log_statement(arns, log_groups(arns.settings)["glue"]),
        *(kms if kms_key_arn else []),
    )


def role_documents(arns: Arns, lake_bucket: str, kms_key_arn: str = "") -> dict[str, tuple[Document, Document]]:
    """service -> (trust policy, inline permissions policy); a KMS key adds its use to the S3 roles."""
    return {
        "lambda": (trust_policy("lambda", arns), lambda_policy(arns)),
        "pipes": (trust_policy("pipes", arns), pipes_policy(arns)),
        "firehose": (trust_policy("firehose", arns), firehose_policy(arns, lake_bucket, kms_key_arn)),
        "glue": (trust_policy("glue", arns), glue_policy(arns, lake_bucket, kms_key_arn)),
    }


def backfill_policy(arns: Arns, lake_bucket: str, kms_key_arn: str = "") -> Document:
    """What the identity running `make backfill` on aws needs (an identity policy: no role is created for it).

    The export itself: dynamodb:ExportTableToPointInTime on the table, DescribeExport on its exports,
    DescribeContinuousBackups for the latest restorable time (SINCE); the identity that asks for an export
    also needs s3:PutObject, s3:PutObjectAcl and s3:AbortMultipartUpload on the destination, here the lake
    bucket's export prefix (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport_Requesting.html).
    Reading the export back (GetObject under the export prefix), writing snapshot rows (PutObject under
    the lake prefix, refused items under the error prefix) and the Glue table's columns (the Parquet schema)
    complete it.
    """
    bucket = arns.bucket(lake_bucket)
    settings = arns.settings
    exports = f"{bucket}/{settings.backfill_export_prefix}*"
    kms = [_kms_statement("UseLakeKey", ["kms:Decrypt", "kms:GenerateDataKey"], arns, kms_key_arn, bucket)]
    return _policy(
        _statement("ExportTable", ["dynamodb:DescribeContinuousBackups", "dynamodb:DescribeTable",
                                   "dynamodb:ExportTableToPointInTime"], [arns.table]),
        _statement("DescribeExports", ["dynamodb:DescribeExport"], [f"{arns.table}/export/*"]),
        _statement("WriteExport", ["s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl"], [exports]),
        _statement("ReadExport", ["s3:GetObject"], [exports]),
        _statement("WriteSnapshotRows", ["s3:PutObject"],
                   [f"{bucket}/{settings.lake_prefix}*", f"{bucket}/{settings.error_prefix}backfill-failed/*"]),
        _statement("ReadTableSchema", ["glue:GetTable"], [arns.glue_catalog, arns.glue_database, arns.glue_table]),
        *(kms if kms_key_arn else []),
    )


def backfill_policy_for(settings: Settings, account: str) -> Document:
    """`backfill_policy` for this configuration's table, lake bucket and KMS key (`make backfill POLICY=1`)."""
    return backfill_policy(Arns.build(settings, account), settings.lake_bucket_for(account), settings.kms_key_arn)


def tls_only_bucket_policy(arns: Arns, bucket: str) -> Document:
    """Deny any request to the bucket that does not use TLS (AWS's recommended bucket policy)."""
    arn = arns.bucket(bucket)
    return _policy(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
