"""apply creates every resource (checked through the AWS APIs), a second apply changes nothing, destroy empties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrap.plan import NOOP, apply, build_plan, destroy
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console


@pytest.fixture(scope="module")
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return with_overrides(
        emulator_settings,
        state_dir=tmp_path_factory.mktemp("bootstrap-state"),
        project="bt-cdc",
        table_name="bt_orders",
        stream_name="bt-orders-cdc",
        lambda_name="bt-transform",
        pipe_name="bt-pipe",
        delivery_stream="bt-firehose",
        glue_database="bt_db",
        crawler_name="bt-crawler",
        workgroup="bt-wg",
        lake_bucket="bt-lake",
        results_bucket="bt-results",
    )


def test_apply_then_reapply_then_destroy(settings: Settings) -> None:
    clients = Clients(settings)
    console = Console(capture=True)
    plan = build_plan(clients, settings)
    assert {c.action for c in plan.changes} == {"create"}
    apply(clients, plan, console)

    # Every resource exists, as the AWS APIs see it.
    table = clients.dynamodb.describe_table(TableName="bt_orders")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["LatestStreamArn"]
    assert clients.kinesis.describe_stream_summary(StreamName="bt-orders-cdc")["StreamDescriptionSummary"][
        "OpenShardCount"] == 1
    for bucket in ("bt-lake", "bt-results"):
        clients.s3.head_bucket(Bucket=bucket)
        assert clients.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"][
            "BlockPublicAcls"] is True
    assert clients.s3.get_bucket_versioning(Bucket="bt-lake")["Status"] == "Enabled"
    policy = json.loads(clients.s3.get_bucket_policy(Bucket="bt-lake")["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    roles = {r["RoleName"] for r in clients.iam.list_roles()["Roles"]}
    assert {"bt-cdc-lambda", "bt-cdc-pipes", "bt-cdc-firehose", "bt-cdc-glue"} <= roles
    fn = clients.client("lambda").get_function_configuration(FunctionName="bt-transform")
    assert (fn["Handler"], fn["Role"]) == ("handler.handler", f"arn:aws:iam::{clients.account_id}:role/bt-cdc-lambda")
    assert clients.glue.get_database(Name="bt_db")["Database"]["Name"] == "bt_db"
    wg = clients.athena.get_work_group(WorkGroup="bt-wg")["WorkGroup"]["Configuration"]
    assert wg["ResultConfiguration"]["OutputLocation"] == "s3://bt-results/athena-results/"
    # The pipe's dead-letter queue is created here too (the emulator serves SQS), as on aws.
    dlq_url = clients.sqs.get_queue_url(QueueName="bt-pipe-dlq")["QueueUrl"]
    dlq = clients.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert (dlq["MessageRetentionPeriod"], dlq["SqsManagedSseEnabled"]) == ("1209600", "true")
    assert clients.sqs.list_queue_tags(QueueUrl=dlq_url)["Tags"] == {
        "project": "bt-cdc", "managed-by": "sales-orders-cdc-bootstrap"}

    # The runner-served resources are the request files the local runners read, not emulator resources.
    pipe_spec = json.loads((Path(settings.runner_dir) / "pipe.json").read_text())
    assert pipe_spec["Source"] == table["LatestStreamArn"]
    assert pipe_spec["Target"].endswith(":stream/bt-orders-cdc")
    assert pipe_spec["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"] == {"Arn": dlq["QueueArn"]}
    firehose_spec = json.loads((Path(settings.runner_dir) / "delivery_stream.json").read_text())
    assert firehose_spec["DeliveryStreamName"] == "bt-firehose"
    assert "bt-firehose" not in clients.firehose.list_delivery_streams()["DeliveryStreamNames"]
    assert all(p["Name"] != "bt-pipe" for p in clients.pipes.list_pipes()["Pipes"])

    # A second apply has nothing to do, and says so.
    again = build_plan(clients, settings)
    assert [c.resource.key for c in again.changes if c.action != NOOP] == []
    console.lines.clear()
    apply(clients, again, console)
    assert console.lines == ["✓ no changes: every resource already matches the plan"]

    # Drift is detected and repaired.
    clients.iam.put_role_policy(RoleName="bt-cdc-pipes", PolicyName="bt-cdc-pipes-permissions",
                                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                    {"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "*"}]}))
    drift = build_plan(clients, settings)
    assert [(c.resource.key, c.action, c.fields) for c in drift.pending] == [
        ("iam_role:bt-cdc-pipes", "update", ("Policy",))]
    apply(clients, drift, console)
    assert build_plan(clients, settings).pending == ()
    clients.sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"MessageRetentionPeriod": "60"})
    drift = build_plan(clients, settings)
    assert [(c.resource.key, c.action, c.fields) for c in drift.pending] == [
        ("sqs_queue:bt-pipe-dlq", "update", ("MessageRetentionPeriod",))]
    apply(clients, drift, console)
    assert build_plan(clients, settings).pending == ()

    # destroy leaves nothing behind (the lake gets an object first: destroy must empty it on request).
    clients.s3.put_object(Bucket="bt-lake", Key="orders/x", Body=b"x")
    destroy(clients, settings, console, empty_buckets=True)
    after = build_plan(clients, settings)
    assert {c.action for c in after.changes} == {"create"}
    assert not (Path(settings.runner_dir) / "pipe.json").exists()
    assert "bt_orders" not in clients.dynamodb.list_tables()["TableNames"]
    assert not any(url.endswith("/bt-pipe-dlq") for url in clients.sqs.list_queues().get("QueueUrls", []))
