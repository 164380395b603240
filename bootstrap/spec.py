"""The desired resources of the pipeline, as one ordered list of frozen values built from Settings.

Each resource carries the very request parameters the `aws` target sends (CreatePipe,
CreateDeliveryStream, CreateCrawler...). On the emulated targets the pipe, the delivery stream
and the crawler are handed to the local runners, which read these same parameters: local and
cloud cannot drift. Values only known after an earlier step (the table's stream ARN) are `Ref`s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bootstrap.iam import Arns, log_groups, role_documents, role_names, tls_only_bucket_policy
from common.config import Settings

LOCAL_RUNNERS = {"pipe": "pipe runner", "delivery_stream": "firehose runner", "glue_crawler": "crawler"}


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


def tags(settings: Settings) -> dict[str, str]:
    """Every resource carries these; `destroy` on aws finds what it created by them."""
    return {"project": settings.project, "managed-by": "sales-orders-cdc-bootstrap"}


def resolve(value: Any, facts: dict[str, Any]) -> Any:
    """Replace every Ref inside a nested request with its value from `facts`."""
    if isinstance(value, Ref):
        return facts[value.key]
    if isinstance(value, dict):
        return {k: resolve(v, facts) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, facts) for v in value]
    return value


def desired_resources(settings: Settings, account: str) -> list[Resource]:
    """The whole pipeline, in creation order (destroy walks it backwards)."""
    arns = Arns.build(settings, account)
    lake = settings.lake_bucket_for(account)
    results = settings.results_bucket_for(account)
    roles = role_names(settings)
    docs = role_documents(arns, lake)
    t = tags(settings)
    local = settings.emulated

    resources = [
        _bucket(lake, arns, t, versioned=True),
        _bucket(results, arns, t, versioned=False),
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
        for group in log_groups(settings).values():
            resources.append(
                Resource("log_group", group, {"logGroupName": group,
                                              "retentionInDays": settings.log_retention_days, "tags": t})
            )
    resources += [
        Resource("lambda_function", settings.lambda_name, _lambda(settings, arns, roles, t)),
        Resource("glue_database", settings.glue_database, {"Name": settings.glue_database}),
        Resource("pipe", settings.pipe_name, _pipe(settings, arns, roles, t),
                 LOCAL_RUNNERS["pipe"] if local else None),
        Resource("delivery_stream", settings.delivery_stream, _firehose(settings, arns, roles, lake, t),
                 LOCAL_RUNNERS["delivery_stream"] if local else None),
        Resource("glue_crawler", settings.crawler_name, _crawler(settings, arns, roles, lake, t),
                 LOCAL_RUNNERS["glue_crawler"] if local else None),
        Resource("athena_workgroup", settings.workgroup, _workgroup(settings, results, t)),
    ]
    return resources


def _bucket(name: str, arns: Arns, t: dict[str, str], versioned: bool) -> Resource:
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
            "Encryption": {"SSEAlgorithm": "AES256"},
            "Versioning": "Enabled" if versioned else "Suspended",
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


def _pipe(settings: Settings, arns: Arns, roles: dict[str, str], t: dict[str, str]) -> dict[str, Any]:
    """CreatePipe: DynamoDB stream -> Kinesis, one order's changes keep their order (same key)."""
    return {
        "Name": settings.pipe_name,
        "RoleArn": arns.role(roles["pipes"]),
        "Source": Ref("table_stream_arn"),
        "SourceParameters": {
            "DynamoDBStreamParameters": {
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": settings.pipe_batch_size,
                "MaximumBatchingWindowInSeconds": 1,
                "MaximumRetryAttempts": 185,
                "OnPartialBatchItemFailure": "AUTOMATIC_BISECT",
            }
        },
        "Target": arns.kinesis_stream,
        "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}},
        "DesiredState": "RUNNING",
        "Tags": t,
    }


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
    settings: Settings, arns: Arns, roles: dict[str, str], lake: str, t: dict[str, str]
) -> dict[str, Any]:
    """CreateDeliveryStream: Kinesis source, Lambda processor, dynamic partitioning by event day."""
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
        "BufferingHints": {"SizeInMBs": int(settings.buffer_size_mb),
                           "IntervalInSeconds": settings.flush_interval_s},
        "CompressionFormat": "UNCOMPRESSED" if parquet else "GZIP",
        "ProcessingConfiguration": {"Enabled": True, "Processors": processors},
        "DynamicPartitioningConfiguration": {"Enabled": True, "RetryOptions": {"DurationInSeconds": 300}},
        "CloudWatchLoggingOptions": {
            "Enabled": True,
            "LogGroupName": log_groups(settings)["firehose"],
            "LogStreamName": "DestinationDelivery",
        },
    }
    if parquet:
        destination["DataFormatConversionConfiguration"] = {
            "Enabled": True,
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


def _workgroup(settings: Settings, results: str, t: dict[str, str]) -> dict[str, Any]:
    return {
        "Name": settings.workgroup,
        "Configuration": {
            "ResultConfiguration": {
                "OutputLocation": f"s3://{results}/athena-results/",
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            },
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
        },
        "Tags": [{"Key": k, "Value": v} for k, v in t.items()],
    }
