"""The desired resources of the pipeline, as one ordered list of frozen values built from Settings.

Each resource carries the very request parameters the `aws` target sends (CreatePipe,
CreateDeliveryStream, CreateCrawler...). On the emulated targets the pipe, the delivery stream
and the crawler are handed to the local runners, which read these same parameters: local and
cloud cannot drift. Values only known after an earlier step (the table's stream ARN) are `Ref`s.

What only the `aws` target has (docs/decisions.md section 1):
- log groups with a retention for the Lambda's, Firehose's and the pipe's errors;
- the Glue table, declared from the row contract (lake/glue_schema.py): Firehose's Parquet
  conversion reads its schema, so it must exist before the first delivery
  (https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html);
- a crawler that targets that table (catalog target, schema changes only logged, partitions
  inherit the table's schema), optionally on a schedule, or no crawler at all when Athena
  partition projection is chosen
  (https://docs.aws.amazon.com/glue/latest/dg/crawler-schema-changes-prevent.html);
- SSE-KMS with a customer key instead of SSE-S3 when one is configured.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bootstrap.iam import (
    Arns,
    log_groups,
    managed_log_groups,
    pipe_dead_letter_queue_name,
    role_documents,
    role_names,
    tls_only_bucket_policy,
)
from common.config import Settings
from common.errors import ConfigError
from lake.glue_schema import table_input

LOCAL_RUNNERS = {"pipe": "pipe runner", "delivery_stream": "firehose runner", "glue_crawler": "crawler"}
MANAGED_BY = "sales-orders-cdc-bootstrap"
# Creation order of the kinds; destroy walks it backwards (also for resources found by tag).
# The delivery stream comes before the pipe: Firehose reads a Kinesis source from LATEST ("Amazon Data
# Firehose starts reading data from the LATEST position of your Kinesis stream",
# https://docs.aws.amazon.com/firehose/latest/dev/writing-with-kinesis-streams.html), and the pipe replays the
# DynamoDB stream from TRIM_HORIZON at once, so whatever it put before the delivery stream is ACTIVE (apply
# waits for that, resources/tagged.py) would never reach the lake. Destroy stops the pipe first.
KIND_ORDER = (
    "s3_bucket", "dynamodb_table", "kinesis_stream", "iam_role", "log_group", "lambda_function",
    "glue_database", "glue_table", "delivery_stream", "sqs_queue", "pipe", "glue_crawler", "athena_workgroup",
)
FIREHOSE_LOG_STREAM = "DestinationDelivery"
PIPE_DLQ_RETENTION_S = 14 * 24 * 3600  # SQS's maximum
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_SCHEDULE = re.compile(r"^cron\(\S+( \S+){5}\)$")


@dataclass(frozen=True)
class Ref:
    """A value produced by an earlier resource (e.g. the DynamoDB stream ARN), resolved at apply."""

    key: str

    def __str__(self) -> str:
        return f"<{self.key}: known after apply>"


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    params: dict[str, Any] = field(hash=False)
    local_runner: str | None = None  # set on emulated targets for the runner-served kinds

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class CloudOptions:
    """Choices that exist only on the `aws` target.

    Read from Settings fields of the same names when Settings carries them (KMS_KEY_ARN,
    CRAWLER_SCHEDULE, PARTITION_PROJECTION); the defaults are SSE-S3, a crawler run on
    demand, and partitions registered by that crawler.
    """

    kms_key_arn: str = ""  # SSE-KMS with this customer key on both buckets, Firehose and Athena
    crawler_schedule: str = ""  # e.g. "cron(15 * * * ? *)"; empty: the crawler runs on demand
    partition_projection: bool = False  # Athena computes partitions from the layout; no crawler

    @classmethod
    def of(cls, settings: Settings) -> CloudOptions:
        return cls(
            kms_key_arn=str(getattr(settings, "kms_key_arn", "") or ""),
            crawler_schedule=str(getattr(settings, "crawler_schedule", "") or ""),
            partition_projection=bool(getattr(settings, "partition_projection", False)),
        )

    def validate(self) -> CloudOptions:
        if self.kms_key_arn and not _KMS_KEY_ARN.match(self.kms_key_arn):
            raise ConfigError(
                f"KMS_KEY_ARN={self.kms_key_arn!r} is not a KMS key ARN; use arn:aws:kms:REGION:ACCOUNT:key/ID"
            )
        if self.crawler_schedule and not _SCHEDULE.match(self.crawler_schedule):
            raise ConfigError(
                f"CRAWLER_SCHEDULE={self.crawler_schedule!r} is not a Glue cron expression; "
                "use e.g. 'cron(15 * * * ? *)' or leave it empty"
            )
        if self.crawler_schedule and self.partition_projection:
            raise ConfigError("CRAWLER_SCHEDULE is set but PARTITION_PROJECTION needs no crawler; unset one")
        return self


def tags(settings: Settings) -> dict[str, str]:
    """Every resource carries these; `destroy` on aws finds what it created by them."""
    return {"project": settings.project, "managed-by": MANAGED_BY}


def owned(found: dict[str, str] | None, settings: Settings) -> bool:
    """True when a live resource's tags say this bootstrap created it for this project."""
    return bool(found) and all(found.get(k) == v for k, v in tags(settings).items())


def resolve(value: Any, facts: dict[str, Any]) -> Any:
    """Replace every Ref inside a nested request with its value from `facts`."""
    if isinstance(value, Ref):
        return facts[value.key]
    if isinstance(value, dict):
        return {k: resolve(v, facts) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, facts) for v in value]
    return value


def lake_data_format(settings: Settings) -> str:
    """Glue's name of the lake format: Parquet, or JSON lines (gzip)."""
    return "parquet" if settings.output_format == "parquet" else "json"


def desired_resources(settings: Settings, account: str, options: CloudOptions | None = None) -> list[Resource]:
    """The whole pipeline, in creation order (destroy walks it backwards)."""
    local = settings.emulated
    options = CloudOptions() if local else (options or CloudOptions.of(settings)).validate()
    arns = Arns.build(settings, account)
    lake = settings.lake_bucket_for(account)
    results = settings.results_bucket_for(account)
    roles = role_names(settings)
    if options.partition_projection:
        roles.pop("glue")  # no crawler, so no crawler role
    docs = role_documents(arns, lake, options.kms_key_arn)
    t = tags(settings)

    resources = [
        _bucket(lake, arns, t, versioned=True, kms_key_arn=options.kms_key_arn,
                lifecycle=lake_lifecycle(settings.lake_noncurrent_days)),
        _bucket(results, arns, t, versioned=False, kms_key_arn=options.kms_key_arn,
                lifecycle=results_lifecycle(settings.results_expiration_days)),
        Resource("dynamodb_table", settings.table_name, _table(settings, t)),
        Resource("kinesis_stream", settings.stream_name, _kinesis(settings, t)),
    ]
    for service, role in roles.items():
        trust, policy = docs[service]
        resources.append(
            Resource(
                "iam_role",
                role,
                {
                    "RoleName": role,
                    "AssumeRolePolicyDocument": trust,
                    "PolicyName": f"{role}-permissions",
                    "PolicyDocument": policy,
                    "Tags": t,
                },
            )
        )
    if not local:
        for service, group in managed_log_groups(settings).items():
            streams = [FIREHOSE_LOG_STREAM] if service == "firehose" else []
            resources.append(
                Resource("log_group", group, {"logGroupName": group, "retentionInDays": settings.log_retention_days,
                                              "logStreams": streams, "tags": t})
            )
    resources += [
        Resource("lambda_function", settings.lambda_name, _lambda(settings, arns, roles, t)),
        Resource("glue_database", settings.glue_database, _database(settings, t)),
    ]
    # The table Firehose's conversion reads, on every target: locally too, so the local crawler and the
    # firehose runner see the very table the aws target declares (and a column a user adds travels).
    resources.append(Resource("glue_table", settings.glue_table, _glue_table(settings, lake, options, t)))
    # The delivery stream before the pipe (see KIND_ORDER). The pipe's dead-letter queue, on every target:
    # CreatePipe names it on aws; the emulator serves SQS, so creating it there too keeps the plan the same
    # everywhere (the local pipe runner writes its dead letters to S3 instead, runners/pipe.py).
    resources += [
        Resource("delivery_stream", settings.delivery_stream,
                 _firehose(settings, arns, roles, lake, t, options.kms_key_arn),
                 LOCAL_RUNNERS["delivery_stream"] if local else None),
        Resource("sqs_queue", pipe_dead_letter_queue_name(settings), pipe_dead_letter_queue(settings, t)),
        Resource("pipe", settings.pipe_name, _pipe(settings, arns, roles, t),
                 LOCAL_RUNNERS["pipe"] if local else None),
    ]
    if not options.partition_projection:  # the same catalog-target request everywhere; served locally
        resources.append(Resource("glue_crawler", settings.crawler_name,
                                  _catalog_crawler(settings, arns, roles, options, t),
                                  LOCAL_RUNNERS["glue_crawler"] if local else None))
    resources.append(Resource("athena_workgroup", settings.workgroup,
                              _workgroup(settings, results, t, options.kms_key_arn)))
    return resources


def lake_lifecycle(noncurrent_days: int) -> list[dict[str, Any]]:
    """The lake is versioned, so every replaced or deleted object (compaction's inputs) lives on as
    a noncurrent version: keep those long enough to recover from a bad rewrite, then expire them,
    with the delete markers left behind and any abandoned multipart upload.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-configuration-examples.html
    """
    return [{"ID": "expire-replaced-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
             "Expiration": {"ExpiredObjectDeleteMarker": True},
             "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]


def results_lifecycle(days: int) -> list[dict[str, Any]]:
    """Athena writes a result file per query and never deletes it."""
    return [{"ID": "expire-query-results", "Status": "Enabled", "Filter": {"Prefix": ""},
             "Expiration": {"Days": days},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]


def _bucket(name: str, arns: Arns, t: dict[str, str], versioned: bool, kms_key_arn: str = "",
            lifecycle: list[dict[str, Any]] | None = None) -> Resource:
    encryption = ({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_arn} if kms_key_arn
                  else {"SSEAlgorithm": "AES256"})
    return Resource(
        "s3_bucket",
        name,
        {
            "Bucket": name,
            "Region": arns.region,
            "PublicAccessBlock": {
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
            "Encryption": encryption,
            "BucketKeyEnabled": bool(kms_key_arn),  # S3 Bucket Keys cut KMS requests (and cost)
            "Versioning": "Enabled" if versioned else "Suspended",
            "Lifecycle": lifecycle or [],
            "Policy": tls_only_bucket_policy(arns, name),
            "Tags": t,
        },
    )


def _table(settings: Settings, t: dict[str, str]) -> dict[str, Any]:
    return {
        "TableName": settings.table_name,
        "AttributeDefinitions": [{"AttributeName": "order_id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "order_id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "SSESpecification": {"Enabled": True},
        "PointInTimeRecovery": True,
        "Tags": t,
    }


def _kinesis(settings: Settings, t: dict[str, str]) -> dict[str, Any]:
    return {
        "StreamName": settings.stream_name,
        "ShardCount": settings.shard_count,
        "StreamModeDetails": {"StreamMode": "PROVISIONED"},
        "Encryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
        "Tags": t,
    }


def _lambda(settings: Settings, arns: Arns, roles: dict[str, str], t: dict[str, str]) -> dict[str, Any]:
    return {
        "FunctionName": settings.lambda_name,
        "Runtime": "python3.12",
        "Handler": "handler.handler",
        "Role": arns.role(roles["lambda"]),
        "Timeout": settings.lambda_timeout_s,
        "MemorySize": settings.lambda_memory_mb,
        "Architectures": ["arm64"],
        "Tags": t,
    }


def _database(settings: Settings, t: dict[str, str]) -> dict[str, Any]:
    return {
        "Name": settings.glue_database,
        "DatabaseInput": {"Name": settings.glue_database, "Description": "sales-orders CDC lake"},
        "Tags": t,
    }


def _glue_table(settings: Settings, lake: str, options: CloudOptions, t: dict[str, str]) -> dict[str, Any]:
    """CreateTable for the lake's change log; Glue tables take no tags, so ours go in its parameters."""
    location = f"s3://{lake}/{settings.lake_prefix}"
    return {
        "DatabaseName": settings.glue_database,
        "TableInput": table_input(settings.glue_table, location, lake_data_format(settings),
                                  projection=options.partition_projection, extra_parameters=t),
        "Tags": t,
    }


def _pipe(settings: Settings, arns: Arns, roles: dict[str, str], t: dict[str, str]) -> dict[str, Any]:
    """CreatePipe: DynamoDB stream -> Kinesis, one order's changes keep their order (same key).

    Retries are bounded and failures have a dead-letter queue: with AWS's defaults (-1, -1) one record
    Kinesis refuses for good (over 1 MiB with both images, a partition key over 256 characters)
    holds its shard for the stream's 24 h retention and is then lost. Instead the pipe retries a
    failing record (AUTOMATIC_BISECT isolates it) PIPE_MAX_RETRY_ATTEMPTS times, or until it is
    PIPE_MAX_RECORD_AGE_S old (both settings, common/config.py), then sends it to the SQS queue of
    DeadLetterConfig (for a stream source: an SQS queue or SNS topic) and moves on. The dead letter
    points at the record in the stream; `make redrive` must read it back within the retention. Errors
    are logged at ERROR to the pipe's own log group. Throttling and other internal errors are retried
    without limit.
    https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_PipeSourceDynamoDBStreamParameters.html
    https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_DeadLetterConfig.html
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-error-troubleshooting.html
    https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_PipeLogConfigurationParameters.html
    The local pipe runner reads the same request (runners/pipe.py says how its dead letters differ).
    """
    return {
        "Name": settings.pipe_name,
        "RoleArn": arns.role(roles["pipes"]),
        "Source": Ref("table_stream_arn"),
        "SourceParameters": {
            "DynamoDBStreamParameters": {
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": settings.pipe_batch_size,
                "MaximumBatchingWindowInSeconds": settings.pipe_batching_window_s,
                "MaximumRetryAttempts": settings.pipe_max_retry_attempts,
                "MaximumRecordAgeInSeconds": settings.pipe_max_record_age_s,
                "OnPartialBatchItemFailure": "AUTOMATIC_BISECT",
                "DeadLetterConfig": {"Arn": arns.pipe_dead_letter_queue},
            }
        },
        "Target": arns.kinesis_stream,
        "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}},
        "LogConfiguration": {
            "Level": "ERROR",
            "CloudwatchLogsLogDestination": {"LogGroupArn": arns.log_group(log_groups(settings)["pipes"])},
        },
        "DesiredState": "RUNNING",
        "Tags": t,
    }


def pipe_dead_letter_queue(settings: Settings, t: dict[str, str]) -> dict[str, Any]:
    """CreateQueue for the pipe's dead letters: a standard queue (Pipes cannot use FIFO ones), SSE-SQS,
    messages kept 14 days. Planned before the pipe (kind `sqs_queue`, resources/sqs.py); the
    attributes named here are the ones the plan keeps as asked.
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
    """
    return {
        "QueueName": pipe_dead_letter_queue_name(settings),
        "Attributes": {"MessageRetentionPeriod": str(PIPE_DLQ_RETENTION_S), "SqsManagedSseEnabled": "true"},
        "tags": t,
    }


def update_pipe_request(create: dict[str, Any]) -> dict[str, Any]:
    """UpdatePipe from a CreatePipe request: the source and its starting position cannot change."""
    request = {k: v for k, v in create.items() if k not in ("Tags", "Source")}
    stream = dict(request["SourceParameters"]["DynamoDBStreamParameters"])
    stream.pop("StartingPosition", None)
    request["SourceParameters"] = {"DynamoDBStreamParameters": stream}
    return request


def lake_prefix_expression(settings: Settings) -> str:
    """Firehose's dynamic-partitioning prefix, evaluated per record from the Lambda's partitionKeys."""
    return (
        f"{settings.lake_prefix}year=!{{partitionKeyFromLambda:year}}/"
        "month=!{partitionKeyFromLambda:month}/day=!{partitionKeyFromLambda:day}/"
    )


def error_prefix_expression(settings: Settings) -> str:
    return (
        f"{settings.error_prefix}!{{firehose:error-output-type}}/"
        "!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/"
    )


def _firehose(
    settings: Settings, arns: Arns, roles: dict[str, str], lake: str, t: dict[str, str], kms_key_arn: str = ""
) -> dict[str, Any]:
    """CreateDeliveryStream: Kinesis source, Lambda processor, dynamic partitioning by event day.

    https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html
    https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html
    """
    role = arns.role(roles["firehose"])
    parquet = settings.output_format == "parquet"
    processors: list[dict[str, Any]] = [
        {
            "Type": "Lambda",
            "Parameters": [
                {"ParameterName": "LambdaArn", "ParameterValue": arns.lambda_function},
                {"ParameterName": "NumberOfRetries", "ParameterValue": str(settings.lambda_retries)},
                {"ParameterName": "BufferSizeInMBs", "ParameterValue": f"{settings.processor_buffer_mb:g}"},
                {"ParameterName": "BufferIntervalInSeconds", "ParameterValue": str(settings.invoke_interval_s)},
            ],
        }
    ]
    if not parquet:
        processors.append(
            {"Type": "AppendDelimiterToRecord",
             "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": "\\n"}]}
        )
    destination: dict[str, Any] = {
        "RoleARN": role,
        "BucketARN": arns.bucket(lake),
        "Prefix": lake_prefix_expression(settings),
        "ErrorOutputPrefix": error_prefix_expression(settings),
        "BufferingHints": {"SizeInMBs": settings.buffer_size_mb,
                           "IntervalInSeconds": settings.flush_interval_s},
        "CompressionFormat": "UNCOMPRESSED" if parquet else "GZIP",
        "ProcessingConfiguration": {"Enabled": True, "Processors": processors},
        "DynamicPartitioningConfiguration": {"Enabled": True, "RetryOptions": {"DurationInSeconds": 300}},
        "CloudWatchLoggingOptions": {
            "Enabled": True,
            "LogGroupName": log_groups(settings)["firehose"],
            "LogStreamName": FIREHOSE_LOG_STREAM,
        },
    }
    if kms_key_arn:
        destination["EncryptionConfiguration"] = {"KMSEncryptionConfig": {"AWSKMSKeyARN": kms_key_arn}}
    if parquet:
        destination["FileExtension"] = ".parquet"  # the lake contract's object names end in .parquet
        destination["DataFormatConversionConfiguration"] = {
            "Enabled": True,
            # OpenX parses the transform's 'YYYY-MM-DDTHH:MM:SS.sssZ' timestamps as they are.
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
            "SchemaConfiguration": {
                "RoleARN": role,
                "DatabaseName": settings.glue_database,
                "TableName": settings.glue_table,
                "Region": settings.region,
                "VersionId": "LATEST",
            },
        }
    return {
        "DeliveryStreamName": settings.delivery_stream,
        "DeliveryStreamType": "KinesisStreamAsSource",
        "KinesisStreamSourceConfiguration": {"KinesisStreamARN": arns.kinesis_stream, "RoleARN": role},
        "ExtendedS3DestinationConfiguration": destination,
        "Tags": [{"Key": k, "Value": v} for k, v in t.items()],
    }


def _crawler(
    settings: Settings, arns: Arns, roles: dict[str, str], lake: str, t: dict[str, str]
) -> dict[str, Any]:
    """The emulated targets' crawler request (read by the local crawler): an S3 target."""
    return {
        "Name": settings.crawler_name,
        "Role": arns.role(roles["glue"]),
        "DatabaseName": settings.glue_database,
        "Targets": {"S3Targets": [{"Path": f"s3://{lake}/{settings.lake_prefix}"}]},
        "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},  # NEW_FOLDERS_ONLY forbids UPDATE_IN_DATABASE
        "Configuration": json.dumps(
            {"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
             "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}}},
            sort_keys=True,
        ),
        "Tags": t,
    }


def _catalog_crawler(
    settings: Settings, arns: Arns, roles: dict[str, str], options: CloudOptions, t: dict[str, str]
) -> dict[str, Any]:
    """The aws crawler: registers new day partitions of the bootstrap's table, never its schema.

    An S3-target crawler would name the table after the folder (`orders`) and could retype
    columns that Firehose's conversion relies on; a catalog target crawls the table's own
    location, and LOG + InheritFromTable keep the declared schema.
    https://docs.aws.amazon.com/glue/latest/dg/crawler-schema-changes-prevent.html
    """
    request: dict[str, Any] = {
        "Name": settings.crawler_name,
        "Role": arns.role(roles["glue"]),
        "Targets": {"CatalogTargets": [{"DatabaseName": settings.glue_database, "Tables": [settings.glue_table]}]},
        "SchemaChangePolicy": {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
        "Configuration": json.dumps(
            {"Version": 1.0, "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}}},
            sort_keys=True,
        ),
        "Tags": t,
    }
    if options.crawler_schedule:
        request["Schedule"] = options.crawler_schedule
    return request


def _workgroup(settings: Settings, results: str, t: dict[str, str], kms_key_arn: str = "") -> dict[str, Any]:
    encryption = ({"EncryptionOption": "SSE_KMS", "KmsKey": kms_key_arn} if kms_key_arn
                  else {"EncryptionOption": "SSE_S3"})
    return {
        "Name": settings.workgroup,
        "Configuration": {
            "ResultConfiguration": {
                "OutputLocation": f"s3://{results}/athena-results/",
                "EncryptionConfiguration": encryption,
            },
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
            "BytesScannedCutoffPerQuery": settings.athena_scan_limit_gb * 1_000_000_000,
        },
        "Tags": [{"Key": k, "Value": v} for k, v in t.items()],
    }
