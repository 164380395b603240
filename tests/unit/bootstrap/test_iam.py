"""IAM documents: each role gets exactly the actions it needs, on exactly the ARNs it needs."""

from __future__ import annotations

import pytest

from bootstrap.iam import (
    Arns,
    aws_partition,
    log_groups,
    managed_log_groups,
    role_documents,
    tls_only_bucket_policy,
    trust_policy,
)
from common.config import load_settings

ACCOUNT = "123456789012"
REGION = "eu-west-1"


@pytest.fixture()
def docs() -> dict:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION})
    return role_documents(Arns.build(settings, ACCOUNT), "lake-bucket")


def statements(doc: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in doc["Statement"]}


def test_no_allow_statement_uses_a_wildcard_action_or_resource(docs: dict) -> None:
    for service, (_, policy) in docs.items():
        for st in policy["Statement"]:
            assert st["Effect"] == "Allow"
            assert all("*" not in a for a in st["Action"]), (service, st["Action"])
            for resource in st["Resource"]:
                # Only CloudWatch log streams (`log-group:NAME:*`) and object keys (`bucket/*`) end in '*'.
                assert resource != "*", (service, resource)
                assert "*" not in resource[:-1], (service, resource)


def test_pipes_role_reads_the_table_stream_writes_the_kinesis_stream_its_dead_letters_and_its_logs(
        docs: dict) -> None:
    st = statements(docs["pipes"][1])
    assert st["ReadTableStream"]["Action"] == [
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
    assert st["ReadTableStream"]["Resource"] == [
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sales_orders/stream/*"]
    assert st["WriteKinesis"] == {
        "Sid": "WriteKinesis", "Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
        "Resource": [f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sales-orders-cdc"]}
    assert st["SendDeadLetters"] == {  # eb-pipes-permissions.html: sqs:SendMessage on the dead-letter queue
        "Sid": "SendDeadLetters", "Effect": "Allow", "Action": ["sqs:SendMessage"],
        "Resource": [f"arn:aws:sqs:{REGION}:{ACCOUNT}:sales-orders-pipe-dlq"]}
    assert st["WriteOwnLogs"] == {
        "Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/pipes/sales-orders-pipe:*"]}
    assert set(st) == {"ReadTableStream", "WriteKinesis", "SendDeadLetters", "WriteOwnLogs"}


def test_firehose_role_is_scoped_to_stream_function_bucket_table_and_its_log_group(docs: dict) -> None:
    st = statements(docs["firehose"][1])
    assert set(st) == {"ReadKinesis", "InvokeTransform", "WriteLake", "ReadSchemaForConversion", "WriteOwnLogs"}
    assert st["ReadKinesis"]["Resource"] == [f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sales-orders-cdc"]
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sales-orders-transform"
    assert st["InvokeTransform"]["Resource"] == [fn, f"{fn}:*"]
    assert st["InvokeTransform"]["Action"] == ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"]
    assert st["WriteLake"]["Resource"] == ["arn:aws:s3:::lake-bucket", "arn:aws:s3:::lake-bucket/*"]
    assert "s3:DeleteObject" not in st["WriteLake"]["Action"]
    assert st["ReadSchemaForConversion"]["Action"] == ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]
    assert st["WriteOwnLogs"]["Resource"] == [
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/kinesisfirehose/sales-orders-firehose:*"]


def test_lambda_role_only_writes_its_own_logs(docs: dict) -> None:
    (only,) = docs["lambda"][1]["Statement"]
    assert only["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert only["Resource"] == [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/sales-orders-transform:*"]


def test_glue_role_reads_only_the_lake_prefix(docs: dict) -> None:
    st = statements(docs["glue"][1])
    assert st["ReadLake"] == {"Sid": "ReadLake", "Effect": "Allow", "Action": ["s3:GetObject"],
                              "Resource": ["arn:aws:s3:::lake-bucket/orders/*"]}
    assert st["ListLake"]["Resource"] == ["arn:aws:s3:::lake-bucket"]
    assert all(a.startswith("glue:") for a in st["MaintainCatalog"]["Action"])
    assert "glue:DeleteTable" not in st["MaintainCatalog"]["Action"]


@pytest.mark.parametrize("service", ["pipes", "firehose", "glue", "lambda"])
def test_trust_policies_name_one_service_and_guard_the_account(service: str) -> None:
    settings = load_settings(env={"TARGET": "aws"})
    doc = trust_policy(service, Arns.build(settings, ACCOUNT))
    (st,) = doc["Statement"]
    assert st["Principal"] == {"Service": f"{service}.amazonaws.com"}
    assert st["Action"] == "sts:AssumeRole"
    if service == "pipes":
        assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    if service == "firehose":
        assert st["Condition"] == {"StringEquals": {"sts:ExternalId": ACCOUNT}}
    if service in ("glue", "lambda"):
        # No AWS page says these services send aws:SourceAccount when they assume the role, and a condition
        # on a key the request lacks denies it: Glue's CreateCrawler would fail "unable to assume role".
        assert "Condition" not in st


def test_tls_only_bucket_policy_denies_plain_http() -> None:
    settings = load_settings(env={"TARGET": "aws"})
    (st,) = tls_only_bucket_policy(Arns.build(settings, ACCOUNT), "b")["Statement"]
    assert st["Effect"] == "Deny"
    assert st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert st["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]


def test_aws_partitions_follow_the_region() -> None:
    assert [aws_partition(r) for r in ("us-east-1", "cn-north-1", "us-gov-west-1")] == ["aws", "aws-cn", "aws-us-gov"]


def test_the_bootstrap_creates_the_pipe_log_group_but_not_the_shared_crawler_one() -> None:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION})
    assert managed_log_groups(settings) == {
        "lambda": "/aws/lambda/sales-orders-transform", "firehose": "/aws/kinesisfirehose/sales-orders-firehose",
        "pipes": "/aws/vendedlogs/pipes/sales-orders-pipe"}  # CreatePipe's LogConfiguration names it
    assert log_groups(settings)["glue"] not in managed_log_groups(settings).values()  # shared by every crawler
    assert Arns.build(settings, ACCOUNT).of("sqs_queue", "q") == f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"
