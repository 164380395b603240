"""The aws target's plan as pure values: what exists only on aws, the options, and AWS's API models."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.session import get_session
from botocore.validate import validate_parameters

from bootstrap.deploy import Identity, confirm_question, deploy, plan_lines, require_aws
from bootstrap.iam import Arns, role_documents
from bootstrap.plan import CREATE, NOOP, UPDATE, Change, Plan
from bootstrap.resources.base import explain, iam_action
from bootstrap.resources.discovery import key_of_arn
from bootstrap.resources.glue import table_view
from bootstrap.spec import (
    CloudOptions,
    Resource,
    desired_resources,
    pipe_dead_letter_queue,
    resolve,
    tags,
    update_pipe_request,
)
from common.aws import Clients
from common.config import load_settings
from common.console import Console
from common.errors import ConfigError, TerminalError
from lake.glue_schema import glue_columns, projection_parameters, table_input

ACCOUNT = "123456789012"
REGION = "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LAKE = f"sales-orders-lake-{ACCOUNT}"


def aws(options: CloudOptions | None = None, **env: str) -> dict[str, Resource]:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION, **env})
    return {r.key: r for r in desired_resources(settings, ACCOUNT, options)}


def by_kind(resources: dict[str, Resource], kind: str) -> Resource:
    (only,) = [r for r in resources.values() if r.kind == kind]
    return only


# --- the Glue table from the row contract -----------------------------------------------------


def test_parquet_columns_are_the_row_contract_in_glue_types() -> None:
    assert glue_columns("parquet") == [
        {"Name": "order_id", "Type": "string"}, {"Name": "customer_id", "Type": "string"},
        {"Name": "customer_name", "Type": "string"}, {"Name": "customer_region", "Type": "string"},
        {"Name": "product_id", "Type": "string"}, {"Name": "product_name", "Type": "string"},
        {"Name": "category", "Type": "string"}, {"Name": "quantity", "Type": "bigint"},
        {"Name": "unit_price", "Type": "decimal(12,2)"}, {"Name": "discount", "Type": "decimal(5,4)"},
        {"Name": "order_total", "Type": "decimal(14,2)"}, {"Name": "currency", "Type": "string"},
        {"Name": "status", "Type": "string"}, {"Name": "payment_method", "Type": "string"},
        {"Name": "channel", "Type": "string"}, {"Name": "order_ts", "Type": "timestamp"},
        {"Name": "updated_ts", "Type": "timestamp"}, {"Name": "event_type", "Type": "string"},
        {"Name": "event_id", "Type": "string"}, {"Name": "sequence_number", "Type": "string"},
        {"Name": "event_ts", "Type": "timestamp"}, {"Name": "arrival_ts", "Type": "timestamp"},
        {"Name": "is_deleted", "Type": "boolean"},
    ]


def test_json_lines_columns_are_typed_as_the_json_classifier_sees_them() -> None:
    types = {c["Name"]: c["Type"] for c in glue_columns("json")}
    assert (types["order_ts"], types["unit_price"], types["quantity"], types["is_deleted"]) == (
        "string", "double", "bigint", "boolean")
    with pytest.raises(ValueError, match="data format 'csv' is unknown"):
        glue_columns("csv")


def test_table_input_matches_the_local_crawlers_shape_and_projects_partitions_on_request() -> None:
    table = table_input("t", "s3://b/orders/", "parquet")
    assert table["Parameters"] == {"classification": "parquet", "compressionType": "none", "typeOfData": "file",
                                   "EXTERNAL": "TRUE"}
    assert table["PartitionKeys"] == [{"Name": k, "Type": "string"} for k in ("year", "month", "day")]
    sd = table["StorageDescriptor"]
    assert sd["SerdeInfo"] == {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                               "Parameters": {"serialization.format": "1"}}
    projected = table_input("t", "s3://b/orders/", "json", projection=True)["Parameters"]
    assert projected["compressionType"] == "gzip"
    assert projection_parameters("s3://b/orders/") == {k: projected[k] for k in projected if k.startswith(
        ("projection.", "storage."))}
    assert projected["projection.month.digits"] == "2"
    assert projected["storage.location.template"] == "s3://b/orders/year=${year}/month=${month}/day=${day}/"


def test_table_view_ignores_parameters_others_add_but_sees_projection_switched_off() -> None:
    want = table_input("t", "s3://b/orders/", "parquet", extra_parameters={"project": "p"})
    keys = set(want["Parameters"])
    live = json.loads(json.dumps(want))
    live["Parameters"]["UPDATED_BY_CRAWLER"] = "crawler"
    live["StorageDescriptor"]["Columns"][0]["Comment"] = "added in the console"
    assert table_view(live, keys) == table_view(want, keys)
    live["Parameters"].update(projection_parameters("s3://b/orders/"))
    assert table_view(live, keys) != table_view(want, keys)


# --- what only aws has ---------------------------------------------------------------------------


def test_aws_adds_log_groups_and_every_target_declares_the_same_glue_table() -> None:
    cloud = aws()
    assert [r.name for r in cloud.values() if r.kind == "log_group"] == [
        "/aws/lambda/sales-orders-transform", "/aws/kinesisfirehose/sales-orders-firehose",
        "/aws/vendedlogs/pipes/sales-orders-pipe"]
    assert cloud["log_group:/aws/kinesisfirehose/sales-orders-firehose"].params["logStreams"] == ["DestinationDelivery"]
    assert {r.params["retentionInDays"] for r in cloud.values() if r.kind == "log_group"} == {14}
    assert cloud["log_group:/aws/vendedlogs/pipes/sales-orders-pipe"].params["logStreams"] == []  # Pipes makes its own
    table = cloud["glue_table:sales_orders_cdc"].params
    assert table["DatabaseName"] == "sales_orders_db"
    assert table["TableInput"]["StorageDescriptor"]["Location"] == f"s3://{LAKE}/orders/"
    assert table["TableInput"]["Parameters"]["project"] == "sales-orders-cdc"
    keys = list(cloud)
    assert keys.index("glue_table:sales_orders_cdc") < keys.index("delivery_stream:sales-orders-firehose")
    local = {f"{r.kind}:{r.name}": r for r in desired_resources(load_settings(env={}), ACCOUNT)}
    assert not any(key.startswith("log_group:") for key in local)
    # Locally the firehose runner converts with this very table and the local crawler only adds partitions.
    assert local["glue_table:sales_orders_cdc"].params["TableInput"]["StorageDescriptor"]["Columns"] == (
        table["TableInput"]["StorageDescriptor"]["Columns"])


def test_aws_crawler_targets_the_declared_table_and_never_changes_its_schema() -> None:
    crawler = aws()["glue_crawler:sales-orders-crawler"].params
    assert crawler == {
        "Name": "sales-orders-crawler",
        "Role": f"arn:aws:iam::{ACCOUNT}:role/sales-orders-cdc-glue",
        "Targets": {"CatalogTargets": [{"DatabaseName": "sales_orders_db", "Tables": ["sales_orders_cdc"]}]},
        "SchemaChangePolicy": {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
        "Configuration": '{"CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}}, '
                         '"Version": 1.0}',
        "Tags": {"project": "sales-orders-cdc", "managed-by": "sales-orders-cdc-bootstrap"},
    }
    scheduled = aws(CloudOptions(crawler_schedule="cron(15 * * * ? *)"))["glue_crawler:sales-orders-crawler"]
    assert scheduled.params["Schedule"] == "cron(15 * * * ? *)"
    local = {r.kind: r for r in desired_resources(load_settings(env={}), ACCOUNT)}["glue_crawler"]
    assert local.params == crawler and local.local_runner == "crawler"  # the same request, served locally


def test_partition_projection_replaces_the_crawler_and_its_role() -> None:
    cloud = aws(CloudOptions(partition_projection=True))
    assert {r.kind for r in cloud.values()} >= {"glue_table", "athena_workgroup"}
    assert "glue_crawler:sales-orders-crawler" not in cloud and "iam_role:sales-orders-cdc-glue" not in cloud
    assert cloud["glue_table:sales_orders_cdc"].params["TableInput"]["Parameters"]["projection.enabled"] == "true"


def test_a_kms_key_encrypts_buckets_firehose_and_athena_and_only_the_s3_roles_may_use_it() -> None:
    cloud = aws(CloudOptions(kms_key_arn=KEY))
    lake = cloud[f"s3_bucket:{LAKE}"].params
    assert (lake["Encryption"], lake["BucketKeyEnabled"]) == ({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY}, True)
    dest = cloud["delivery_stream:sales-orders-firehose"].params["ExtendedS3DestinationConfiguration"]
    assert dest["EncryptionConfiguration"] == {"KMSEncryptionConfig": {"AWSKMSKeyARN": KEY}}
    wg = cloud["athena_workgroup:sales-orders-wg"].params["Configuration"]["ResultConfiguration"]
    assert wg["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS", "KmsKey": KEY}
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION})
    docs = role_documents(Arns.build(settings, ACCOUNT), "lake", KEY)
    (encrypt,) = [s for s in docs["firehose"][1]["Statement"] if s["Sid"] == "EncryptLake"]
    assert encrypt == {
        "Sid": "EncryptLake", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": [KEY],
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
                      "StringLike": {"kms:EncryptionContext:aws:s3:arn": ["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"]}}}
    (decrypt,) = [s for s in docs["glue"][1]["Statement"] if s["Sid"] == "DecryptLake"]
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert not any("kms" in json.dumps(docs[svc][1]) for svc in ("lambda", "pipes"))
    default = aws()[f"s3_bucket:{LAKE}"].params
    assert (default["Encryption"], default["BucketKeyEnabled"]) == ({"SSEAlgorithm": "AES256"}, False)


@pytest.mark.parametrize(("options", "message"), [
    (CloudOptions(kms_key_arn="alias/lake"), "KMS_KEY_ARN='alias/lake' is not a KMS key ARN"),
    (CloudOptions(crawler_schedule="hourly"), "CRAWLER_SCHEDULE='hourly' is not a Glue cron expression"),
    (CloudOptions(crawler_schedule="cron(0 * * * ? *)", partition_projection=True), "PARTITION_PROJECTION needs no"),
])
def test_bad_options_stop_with_one_line(options: CloudOptions, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("*", r"\*")):
        aws(options)


def test_options_are_ignored_on_the_emulated_targets() -> None:
    local = desired_resources(load_settings(env={}), ACCOUNT, CloudOptions(kms_key_arn=KEY))
    (lake,) = [r for r in local if r.kind == "s3_bucket" and "lake" in r.name]
    assert lake.params["Encryption"] == {"SSEAlgorithm": "AES256"}


# --- every request conforms to AWS's API model ---------------------------------------------------

def requests_of(res: Resource) -> list[tuple[str, str, dict]]:
    """(service, operation, parameters) the handlers send for one planned resource."""
    p = resolve(res.params, {"table_stream_arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t/stream/x"})
    tag_list = [{"Key": k, "Value": v} for k, v in p.get("Tags", {}).items()] if isinstance(p.get("Tags"), dict) else []
    if res.kind == "s3_bucket":
        return [("s3", "PutBucketEncryption", {"Bucket": res.name, "ServerSideEncryptionConfiguration": {"Rules": [
            {"ApplyServerSideEncryptionByDefault": p["Encryption"], "BucketKeyEnabled": p["BucketKeyEnabled"]}]}}),
            ("s3", "PutPublicAccessBlock", {"Bucket": res.name,
                                            "PublicAccessBlockConfiguration": p["PublicAccessBlock"]}),
            ("s3", "PutBucketPolicy", {"Bucket": res.name, "Policy": json.dumps(p["Policy"])})]
    if res.kind == "dynamodb_table":
        return [("dynamodb", "CreateTable", {k: v for k, v in p.items() if k not in ("PointInTimeRecovery", "Tags")}
                 | {"Tags": tag_list})]
    if res.kind == "kinesis_stream":
        fields = ("StreamName", "ShardCount", "StreamModeDetails", "Tags")
        return [("kinesis", "CreateStream", {k: p[k] for k in fields})]
    if res.kind == "iam_role":
        return [("iam", "CreateRole", {"RoleName": res.name, "AssumeRolePolicyDocument": json.dumps(
            p["AssumeRolePolicyDocument"]), "Tags": tag_list}),
            ("iam", "PutRolePolicy", {"RoleName": res.name, "PolicyName": p["PolicyName"],
                                      "PolicyDocument": json.dumps(p["PolicyDocument"])})]
    if res.kind == "log_group":
        return [("logs", "CreateLogGroup", {"logGroupName": res.name, "tags": p["tags"]})]
    if res.kind == "sqs_queue":
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{res.name}"
        return [("sqs", "CreateQueue", p),
                ("sqs", "GetQueueAttributes", {"QueueUrl": url, "AttributeNames": list(p["Attributes"])}),
                ("sqs", "SetQueueAttributes", {"QueueUrl": url, "Attributes": p["Attributes"]}),
                ("sqs", "TagQueue", {"QueueUrl": url, "Tags": p["tags"]})]
    if res.kind == "lambda_function":
        return [("lambda", "CreateFunction", {k: v for k, v in p.items()} | {"Code": {"ZipFile": b"zip"}})]
    if res.kind == "glue_database":
        return [("glue", "CreateDatabase", {"DatabaseInput": p["DatabaseInput"], "Tags": p["Tags"]})]
    if res.kind == "glue_table":
        return [("glue", "CreateTable", {"DatabaseName": p["DatabaseName"], "TableInput": p["TableInput"]})]
    if res.kind == "pipe":
        return [("pipes", "CreatePipe", p), ("pipes", "UpdatePipe", update_pipe_request(p))]
    if res.kind == "delivery_stream":
        update = {"DeliveryStreamName": res.name, "CurrentDeliveryStreamVersionId": "1", "DestinationId": "d",
                  "ExtendedS3DestinationUpdate": p["ExtendedS3DestinationConfiguration"]}
        return [("firehose", "CreateDeliveryStream", p), ("firehose", "UpdateDestination", update)]
    if res.kind == "glue_crawler":
        return [("glue", "CreateCrawler", p), ("glue", "UpdateCrawler", {k: v for k, v in p.items() if k != "Tags"})]
    if res.kind == "athena_workgroup":
        return [("athena", "CreateWorkGroup", p)]
    raise AssertionError(f"no request mapping for {res.kind}")


@pytest.mark.parametrize(("options", "env"), [
    (CloudOptions(), {}),
    (CloudOptions(), {"OUTPUT_FORMAT": "jsonl"}),
    (CloudOptions(kms_key_arn=KEY, crawler_schedule="cron(15 * * * ? *)"), {}),
    (CloudOptions(kms_key_arn=KEY, partition_projection=True), {"OUTPUT_FORMAT": "jsonl"}),
])
def test_every_aws_request_validates_against_the_botocore_model(options: CloudOptions, env: dict) -> None:
    session = get_session()
    checked = set()
    for res in aws(options, **env).values():
        for service, operation, params in requests_of(res):
            shape = session.get_service_model(service).operation_model(operation).input_shape
            validate_parameters(params, shape)  # raises ParamValidationError naming the bad field
            checked.add(operation)
    assert {"CreatePipe", "UpdatePipe", "CreateDeliveryStream", "UpdateDestination", "CreateTable",
            "CreateWorkGroup", "PutBucketPolicy", "PutRolePolicy", "CreateQueue", "SetQueueAttributes",
            "TagQueue", "CreateLogGroup"} <= checked


def test_the_pipe_gives_up_on_a_record_before_the_stream_forgets_it_and_keeps_it_in_its_dead_letter_queue() -> None:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION})
    pipe = aws()["pipe:sales-orders-pipe"].params
    stream = pipe["SourceParameters"]["DynamoDBStreamParameters"]
    assert 0 <= stream["MaximumRetryAttempts"] <= 185  # bounded (the console's range): a poison record cannot stall
    # under DynamoDB Streams' 24 h retention, with hours left to read back what a dead letter points at
    assert 60 <= stream["MaximumRecordAgeInSeconds"] == settings.pipe_max_record_age_s <= 24 * 3600 - 12 * 3600
    dlq = stream["DeadLetterConfig"]["Arn"]
    assert dlq.startswith(f"arn:aws:sqs:{REGION}:{ACCOUNT}:")  # a stream source takes an SQS queue or SNS topic
    assert pipe["LogConfiguration"]["Level"] == "ERROR"
    queue = pipe_dead_letter_queue(settings, tags(settings))
    assert dlq.endswith(f":{queue['QueueName']}")
    assert not queue["QueueName"].endswith(".fifo")  # Pipes cannot send dead letters to a FIFO queue
    shape = get_session().get_service_model("sqs").operation_model("CreateQueue").input_shape
    validate_parameters(queue, shape)
    local = {r.kind: r for r in desired_resources(load_settings(env={}), ACCOUNT)}["pipe"].params
    assert local["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"] == {
        "Arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:sales-orders-pipe-dlq"}  # the local runner reads the same config


def test_the_pipes_retries_and_record_age_are_settings() -> None:
    stream = aws(PIPE_MAX_RETRY_ATTEMPTS="-1", PIPE_MAX_RECORD_AGE_S="3600")["pipe:sales-orders-pipe"].params[
        "SourceParameters"]["DynamoDBStreamParameters"]
    assert (stream["MaximumRetryAttempts"], stream["MaximumRecordAgeInSeconds"]) == (-1, 3600)


def test_the_delivery_stream_is_active_before_the_pipe_puts_anything() -> None:
    """Firehose reads a Kinesis source from LATEST (writing-with-kinesis-streams.html): what the Pipe puts
    before the delivery stream exists never reaches the lake, so the plan creates (and on aws waits for
    ACTIVE) the delivery stream first, and destroy deletes the pipe first."""
    for resources in (list(aws().values()), desired_resources(load_settings(env={}), ACCOUNT)):
        keys = [r.key for r in resources]
        assert keys.index("delivery_stream:sales-orders-firehose") < keys.index("pipe:sales-orders-pipe")


def test_the_queue_and_the_log_group_the_pipe_names_are_planned_before_it() -> None:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION})
    cloud = aws()
    keys = list(cloud)
    pipe = cloud["pipe:sales-orders-pipe"].params
    arns = Arns.build(settings, ACCOUNT)
    named = {pipe["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"]["Arn"],
             pipe["LogConfiguration"]["CloudwatchLogsLogDestination"]["LogGroupArn"]}
    planned = {arns.of(r.kind, r.name): key for key, r in cloud.items()}
    assert named <= set(planned)  # CreatePipe fails on a dead-letter queue or log group that does not exist
    for arn in named:
        assert keys.index(planned[arn]) < keys.index("pipe:sales-orders-pipe")
    queue = cloud["sqs_queue:sales-orders-pipe-dlq"]
    assert queue.params == pipe_dead_letter_queue(settings, tags(settings))
    assert key_of_arn(arns.of("sqs_queue", queue.name)) == ("sqs_queue", queue.name)  # destroy finds it by tag


# --- destroy by tag, error lines, deploy's words ------------------------------------------------------


@pytest.mark.parametrize(("arn", "key"), [
    ("arn:aws:s3:::sales-orders-lake-1", ("s3_bucket", "sales-orders-lake-1")),
    ("arn:aws:s3:::bucket/key", None),
    (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sales_orders", ("dynamodb_table", "sales_orders")),
    (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sales_orders/stream/2026", None),
    (f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/cdc", ("kinesis_stream", "cdc")),
    (f"arn:aws:iam::{ACCOUNT}:role/service/sales-orders-cdc-glue", ("iam_role", "sales-orders-cdc-glue")),
    (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/f:*", ("log_group", "/aws/lambda/f")),
    (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f:3", ("lambda_function", "f")),
    (f"arn:aws:glue:{REGION}:{ACCOUNT}:database/db", ("glue_database", "db")),
    (f"arn:aws:glue:{REGION}:{ACCOUNT}:crawler/c", ("glue_crawler", "c")),
    (f"arn:aws:pipes:{REGION}:{ACCOUNT}:pipe/p", ("pipe", "p")),
    (f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/d", ("delivery_stream", "d")),
    (f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/w", ("athena_workgroup", "w")),
    (f"arn:aws:sqs:{REGION}:{ACCOUNT}:sales-orders-pipe-dlq", ("sqs_queue", "sales-orders-pipe-dlq")),
    (f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders.fifo", ("sqs_queue", "orders.fifo")),
    (f"arn:aws:sqs:{REGION}:{ACCOUNT}:", None),
    (f"arn:aws:sqs:{REGION}:{ACCOUNT}:a/b", None),
    ("not-an-arn", None),
])
def test_tagged_arns_map_to_the_kinds_destroy_can_delete(arn: str, key: tuple[str, str] | None) -> None:
    assert key_of_arn(arn) == key


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_other_aws_errors_name_the_call_and_keep_aws_words() -> None:
    res = Resource("delivery_stream", "d", {})
    error = client_error("InvalidArgumentException", "Buffering size must be at least 64", "CreateDeliveryStream")
    err = explain(error, res, "arn:d")
    assert isinstance(err, TerminalError)
    assert str(err) == "firehose:CreateDeliveryStream failed for arn:d: InvalidArgumentException: " \
                       "Buffering size must be at least 64"
    assert iam_action(client_error("AccessDenied", "Access Denied", "PutPublicAccessBlock"), "s3_bucket") == (
        "s3:PutBucketPublicAccessBlock")


def test_plan_lines_and_question_name_account_caller_region_and_changes() -> None:
    lake = Resource("s3_bucket", LAKE, {})
    stream = Resource("kinesis_stream", "cdc", {})
    table = Resource("dynamodb_table", "sales_orders", {})
    plan = Plan("aws", REGION, ACCOUNT, (Change(lake, CREATE, ("Tags",)), Change(stream, UPDATE, ("ShardCount",)),
                                         Change(table, NOOP)))
    who = Identity(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/dev", REGION)
    assert plan_lines(plan, who) == [
        f"target aws: account {ACCOUNT} as arn:aws:iam::{ACCOUNT}:user/dev, region {REGION}",
        f"  create  s3_bucket       {LAKE}",
        "  update  kinesis_stream  cdc  (ShardCount)",
        "1 to create, 1 to update, 1 unchanged",
    ]
    assert confirm_question(plan, who) == (
        f"apply 2 change(s) to AWS account {ACCOUNT} in {REGION} as arn:aws:iam::{ACCOUNT}:user/dev?")


def test_deploy_refuses_an_emulated_target_before_any_call() -> None:
    settings = load_settings(env={})
    with pytest.raises(ConfigError, match="TARGET=embedded: deploy-aws and destroy-aws need TARGET=aws"):
        require_aws(settings)
    with pytest.raises(ConfigError):
        deploy(Clients(settings), settings, Console(capture=True), confirm=lambda q: True)


def test_aws_clients_go_to_aws_endpoints_not_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": REGION})
    assert settings.endpoint_url is None
    clients = Clients(settings, session=boto3.Session(region_name=REGION, aws_access_key_id="x",
                                                      aws_secret_access_key="x"))
    assert clients.kinesis.meta.endpoint_url == f"https://kinesis.{REGION}.amazonaws.com"
    assert clients.pipes.meta.endpoint_url == f"https://pipes.{REGION}.amazonaws.com"
    assert clients.firehose.meta.endpoint_url == f"https://firehose.{REGION}.amazonaws.com"


class NoCredentials:
    @property
    def account_id(self) -> str:
        from botocore.exceptions import NoCredentialsError

        raise NoCredentialsError()


class ExpiredCredentials:
    @property
    def account_id(self) -> str:
        raise client_error("ExpiredToken", "The security token included in the request is expired",
                           "GetCallerIdentity")


def test_missing_or_expired_credentials_are_one_line_with_the_fix() -> None:
    from bootstrap.plan import account_of

    with pytest.raises(TerminalError, match=r"^no AWS credentials found; set AWS_PROFILE \(or AWS_ACCESS_KEY_ID"):
        account_of(NoCredentials())  # type: ignore[arg-type]
    with pytest.raises(TerminalError, match=r"^AWS rejected the credentials \(ExpiredToken\); refresh them"):
        account_of(ExpiredCredentials())  # type: ignore[arg-type]
