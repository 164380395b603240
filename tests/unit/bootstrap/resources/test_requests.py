"""The aws target's requests, exactly as they go on the wire (botocore Stubber, no server).

Stubber also checks each request against the service's API model, so a parameter AWS does not
know fails here before it could fail a deploy. Values are written out in full: they are the
contract with AWS (docs linked in bootstrap/spec.py and bootstrap/iam.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bootstrap.plan import CREATE, Change, Plan, apply
from bootstrap.resources import HANDLERS
from bootstrap.resources.propagation import SETTLE_SECONDS, retry_while_role_propagates, wait_for_role
from bootstrap.spec import Resource, desired_resources, resolve
from common.aws import Clients
from common.config import load_settings
from common.console import Console
from common.errors import TerminalError, TransientError

ACCOUNT = "123456789012"
REGION = "eu-west-1"
LAKE = f"sales-orders-lake-{ACCOUNT}"
RESULTS = f"sales-orders-athena-{ACCOUNT}"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sales_orders/stream/2026-01-01T00:00:00.000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/"
OLD = datetime(2020, 1, 1, tzinfo=UTC)
TAGS = {"project": "sales-orders-cdc", "managed-by": "sales-orders-cdc-bootstrap"}


def clients_for(**env: str) -> Clients:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION, **env})
    session = boto3.Session(region_name=REGION, aws_access_key_id="stub", aws_secret_access_key="stub")
    return Clients(settings, session=session)


def planned(clients: Clients, kind: str, name: str | None = None) -> Resource:
    for res in desired_resources(clients.settings, ACCOUNT):
        if res.kind == kind and (name is None or res.name == name):
            return Resource(res.kind, res.name, resolve(res.params, {"table_stream_arn": STREAM_ARN}))
    raise LookupError(kind)


@contextmanager
def stubbed(clients: Clients, *services: str) -> Iterator[dict[str, Stubber]]:
    stubs = {s: Stubber(clients.client(s)) for s in services}
    for stub in stubs.values():
        stub.activate()
    yield stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def role_response(name: str, created: datetime = OLD) -> dict:
    return {"Role": {"Path": "/", "RoleName": name, "RoleId": "AROAEXAMPLE0000000000",
                     "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
                     "CreateDate": created}}


# Dead letters to an SQS queue (a stream source takes an SQS queue or SNS topic), errors logged to the pipe's group.
PIPE_DLQ = f"arn:aws:sqs:{REGION}:{ACCOUNT}:sales-orders-pipe-dlq"
PIPE_LOGS = {"Level": "ERROR", "CloudwatchLogsLogDestination": {
    "LogGroupArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/pipes/sales-orders-pipe"}}


def test_create_pipe_request(monkeypatch: pytest.MonkeyPatch) -> None:
    clients = clients_for()
    res = planned(clients, "pipe")
    with stubbed(clients, "iam", "pipes") as stub:
        stub["iam"].add_response("get_role", role_response("sales-orders-cdc-pipes"),
                                 {"RoleName": "sales-orders-cdc-pipes"})
        stub["pipes"].add_response("create_pipe", {}, {
            "Name": "sales-orders-pipe",
            "RoleArn": f"{ROLE}sales-orders-cdc-pipes",
            "Source": STREAM_ARN,
            "SourceParameters": {"DynamoDBStreamParameters": {
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 500,
                "MaximumBatchingWindowInSeconds": 0,
                "MaximumRetryAttempts": 10,
                "MaximumRecordAgeInSeconds": 21600,
                "OnPartialBatchItemFailure": "AUTOMATIC_BISECT",
                "DeadLetterConfig": {"Arn": PIPE_DLQ},
            }},
            "Target": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sales-orders-cdc",
            "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}},
            "LogConfiguration": PIPE_LOGS,
            "DesiredState": "RUNNING",
            "Tags": {**TAGS, "spec-sha": ANY},
        })
        stub["pipes"].add_response("describe_pipe", {"CurrentState": "RUNNING"}, {"Name": "sales-orders-pipe"})
        HANDLERS["pipe"].create(clients, res)


def test_pipe_batch_size_comes_from_settings_and_update_drops_what_cannot_change() -> None:
    clients = clients_for(PIPE_BATCH_SIZE="500")
    res = planned(clients, "pipe")
    arn = f"arn:aws:pipes:{REGION}:{ACCOUNT}:pipe/sales-orders-pipe"
    with stubbed(clients, "iam", "pipes") as stub:
        stub["iam"].add_response("get_role", role_response("sales-orders-cdc-pipes"), None)
        # a pipe whose creation failed is created again instead (tests/unit/bootstrap/resources/test_tagged.py)
        stub["pipes"].add_response("describe_pipe", {"Arn": arn, "CurrentState": "RUNNING"},
                                   {"Name": "sales-orders-pipe"})
        stub["pipes"].add_response("update_pipe", {}, {
            "Name": "sales-orders-pipe",
            "RoleArn": f"{ROLE}sales-orders-cdc-pipes",
            "SourceParameters": {"DynamoDBStreamParameters": {
                "BatchSize": 500, "MaximumBatchingWindowInSeconds": 0, "MaximumRetryAttempts": 10,
                "MaximumRecordAgeInSeconds": 21600, "OnPartialBatchItemFailure": "AUTOMATIC_BISECT",
                "DeadLetterConfig": {"Arn": PIPE_DLQ}}},
            "Target": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sales-orders-cdc",
            "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}},
            "LogConfiguration": PIPE_LOGS,
            "DesiredState": "RUNNING",
        })
        stub["pipes"].add_response("describe_pipe", {"Arn": arn}, {"Name": "sales-orders-pipe"})
        stub["pipes"].add_response("tag_resource", {}, {"resourceArn": arn, "tags": {"spec-sha": ANY}})
        stub["pipes"].add_response("describe_pipe", {"CurrentState": "RUNNING"}, {"Name": "sales-orders-pipe"})
        HANDLERS["pipe"].update(clients, res, ["spec-sha"])


def test_the_local_pipe_runner_refuses_a_batch_size_createpipe_refuses_instead_of_clamping_it(tmp_path: Path) -> None:
    """CreatePipe with a Kinesis target takes at most 500 records a batch (eb-pipes-batching-concurrency.html);
    the local runner reads the same request, so it refuses 501 as AWS would, and runs 500 as asked."""
    from runners.pipe import PipeRunner

    clients = Clients(load_settings(env={"PORT": "9"}))  # nothing is called
    request = resolve(planned(clients_for(), "pipe").params, {})
    stream = request["SourceParameters"]["DynamoDBStreamParameters"]
    assert PipeRunner(clients, request, tmp_path / "ckpt.json").batch_size == 500
    stream["BatchSize"] = 501
    with pytest.raises(TerminalError, match="the pipe's BatchSize is 501; CreatePipe with a Kinesis target takes "
                                            "at most 500"):
        PipeRunner(clients, request, tmp_path / "ckpt.json")


DLQ_NAME = "sales-orders-pipe-dlq"
DLQ_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{DLQ_NAME}"


def test_create_queue_request_for_the_pipe_dead_letters() -> None:
    clients = clients_for()
    res = planned(clients, "sqs_queue")
    with stubbed(clients, "sqs") as stub:
        stub["sqs"].add_response("create_queue", {"QueueUrl": DLQ_URL}, {
            "QueueName": DLQ_NAME,  # a standard queue: Pipes cannot send dead letters to a FIFO one
            "Attributes": {"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"},
            "tags": TAGS,
        })
        HANDLERS["sqs_queue"].create(clients, res)


def test_queue_observe_reads_only_the_managed_attributes_and_update_sets_only_what_drifted() -> None:
    clients = clients_for()
    res = planned(clients, "sqs_queue")
    handler = HANDLERS["sqs_queue"]
    with stubbed(clients, "sqs") as stub:
        stub["sqs"].add_response("get_queue_url", {"QueueUrl": DLQ_URL}, {"QueueName": DLQ_NAME})
        stub["sqs"].add_response("get_queue_attributes", {"Attributes": {
            "MessageRetentionPeriod": "345600", "SqsManagedSseEnabled": "true"}}, {
            "QueueUrl": DLQ_URL, "AttributeNames": ["MessageRetentionPeriod", "SqsManagedSseEnabled"]})
        stub["sqs"].add_response("list_queue_tags", {"Tags": {"project": "sales-orders-cdc", "team": "data"}},
                                 {"QueueUrl": DLQ_URL})
        current = handler.observe(clients, res)
    assert current == {"MessageRetentionPeriod": "345600", "SqsManagedSseEnabled": "true",
                       "Tags": {"project": "sales-orders-cdc", "managed-by": None}}
    changed = [k for k, v in handler.desired(res).items() if current[k] != v]
    assert changed == ["MessageRetentionPeriod", "Tags"]
    with stubbed(clients, "sqs") as stub:
        stub["sqs"].add_response("get_queue_url", {"QueueUrl": DLQ_URL}, {"QueueName": DLQ_NAME})
        stub["sqs"].add_response("set_queue_attributes", {}, {
            "QueueUrl": DLQ_URL, "Attributes": {"MessageRetentionPeriod": "1209600"}})
        stub["sqs"].add_response("tag_queue", {}, {"QueueUrl": DLQ_URL, "Tags": TAGS})
        handler.update(clients, res, changed)


def test_a_queue_name_deleted_moments_ago_is_retried_until_sqs_allows_it() -> None:
    clients = clients_for()
    res = planned(clients, "sqs_queue")
    slept: list[float] = []
    clock = iter([0.0, 5.0, 10.0])
    with stubbed(clients, "sqs") as stub:
        for _ in range(2):
            stub["sqs"].add_client_error(
                "create_queue", "AWS.SimpleQueueService.QueueDeletedRecently",
                "You must wait 60 seconds after deleting a queue before you can create another with the same name.",
                400)
        stub["sqs"].add_response("create_queue", {"QueueUrl": DLQ_URL}, None)
        HANDLERS["sqs_queue"].create(clients, res, sleep=slept.append, now=lambda: next(clock))
    assert slept == [5.0, 5.0]


def test_queue_delete_waits_until_the_name_is_gone_and_a_missing_queue_is_nothing_to_delete() -> None:
    clients = clients_for()
    bare = Resource("sqs_queue", DLQ_NAME, {})  # found by its tags: no spec parameters
    with stubbed(clients, "sqs") as stub:
        stub["sqs"].add_response("get_queue_url", {"QueueUrl": DLQ_URL}, {"QueueName": DLQ_NAME})
        stub["sqs"].add_response("delete_queue", {}, {"QueueUrl": DLQ_URL})
        stub["sqs"].add_client_error("get_queue_url", "AWS.SimpleQueueService.NonExistentQueue",
                                     "The specified queue does not exist.", 400)
        HANDLERS["sqs_queue"].delete(clients, bare)
    with stubbed(clients, "sqs") as stub:
        stub["sqs"].add_client_error("get_queue_url", "AWS.SimpleQueueService.NonExistentQueue",
                                     "The specified queue does not exist.", 400)
        assert HANDLERS["sqs_queue"].observe(clients, planned(clients, "sqs_queue")) is None


FIREHOSE_ROLE = f"{ROLE}sales-orders-cdc-firehose"
LAMBDA_PROCESSOR = {"Type": "Lambda", "Parameters": [
    {"ParameterName": "LambdaArn",
     "ParameterValue": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sales-orders-transform"},
    {"ParameterName": "NumberOfRetries", "ParameterValue": "3"},
    {"ParameterName": "BufferSizeInMBs", "ParameterValue": "1"},
    {"ParameterName": "BufferIntervalInSeconds", "ParameterValue": "60"},
]}


def firehose_request(destination_extra: dict, processors: list[dict], compression: str) -> dict:
    return {
        "DeliveryStreamName": "sales-orders-firehose",
        "DeliveryStreamType": "KinesisStreamAsSource",
        "KinesisStreamSourceConfiguration": {
            "KinesisStreamARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sales-orders-cdc",
            "RoleARN": FIREHOSE_ROLE,
        },
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": FIREHOSE_ROLE,
            "BucketARN": f"arn:aws:s3:::{LAKE}",
            "Prefix": "orders/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/"
                      "day=!{partitionKeyFromLambda:day}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/!{timestamp:MM}/"
                                 "!{timestamp:dd}/!{timestamp:HH}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
            "CompressionFormat": compression,
            "ProcessingConfiguration": {"Enabled": True, "Processors": processors},
            "DynamicPartitioningConfiguration": {"Enabled": True, "RetryOptions": {"DurationInSeconds": 300}},
            "CloudWatchLoggingOptions": {"Enabled": True, "LogGroupName": "/aws/kinesisfirehose/sales-orders-firehose",
                                         "LogStreamName": "DestinationDelivery"},
            **destination_extra,
        },
        "Tags": [{"Key": "project", "Value": "sales-orders-cdc"},
                 {"Key": "managed-by", "Value": "sales-orders-cdc-bootstrap"},
                 {"Key": "spec-sha", "Value": ANY}],
    }


def expect_firehose_create(clients: Clients, request: dict) -> None:
    res = planned(clients, "delivery_stream")
    with stubbed(clients, "iam", "firehose") as stub:
        stub["iam"].add_response("get_role", role_response("sales-orders-cdc-firehose"),
                                 {"RoleName": "sales-orders-cdc-firehose"})
        stub["firehose"].add_response("create_delivery_stream", {}, request)
        stub["firehose"].add_response("describe_delivery_stream", {"DeliveryStreamDescription": {
            "DeliveryStreamName": "sales-orders-firehose", "DeliveryStreamARN": "arn", "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": "KinesisStreamAsSource", "VersionId": "1", "Destinations": [],
            "HasMoreDestinations": False}}, {"DeliveryStreamName": "sales-orders-firehose"})
        HANDLERS["delivery_stream"].create(clients, res)


def test_create_delivery_stream_request_parquet() -> None:
    expect_firehose_create(clients_for(), firehose_request({
        "FileExtension": ".parquet",
        "DataFormatConversionConfiguration": {
            "Enabled": True,
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
            "SchemaConfiguration": {"RoleARN": FIREHOSE_ROLE, "DatabaseName": "sales_orders_db",
                                    "TableName": "sales_orders_cdc", "Region": REGION, "VersionId": "LATEST"},
        },
    }, [LAMBDA_PROCESSOR], "UNCOMPRESSED"))


def test_create_delivery_stream_request_json_lines() -> None:
    delimiter = {"Type": "AppendDelimiterToRecord",
                 "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": "\\n"}]}
    expect_firehose_create(clients_for(OUTPUT_FORMAT="jsonl"),
                           firehose_request({}, [LAMBDA_PROCESSOR, delimiter], "GZIP"))


def test_bucket_requests_block_public_access_encrypt_and_deny_plain_http() -> None:
    clients = clients_for()
    res = planned(clients, "s3_bucket", LAKE)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{LAKE}", f"arn:aws:s3:::{LAKE}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    with stubbed(clients, "s3") as stub:
        s3 = stub["s3"]
        s3.add_response("create_bucket", {}, {"Bucket": LAKE,
                                              "CreateBucketConfiguration": {"LocationConstraint": REGION}})
        s3.add_response("put_bucket_tagging", {}, {"Bucket": LAKE, "Tagging": {"TagSet": [
            {"Key": "project", "Value": "sales-orders-cdc"},
            {"Key": "managed-by", "Value": "sales-orders-cdc-bootstrap"}]}})
        s3.add_response("put_public_access_block", {}, {"Bucket": LAKE, "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True}})
        s3.add_response("put_bucket_encryption", {}, {"Bucket": LAKE, "ServerSideEncryptionConfiguration": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}]}})
        s3.add_response("put_bucket_versioning", {}, {"Bucket": LAKE, "VersioningConfiguration": {"Status": "Enabled"}})
        s3.add_response("put_bucket_lifecycle_configuration", {}, {"Bucket": LAKE, "LifecycleConfiguration": {
            "Rules": [{"ID": "expire-replaced-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
                       "Expiration": {"ExpiredObjectDeleteMarker": True},
                       "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                       "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]}})
        s3.add_response("put_bucket_policy", {}, {"Bucket": LAKE, "Policy": json.dumps(policy)})
        HANDLERS["s3_bucket"].create(clients, res)


def test_query_results_expire_and_a_removed_rule_is_deleted() -> None:
    clients = clients_for()
    results = planned(clients, "s3_bucket", RESULTS)
    with stubbed(clients, "s3") as stub:
        stub["s3"].add_response("put_bucket_lifecycle_configuration", {}, {
            "Bucket": RESULTS, "LifecycleConfiguration": {"Rules": [
                {"ID": "expire-query-results", "Status": "Enabled", "Filter": {"Prefix": ""},
                 "Expiration": {"Days": 30}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]}})
        HANDLERS["s3_bucket"].update(clients, results, ["Lifecycle"])
    bare = Resource("s3_bucket", RESULTS, {**results.params, "Lifecycle": []})
    with stubbed(clients, "s3") as stub:
        stub["s3"].add_response("delete_bucket_lifecycle", {}, {"Bucket": RESULTS})
        HANDLERS["s3_bucket"].update(clients, bare, ["Lifecycle"])


def test_kms_key_encrypts_the_buckets_with_bucket_keys() -> None:
    from bootstrap.spec import CloudOptions

    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    clients = clients_for()
    (lake,) = [r for r in desired_resources(clients.settings, ACCOUNT, CloudOptions(kms_key_arn=key))
               if r.name == LAKE]
    with stubbed(clients, "s3") as stub:
        stub["s3"].add_response("put_bucket_encryption", {}, {"Bucket": LAKE, "ServerSideEncryptionConfiguration": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
                       "BucketKeyEnabled": True}]}})
        HANDLERS["s3_bucket"].update(clients, lake, ["Encryption"])


def test_firehose_role_requests_carry_the_exact_policy_documents() -> None:
    clients = clients_for()
    res = planned(clients, "iam_role", "sales-orders-cdc-firehose")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "firehose.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": ACCOUNT}}}]}
    stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sales-orders-cdc"
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sales-orders-transform"
    glue = f"arn:aws:glue:{REGION}:{ACCOUNT}:"
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadKinesis", "Effect": "Allow",
         "Action": ["kinesis:DescribeStream", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"],
         "Resource": [stream]},
        {"Sid": "InvokeTransform", "Effect": "Allow",
         "Action": ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"], "Resource": [fn, f"{fn}:*"]},
        {"Sid": "WriteLake", "Effect": "Allow",
         "Action": ["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
                    "s3:ListBucketMultipartUploads", "s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{LAKE}", f"arn:aws:s3:::{LAKE}/*"]},
        {"Sid": "ReadSchemaForConversion", "Effect": "Allow",
         "Action": ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
         "Resource": [f"{glue}catalog", f"{glue}database/sales_orders_db",
                      f"{glue}table/sales_orders_db/sales_orders_cdc"]},
        {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/kinesisfirehose/sales-orders-firehose:*"]},
    ]}
    with stubbed(clients, "iam") as stub:
        stub["iam"].add_response("create_role", role_response("sales-orders-cdc-firehose"), {
            "RoleName": "sales-orders-cdc-firehose", "AssumeRolePolicyDocument": json.dumps(trust),
            "Tags": [{"Key": "project", "Value": "sales-orders-cdc"},
                     {"Key": "managed-by", "Value": "sales-orders-cdc-bootstrap"}]})
        stub["iam"].add_response("put_role_policy", {}, {
            "RoleName": "sales-orders-cdc-firehose", "PolicyName": "sales-orders-cdc-firehose-permissions",
            "PolicyDocument": json.dumps(policy)})
        HANDLERS["iam_role"].create(clients, res)


def test_athena_workgroup_update_request() -> None:
    """moto 5.2.5 has no UpdateWorkGroup: the request is checked here instead."""
    clients = clients_for()
    res = planned(clients, "athena_workgroup")
    with stubbed(clients, "athena") as stub:
        stub["athena"].add_response("update_work_group", {}, {"WorkGroup": "sales-orders-wg", "ConfigurationUpdates": {
            "ResultConfigurationUpdates": {"OutputLocation": f"s3://sales-orders-athena-{ACCOUNT}/athena-results/",
                                           "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}},
            "EnforceWorkGroupConfiguration": True, "PublishCloudWatchMetricsEnabled": True,
            "BytesScannedCutoffPerQuery": 10_000_000_000}})
        HANDLERS["athena_workgroup"].update(clients, res, ["Enforce"])


# --- errors: one line that names the action and the resource -------------------------------------


def apply_one(clients: Clients, res: Resource) -> None:
    plan = Plan("aws", REGION, ACCOUNT, (Change(res, CREATE, ()),))
    apply(clients, plan, Console(capture=True))


def with_account(stub: dict[str, Stubber]) -> None:
    stub["sts"].add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/dev",
                                                     "UserId": "AIDAEXAMPLE"})


def test_access_denied_names_the_action_and_resource_from_aws_message() -> None:
    clients = clients_for()
    stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sales-orders-cdc"
    with stubbed(clients, "kinesis", "sts") as stub:
        with_account(stub)
        stub["kinesis"].add_client_error(
            "create_stream", "AccessDeniedException",
            f"User: arn:aws:iam::{ACCOUNT}:user/dev is not authorized to perform: kinesis:CreateStream on resource: "
            f"{stream} because no identity-based policy allows the kinesis:CreateStream action", 400)
        with pytest.raises(TerminalError) as err:
            apply_one(clients, planned(clients, "kinesis_stream"))
    assert str(err.value) == (
        f"AccessDenied on kinesis:CreateStream for {stream}: grant it to the deploying identity")


def test_access_denied_on_pass_role_names_iam_pass_role() -> None:
    clients = clients_for()
    role = f"{ROLE}sales-orders-cdc-lambda"
    with stubbed(clients, "iam", "lambda", "sts") as stub:
        with_account(stub)
        stub["iam"].add_response("get_role", role_response("sales-orders-cdc-lambda"), None)
        stub["lambda"].add_client_error(
            "create_function", "AccessDeniedException",
            f"User: arn:aws:iam::{ACCOUNT}:user/dev is not authorized to perform: iam:PassRole on resource: {role}",
            403)
        with pytest.raises(TerminalError) as err:
            apply_one(clients, planned(clients, "lambda_function"))
    assert str(err.value) == f"AccessDenied on iam:PassRole for {role}: grant it to the deploying identity"


def test_s3_access_denied_without_details_maps_the_operation_to_its_iam_action() -> None:
    clients = clients_for()
    with stubbed(clients, "s3", "sts") as stub:
        with_account(stub)
        stub["s3"].add_client_error("create_bucket", "AccessDenied", "Access Denied", 403)
        with pytest.raises(TerminalError) as err:
            apply_one(clients, planned(clients, "s3_bucket", LAKE))
    assert str(err.value) == (
        f"AccessDenied on s3:CreateBucket for arn:aws:s3:::{LAKE}: grant it to the deploying identity")


def test_access_denied_on_create_queue_names_the_sqs_action_and_the_queue_arn() -> None:
    clients = clients_for()
    with stubbed(clients, "sqs", "sts") as stub:
        with_account(stub)
        stub["sqs"].add_client_error("create_queue", "AccessDenied", "Access to the resource is denied.", 403)
        with pytest.raises(TerminalError) as err:
            apply_one(clients, planned(clients, "sqs_queue"))
    assert str(err.value) == (
        f"AccessDenied on sqs:CreateQueue for arn:aws:sqs:{REGION}:{ACCOUNT}:{DLQ_NAME}: "
        "grant it to the deploying identity")


def test_a_bucket_name_owned_elsewhere_reads_as_access_denied_on_list_bucket() -> None:
    from bootstrap.plan import build_plan

    clients = clients_for()
    with stubbed(clients, "s3", "sts") as stub:
        with_account(stub)
        stub["s3"].add_client_error("head_bucket", "403", "Forbidden", 403)
        with pytest.raises(TerminalError) as err:
            build_plan(clients, clients.settings)
    assert str(err.value) == (
        f"AccessDenied on s3:ListBucket for arn:aws:s3:::{LAKE}: grant it to the deploying identity "
        "(if it has it, another account owns this bucket name: set LAKE_BUCKET/RESULTS_BUCKET)")


def test_throttling_after_retries_says_to_run_again() -> None:
    clients = clients_for()
    with stubbed(clients, "dynamodb", "sts") as stub:
        with_account(stub)
        stub["dynamodb"].add_client_error("create_table", "ThrottlingException", "Rate exceeded", 400)
        with pytest.raises(TransientError) as err:
            apply_one(clients, planned(clients, "dynamodb_table"))
    assert str(err.value) == (
        f"AWS throttled dynamodb:CreateTable for arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sales_orders "
        "(ThrottlingException) after retries; wait a minute and run it again (apply is idempotent)")


# --- IAM propagation ------------------------------------------------------------------------------

NAME = "sales-orders-cdc-r"


def test_a_young_role_is_given_the_rest_of_the_settle_time() -> None:
    clients = clients_for()
    created = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    slept: list[float] = []
    with stubbed(clients, "iam") as stub:
        stub["iam"].add_response("get_role", role_response(NAME, created), {"RoleName": NAME})
        stub["iam"].add_response("get_role", role_response(NAME, OLD), {"RoleName": NAME})
        waited = wait_for_role(clients, ROLE + NAME, sleep=slept.append, now=lambda: created + timedelta(seconds=4))
        assert wait_for_role(clients, ROLE + NAME, sleep=slept.append) == 0.0
    assert waited == SETTLE_SECONDS - 4 and slept == [SETTLE_SECONDS - 4]


def test_create_is_retried_while_the_role_is_young_and_not_after() -> None:
    clients = clients_for()
    created = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    clock = iter([created + timedelta(seconds=s) for s in (3, 130)])
    lam = clients.client("lambda")
    calls: list[str] = []

    def create() -> str:
        calls.append("create")
        return lam.get_account_settings()["AccountLimit"]["CodeSizeZipped"]

    with stubbed(clients, "iam", "lambda") as stub:
        for _ in range(2):
            stub["iam"].add_response("get_role", role_response(NAME, created), {"RoleName": NAME})
        stub["lambda"].add_client_error("get_account_settings", "InvalidParameterValueException", "cannot assume", 400)
        stub["lambda"].add_response("get_account_settings", {"AccountLimit": {"CodeSizeZipped": 1}})
        stub["lambda"].add_client_error("get_account_settings", "InvalidParameterValueException", "cannot assume", 400)
        codes = frozenset({"InvalidParameterValueException"})
        assert retry_while_role_propagates(create, clients, ROLE + NAME, codes, sleep=lambda s: None,
                                           now=lambda: next(clock)) == 1
        with pytest.raises(Exception, match="cannot assume"):  # 130 s old: a real error, raised at once
            retry_while_role_propagates(create, clients, ROLE + NAME, codes, sleep=lambda s: None,
                                        now=lambda: next(clock))
    assert calls == ["create", "create", "create"]
