"""make backfill on TARGET=aws, without an account: the export requests (full, and incremental windows for
SINCE) are checked with botocore's Stubber against botocore's model, an export in AWS's documented output
format is read back into lake rows in moto's S3, the requests are applied to moto's DynamoDB, and the
identity policy the export needs is accepted by moto's IAM and names nothing beyond its prefixes."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from backfill import run_backfill
from backfill.core import SNAPSHOT, Step, export_windows
from backfill.export import client_token, export_request
from bootstrap.iam import Arns, backfill_policy
from cli import app
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from tests.aws.conftest import ACCOUNT, REGION

TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sales_orders"
EXPORT_TIME = datetime(2026, 11, 24, 3, 3, 51, 640_000, tzinfo=UTC)


def item(order_id: str, status: str) -> dict[str, Any]:
    return {"order_id": {"S": order_id}, "customer_id": {"S": "c1"}, "quantity": {"N": "2"},
            "unit_price": {"N": "19.99"}, "order_total": {"N": "39.98"}, "status": {"S": status},
            "order_ts": {"S": "2026-11-20T10:00:00.000Z"}, "updated_ts": {"S": "2026-11-23T10:00:00.000Z"}}


def put_export(s3: Any, bucket: str, export_id: str, lines: list[dict[str, Any]]) -> str:
    """An export as DynamoDB writes it (S3DataExport.Output.html): the two manifests and a gzip data file."""
    base = f"exports/AWSDynamoDB/{export_id}"
    data_key = f"{base}/data/abcdefgh.json.gz"
    body = gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode())
    s3.put_object(Bucket=bucket, Key=data_key, Body=body)
    files = json.dumps({"itemCount": len(lines), "md5Checksum": "x", "etag": "y", "dataFileS3Key": data_key})
    s3.put_object(Bucket=bucket, Key=f"{base}/manifest-files.json", Body=files.encode() + b"\n")
    summary = {"version": "2020-06-30", "exportArn": f"{TABLE_ARN}/export/{export_id}", "itemCount": len(lines),
               "outputFormat": "DYNAMODB_JSON", "manifestFilesS3Key": f"{base}/manifest-files.json"}
    s3.put_object(Bucket=bucket, Key=f"{base}/manifest-summary.json", Body=json.dumps(summary).encode())
    return f"{base}/manifest-summary.json"


def lake_rows(s3: Any, bucket: str) -> list[dict[str, Any]]:
    rows = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="orders/").get("Contents", []):
        assert "/backfill-" in obj["Key"] and obj["Key"].endswith(".parquet")
        rows += pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())).to_pylist()
    return rows


@pytest.fixture()
def backfill_settings(aws_settings: Settings) -> Settings:
    return with_overrides(aws_settings, lake_bucket="lake-bucket")


def test_a_full_export_is_requested_as_the_model_says_and_read_back_into_snapshot_rows(
        backfill_settings: Settings) -> None:
    clients = Clients(backfill_settings)
    clients.s3.create_bucket(Bucket="lake-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    manifest = put_export(clients.s3, "lake-bucket", "01-full", [{"Item": item("o1", "PAID")},
                                                                  {"Item": item("o2", "SHIPPED")}])
    ddb = clients.dynamodb
    with Stubber(ddb) as stub:  # Stubber checks each request's parameters against botocore's model
        stub.add_response("describe_table", {"Table": {"TableArn": TABLE_ARN, "TableName": "sales_orders"}},
                          {"TableName": "sales_orders"})
        described = {"ExportArn": f"{TABLE_ARN}/export/01-full", "ExportStatus": "IN_PROGRESS",
                     "ExportTime": EXPORT_TIME}
        stub.add_response("export_table_to_point_in_time", {"ExportDescription": described}, {
            "TableArn": TABLE_ARN, "S3Bucket": "lake-bucket", "S3Prefix": "exports", "S3BucketOwner": ACCOUNT,
            "ExportFormat": "DYNAMODB_JSON", "ExportType": "FULL_EXPORT", "S3SseAlgorithm": "AES256",
            "ClientToken": stub_any()})
        stub.add_response("describe_export", {"ExportDescription": {**described, "ExportStatus": "COMPLETED",
                                                                    "ExportManifest": manifest}},
                          {"ExportArn": described["ExportArn"]})
        result = run_backfill(clients, backfill_settings, Console(capture=True))
        stub.assert_no_pending_responses()
    rows = lake_rows(clients.s3, "lake-bucket")
    assert sorted((r["order_id"], r["status"], r["event_type"]) for r in rows) == [
        ("o1", "PAID", SNAPSHOT), ("o2", "SHIPPED", SNAPSHOT)]
    assert {r["event_ts"] for r in rows} == {datetime(2026, 11, 24, 3, 3, 51)}  # the export time, floored
    assert result.rows == 2 and result.snapshot_at == ("2026-11-24T03:03:51.640Z",)

    # Run again: the export is done and saved, so a new snapshot is asked for (a new export), not a resume.
    with Stubber(ddb) as stub:
        stub.add_client_error("describe_table", "AccessDeniedException", "no", expected_params={
            "TableName": "sales_orders"})
        with pytest.raises(Exception, match="AccessDenied"):
            run_backfill(clients, backfill_settings, Console(capture=True))


def stub_any() -> Any:
    from botocore.stub import ANY

    return ANY


def test_since_asks_for_incremental_exports_of_at_most_a_day_and_deletes_become_deleted_rows(
        backfill_settings: Settings) -> None:
    clients = Clients(backfill_settings)
    clients.s3.create_bucket(Bucket="lake-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    latest = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    since = latest - timedelta(hours=30)
    windows = export_windows(since, latest)
    assert len(windows) == 2
    ddb = clients.dynamodb
    with Stubber(ddb) as stub:
        stub.add_response("describe_continuous_backups", {"ContinuousBackupsDescription": {
            "ContinuousBackupsStatus": "ENABLED", "PointInTimeRecoveryDescription": {
                "PointInTimeRecoveryStatus": "ENABLED", "LatestRestorableDateTime": latest}}},
            {"TableName": "sales_orders"})
        for number, (start, end) in enumerate(windows):
            export_id = f"0{number}-incr"
            lines = ([{"Metadata": {"WriteTimestampMicros": {"N": "1"}}, "Keys": {"order_id": {"S": "o1"}},
                       "NewImage": item("o1", "PAID")}] if number == 0 else
                     [{"Metadata": {"WriteTimestampMicros": {"N": "2"}}, "Keys": {"order_id": {"S": "o1"}},
                       "OldImage": item("o1", "PAID")},
                      {"Keys": {"order_id": {"S": "o3"}}, "NewImage": item("o3", "DELIVERED")}])
            manifest = put_export(clients.s3, "lake-bucket", export_id, lines)
            stub.add_response("describe_table", {"Table": {"TableArn": TABLE_ARN}}, {"TableName": "sales_orders"})
            arn = f"{TABLE_ARN}/export/{export_id}"
            stub.add_response("export_table_to_point_in_time", {"ExportDescription": {"ExportArn": arn}}, {
                "TableArn": TABLE_ARN, "S3Bucket": "lake-bucket", "S3Prefix": "exports", "S3BucketOwner": ACCOUNT,
                "ExportFormat": "DYNAMODB_JSON", "ExportType": "INCREMENTAL_EXPORT", "S3SseAlgorithm": "AES256",
                "ClientToken": stub_any(), "IncrementalExportSpecification": {
                    "ExportFromTime": start, "ExportToTime": end, "ExportViewType": "NEW_AND_OLD_IMAGES"}})
            stub.add_response("describe_export", {"ExportDescription": {
                "ExportArn": arn, "ExportStatus": "COMPLETED", "ExportManifest": manifest}}, {"ExportArn": arn})
        result = run_backfill(clients, backfill_settings, Console(capture=True), since=since)
        stub.assert_no_pending_responses()
    rows = lake_rows(clients.s3, "lake-bucket")
    by = {(r["order_id"], r["event_ts"]): r for r in rows}
    first, second = (end.replace(tzinfo=None) for _, end in windows)
    assert by[("o1", first)]["status"] == "PAID" and not by[("o1", first)]["is_deleted"]
    assert by[("o1", second)]["is_deleted"]  # deleted in the second window: the later row, a delete
    assert by[("o3", second)]["status"] == "DELIVERED"
    assert result.rows == 3 and len(result.snapshot_at) == 2


def test_export_requests_are_accepted_by_moto(backfill_settings: Settings) -> None:
    clients = Clients(backfill_settings)
    clients.s3.create_bucket(Bucket="lake-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    ddb = clients.dynamodb
    arn = ddb.create_table(TableName="sales_orders", BillingMode="PAY_PER_REQUEST",
                           KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
                           )["TableDescription"]["TableArn"]
    ddb.update_continuous_backups(TableName="sales_orders",
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    full = export_request(arn, "lake-bucket", backfill_settings, Step(), client_token("t", Step(), "s"), ACCOUNT)
    described = ddb.export_table_to_point_in_time(**full)["ExportDescription"]
    assert described["ExportType"] == "FULL_EXPORT" and described["S3Prefix"] == "exports"
    assert ddb.describe_export(ExportArn=described["ExportArn"])["ExportDescription"]["ExportArn"]
    now = datetime.now(UTC)
    window = Step(since=(now - timedelta(hours=2)).isoformat(), until=(now - timedelta(hours=1)).isoformat())
    incremental = export_request(arn, "lake-bucket", backfill_settings, window, client_token("t", window, "s"))
    assert ddb.export_table_to_point_in_time(**incremental)["ExportDescription"]["ExportType"] == "INCREMENTAL_EXPORT"
    kms = export_request(arn, "lake-bucket", with_overrides(backfill_settings, kms_key_arn=f"arn:aws:kms:{REGION}:"
                                                            f"{ACCOUNT}:key/k"), Step(), "tok")
    assert (kms["S3SseAlgorithm"], kms["S3SseKmsKeyId"]) == ("KMS", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k")


def test_the_backfill_policy_is_valid_iam_and_scoped_to_its_prefixes(backfill_settings: Settings) -> None:
    document = backfill_policy(Arns.build(backfill_settings, ACCOUNT), "lake-bucket")
    clients = Clients(backfill_settings)
    created = clients.iam.create_policy(PolicyName="sales-orders-backfill", PolicyDocument=json.dumps(document))
    assert created["Policy"]["Arn"].endswith(":policy/sales-orders-backfill")
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["ExportTable"]["Action"] == ["dynamodb:DescribeContinuousBackups", "dynamodb:DescribeTable",
                                                   "dynamodb:ExportTableToPointInTime"]
    assert statements["ExportTable"]["Resource"] == [TABLE_ARN]
    assert statements["WriteExport"]["Resource"] == ["arn:aws:s3:::lake-bucket/exports/*"]
    assert statements["WriteExport"]["Action"] == ["s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl"]
    assert statements["WriteSnapshotRows"]["Resource"] == ["arn:aws:s3:::lake-bucket/orders/*",
                                                           "arn:aws:s3:::lake-bucket/errors/backfill-failed/*"]
    assert all(r != "*" for s in document["Statement"] for r in s["Resource"])


def test_make_backfill_policy_prints_the_policy_for_this_configuration(aws_settings: Settings,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """POLICY=1 prints the identity policy (for the deploying admin to attach) and starts no export."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("STATE_DIR", str(aws_settings.state_dir))
    monkeypatch.setenv("KMS_KEY_ARN", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k")
    result = CliRunner().invoke(app, ["backfill", "--target", "aws", "--policy"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    expected = with_overrides(aws_settings, kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k")
    assert printed == backfill_policy(Arns.build(expected, ACCOUNT), expected.lake_bucket_for(ACCOUNT),
                                      expected.kms_key_arn)
    assert "UseLakeKey" in {s["Sid"] for s in printed["Statement"]}
    assert not (aws_settings.state_dir / "backfill").exists()  # no backfill began
