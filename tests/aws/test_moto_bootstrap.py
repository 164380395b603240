"""The aws target against moto (server mode, 127.0.0.1) as AWS's control plane: apply, re-apply, destroy.

moto 5.2.5 serves every API the bootstrap calls except Athena's UpdateWorkGroup (tested with
botocore's Stubber in tests/unit/bootstrap/resources/test_requests.py); it does not run the data plane
(the Pipe moves nothing, Firehose delivers nothing), so these tests check the control plane:
what exists afterwards, with which settings, and what destroy leaves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from bootstrap.plan import CREATE, NOOP, apply, build_plan, destroy
from bootstrap.spec import KIND_ORDER
from common.aws import Clients
from common.config import Settings
from common.console import Console
from lake.glue_schema import glue_columns, partition_columns

from .conftest import ACCOUNT, REGION

LAKE = f"sales-orders-lake-{ACCOUNT}"
RESULTS = f"sales-orders-athena-{ACCOUNT}"
TAGS = {"project": "sales-orders-cdc", "managed-by": "sales-orders-cdc-bootstrap"}
EXPECTED_KEYS = [
    f"s3_bucket:{LAKE}", f"s3_bucket:{RESULTS}", "dynamodb_table:sales_orders", "kinesis_stream:sales-orders-cdc",
    "iam_role:sales-orders-cdc-lambda", "iam_role:sales-orders-cdc-pipes", "iam_role:sales-orders-cdc-firehose",
    "iam_role:sales-orders-cdc-glue", "log_group:/aws/lambda/sales-orders-transform",
    "log_group:/aws/kinesisfirehose/sales-orders-firehose", "log_group:/aws/vendedlogs/pipes/sales-orders-pipe",
    "lambda_function:sales-orders-transform", "glue_database:sales_orders_db", "glue_table:sales_orders_cdc",
    "delivery_stream:sales-orders-firehose",  # ACTIVE before the pipe puts anything: Firehose reads from LATEST
    "sqs_queue:sales-orders-pipe-dlq", "pipe:sales-orders-pipe",
    "glue_crawler:sales-orders-crawler", "athena_workgroup:sales-orders-wg",
]


@dataclass(frozen=True)
class OptionSettings(Settings):
    """Settings as they will be once they carry the aws-only options (CloudOptions.of reads these)."""

    kms_key_arn: str = ""
    crawler_schedule: str = ""
    partition_projection: bool = False


def with_options(settings: Settings, **options: object) -> OptionSettings:
    return OptionSettings(**{**{f.name: getattr(settings, f.name) for f in fields(Settings)}, **options})


def test_apply_reapply_destroy(aws_clients: Clients, aws_settings: Settings) -> None:
    console = Console(capture=True)
    plan = build_plan(aws_clients, aws_settings)
    assert (plan.target, plan.region, plan.account) == ("aws", REGION, ACCOUNT)
    assert [c.resource.key for c in plan.changes] == EXPECTED_KEYS
    assert {c.action for c in plan.changes} == {CREATE}
    assert plan.notes == ()

    apply(aws_clients, plan, console)

    s3 = aws_clients.s3
    for bucket in (LAKE, RESULTS):
        assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"] == [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}]
        (deny,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
        assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
        assert {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]} == TAGS
    assert s3.get_bucket_versioning(Bucket=LAKE)["Status"] == "Enabled"

    backups = aws_clients.dynamodb.describe_continuous_backups(TableName="sales_orders")
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == (
        "ENABLED")
    table = aws_clients.dynamodb.describe_table(TableName="sales_orders")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}

    stream = aws_clients.kinesis.describe_stream_summary(StreamName="sales-orders-cdc")["StreamDescriptionSummary"]
    assert (stream["EncryptionType"], stream["KeyId"]) == ("KMS", "alias/aws/kinesis")

    groups = {g["logGroupName"]: g for g in aws_clients.logs.describe_log_groups()["logGroups"]}
    assert {name: g["retentionInDays"] for name, g in groups.items()} == {
        "/aws/lambda/sales-orders-transform": 14, "/aws/kinesisfirehose/sales-orders-firehose": 14,
        "/aws/vendedlogs/pipes/sales-orders-pipe": 14}
    streams = aws_clients.logs.describe_log_streams(logGroupName="/aws/kinesisfirehose/sales-orders-firehose")
    assert [s["logStreamName"] for s in streams["logStreams"]] == ["DestinationDelivery"]

    sqs = aws_clients.sqs
    dlq_url = sqs.get_queue_url(QueueName="sales-orders-pipe-dlq")["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert (dlq["MessageRetentionPeriod"], dlq["SqsManagedSseEnabled"]) == ("1209600", "true")
    assert "FifoQueue" not in dlq
    assert sqs.list_queue_tags(QueueUrl=dlq_url)["Tags"] == TAGS

    pipe = aws_clients.pipes.describe_pipe(Name="sales-orders-pipe")
    assert pipe["Source"] == table["LatestStreamArn"]
    assert pipe["CurrentState"] == "RUNNING"
    assert pipe["TargetParameters"] == {"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}}
    # What the pipe names exists: its dead-letter queue and its log group.
    assert pipe["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"] == {"Arn": dlq["QueueArn"]}
    log_arn = pipe["LogConfiguration"]["CloudwatchLogsLogDestination"]["LogGroupArn"]
    assert log_arn.removesuffix(":*") == groups["/aws/vendedlogs/pipes/sales-orders-pipe"]["arn"].removesuffix(":*")

    glue_table = aws_clients.glue.get_table(DatabaseName="sales_orders_db", Name="sales_orders_cdc")["Table"]
    assert glue_table["StorageDescriptor"]["Columns"] == glue_columns("parquet")
    assert glue_table["StorageDescriptor"]["Location"] == f"s3://{LAKE}/orders/"
    assert glue_table["PartitionKeys"] == partition_columns()
    crawler = aws_clients.glue.get_crawler(Name="sales-orders-crawler")["Crawler"]
    assert crawler["Targets"]["CatalogTargets"] == [{"DatabaseName": "sales_orders_db", "Tables": ["sales_orders_cdc"]}]
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}

    wg = aws_clients.athena.get_work_group(WorkGroup="sales-orders-wg")["WorkGroup"]["Configuration"]
    assert wg["EnforceWorkGroupConfiguration"] is True
    assert wg["BytesScannedCutoffPerQuery"] == 10 * 10**9  # ATHENA_SCAN_LIMIT_GB
    lake_rules = aws_clients.s3.get_bucket_lifecycle_configuration(Bucket=LAKE)["Rules"]
    assert [(r["ID"], r["NoncurrentVersionExpiration"]) for r in lake_rules] == [
        ("expire-replaced-versions", {"NoncurrentDays": 7})]
    results_rules = aws_clients.s3.get_bucket_lifecycle_configuration(Bucket=RESULTS)["Rules"]
    assert [(r["ID"], r["Expiration"]) for r in results_rules] == [("expire-query-results", {"Days": 30})]
    assert wg["ResultConfiguration"]["OutputLocation"] == f"s3://{RESULTS}/athena-results/"

    again = build_plan(aws_clients, aws_settings)
    assert [(c.resource.key, c.fields) for c in again.pending] == []
    assert {c.action for c in again.changes} == {NOOP}

    # A queue attribute changed by hand is set back, and only that one.
    sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"MessageRetentionPeriod": "345600"})
    drift = build_plan(aws_clients, aws_settings)
    assert [(c.resource.key, c.fields) for c in drift.pending] == [
        ("sqs_queue:sales-orders-pipe-dlq", ("MessageRetentionPeriod",))]
    apply(aws_clients, drift, console)
    assert "> update sqs_queue sales-orders-pipe-dlq: MessageRetentionPeriod" in console.lines
    assert build_plan(aws_clients, aws_settings).pending == ()

    assert destroy(aws_clients, aws_settings, console, empty_buckets=True) == len(EXPECTED_KEYS)
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert {c.action for c in build_plan(aws_clients, aws_settings).changes} == {CREATE}
    assert not aws_settings.runner_dir.exists()  # no local runner spec was ever written


def test_options_kms_projection_and_json_lines(aws_clients: Clients, aws_settings: Settings) -> None:
    key = aws_clients.kms.create_key(Description="lake key")["KeyMetadata"]["Arn"]
    settings = with_options(aws_settings, kms_key_arn=key, partition_projection=True, output_format="jsonl")
    clients = Clients(settings)
    plan = build_plan(clients, settings)
    keys = [c.resource.key for c in plan.changes]
    assert "glue_crawler:sales-orders-crawler" not in keys and "iam_role:sales-orders-cdc-glue" not in keys
    apply(clients, plan, Console(capture=True))

    rule = clients.s3.get_bucket_encryption(Bucket=LAKE)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule == {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
                    "BucketKeyEnabled": True}
    table = clients.glue.get_table(DatabaseName="sales_orders_db", Name="sales_orders_cdc")["Table"]
    assert table["Parameters"]["projection.enabled"] == "true"
    assert table["Parameters"]["storage.location.template"] == (
        f"s3://{LAKE}/orders/year=${{year}}/month=${{month}}/day=${{day}}/")
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    wg = clients.athena.get_work_group(WorkGroup="sales-orders-wg")["WorkGroup"]["Configuration"]
    assert wg["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS", "KmsKey": key}

    assert build_plan(clients, settings).pending == ()
    assert destroy(clients, settings, Console(capture=True), empty_buckets=True) == len(keys)


def test_destroy_deletes_only_what_carries_the_project_tags(aws_clients: Clients, aws_settings: Settings) -> None:
    apply(aws_clients, build_plan(aws_clients, aws_settings), Console(capture=True))
    logs = aws_clients.logs
    logs.create_log_group(logGroupName="/aws/lambda/old-transform", tags=TAGS)  # left by an earlier LAMBDA_NAME
    logs.create_log_group(logGroupName="/aws/lambda/someone-else", tags={"project": "other"})
    sqs = aws_clients.sqs
    sqs.create_queue(QueueName="old-pipe-dlq", tags=TAGS)  # left by an earlier PIPE_NAME
    sqs.create_queue(QueueName="someone-elses-queue", tags={"project": "other"})
    aws_clients.kinesis.remove_tags_from_stream(StreamName="sales-orders-cdc", TagKeys=["project"])

    console = Console(capture=True)
    removed = destroy(aws_clients, aws_settings, console, empty_buckets=True)

    assert removed == len(EXPECTED_KEYS) + 1  # 19 planned - the untagged stream + the 2 orphans found by tag
    assert "> delete log_group /aws/lambda/old-transform (found by its tags)" in console.lines
    assert "> delete sqs_queue old-pipe-dlq (found by its tags)" in console.lines
    assert "> delete sqs_queue sales-orders-pipe-dlq" in console.lines
    assert any(line.startswith("! kinesis_stream sales-orders-cdc lacks the tags") for line in console.lines)
    left = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    assert left == {"/aws/lambda/someone-else"}
    assert [url.rsplit("/", 1)[-1] for url in sqs.list_queues()["QueueUrls"]] == ["someone-elses-queue"]
    assert aws_clients.kinesis.list_streams()["StreamNames"] == ["sales-orders-cdc"]
    order = [line.split()[2] for line in console.lines if line.startswith("> delete")]
    assert order == sorted(order, key=KIND_ORDER.index, reverse=True)


def test_a_foreign_resource_with_a_planned_name_is_reported_before_apply(
    aws_clients: Clients, aws_settings: Settings
) -> None:
    aws_clients.kinesis.create_stream(StreamName="sales-orders-cdc", ShardCount=1)
    plan = build_plan(aws_clients, aws_settings)
    assert plan.notes == (
        "kinesis_stream sales-orders-cdc already exists without the tags project=sales-orders-cdc, "
        "managed-by=sales-orders-cdc-bootstrap: this bootstrap did not create it; check the name before you confirm",)
    change = {c.resource.key: c for c in plan.changes}["kinesis_stream:sales-orders-cdc"]
    assert (change.action, change.fields) == ("update", ("Encryption",))


def test_the_delivery_stream_is_active_before_the_pipe_is_created(aws_clients: Clients, aws_settings: Settings) -> None:
    """Firehose starts reading a Kinesis source at LATEST (writing-with-kinesis-streams.html): apply creates the
    delivery stream and waits until it is ACTIVE before CreatePipe, whose pipe replays the table's stream at once."""
    calls: list[tuple[str, str]] = []

    def record(service: str) -> Any:
        def hook(model: Any, parsed: dict, **_: Any) -> None:
            status = parsed.get("DeliveryStreamDescription", {}).get("DeliveryStreamStatus", "")
            calls.append((service, f"{model.name}{':' + status if status else ''}"))
        return hook

    for service in ("firehose", "pipes"):
        aws_clients.client(service).meta.events.register(f"after-call.{service}", record(service))
    apply(aws_clients, build_plan(aws_clients, aws_settings), Console(capture=True))

    active = calls.index(("firehose", "DescribeDeliveryStream:ACTIVE"))
    assert calls.index(("firehose", "CreateDeliveryStream")) < active < calls.index(("pipes", "CreatePipe"))
