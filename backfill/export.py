"""The `aws` target's backfill: DynamoDB's export to S3, read back into lake rows.

- Full: ExportTableToPointInTime (point-in-time recovery is on: bootstrap/resources/dynamodb.py) into
  the lake bucket under BACKFILL_EXPORT_PREFIX, outside the table's location, so no reader sees the
  export's own files. The export is a consistent snapshot at its ExportTime, the time its rows carry.
- SINCE: ExportType INCREMENTAL_EXPORT, NEW_AND_OLD_IMAGES, from SINCE to the table's latest restorable
  time (DescribeContinuousBackups), in windows of at most 24 h; each window's rows carry its end (the
  export is the table's state just before it), and an item deleted in the window becomes a deleted row.
- Each export's data files are the run's segments: a file is checkpointed once its objects are in S3.
  The request carries a ClientToken derived from the run, so asking again after a crash (before the
  export's ARN was saved) returns the same export instead of starting a second one.
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ExportTableToPointInTime.html
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backfill.core import (
    Converted,
    Segment,
    Step,
    chunks,
    export_line_row,
    export_windows,
    iso,
    parse_time,
    snapshot_id,
)
from backfill.lake_out import LakeOut
from backfill.state import ProgressStore
from common.aws import Clients
from common.config import Settings
from common.errors import TerminalError, TransientError
from transform.handler import RecordError

POLL_S = 10.0  # DescribeExport while IN_PROGRESS (an export takes minutes at least)
EXPORT_TIMEOUT_S = 6 * 3600


def table_arn(clients: Clients, settings: Settings) -> str:
    return clients.dynamodb.describe_table(TableName=settings.table_name)["Table"]["TableArn"]


def client_token(table: str, step: Step, started: str) -> str:
    """Stable per run and step: a repeated request returns the export it started (valid 8 h on AWS)."""
    return hashlib.sha256(f"{table}|{started}|{step.since}|{step.until}".encode()).hexdigest()[:32]


def export_request(arn: str, bucket: str, settings: Settings, step: Step, token: str,
                   owner: str = "") -> dict[str, Any]:
    """Pure: the ExportTableToPointInTime parameters of one step (full, or one incremental window)."""
    request: dict[str, Any] = {
        "TableArn": arn, "S3Bucket": bucket, "S3Prefix": settings.backfill_export_prefix.rstrip("/"),
        "ExportFormat": "DYNAMODB_JSON", "ClientToken": token,
    }
    if owner:
        request["S3BucketOwner"] = owner
    if settings.kms_key_arn:
        request.update(S3SseAlgorithm="KMS", S3SseKmsKeyId=settings.kms_key_arn)
    else:
        request["S3SseAlgorithm"] = "AES256"
    if step.since:
        request["ExportType"] = "INCREMENTAL_EXPORT"
        request["IncrementalExportSpecification"] = {
            "ExportFromTime": parse_time("SINCE", step.since), "ExportToTime": parse_time("SINCE", step.until),
            "ExportViewType": "NEW_AND_OLD_IMAGES"}
    else:
        request["ExportType"] = "FULL_EXPORT"
    return request


def latest_restorable(clients: Clients, settings: Settings) -> datetime:
    """The newest time an export may reach (PITR lags real time by a few minutes)."""
    backups = clients.dynamodb.describe_continuous_backups(TableName=settings.table_name)
    pitr = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED" or "LatestRestorableDateTime" not in pitr:
        raise TerminalError(f"point-in-time recovery is off on {settings.table_name}; `make deploy-aws` turns it on "
                            "(an export needs it)")
    return pitr["LatestRestorableDateTime"].astimezone(UTC)


def export_steps(clients: Clients, settings: Settings, since: datetime | None) -> tuple[Step, ...]:
    if since is None:
        return (Step(),)
    return tuple(Step(since=a.isoformat(), until=b.isoformat())
                 for a, b in export_windows(since, latest_restorable(clients, settings)))


def manifest_files(summary: dict[str, Any], files_text: str) -> tuple[str, ...]:
    """Pure: the data files an export wrote, from manifest-summary.json and manifest-files.json (a JSON per line)."""
    keys = []
    for number, line in enumerate(files_text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            keys.append(str(json.loads(line)["dataFileS3Key"]))
        except (ValueError, KeyError, TypeError):
            raise TerminalError(f"manifest-files.json line {number}: no dataFileS3Key; "
                                "point BACKFILL_EXPORT_PREFIX at a DynamoDB export") from None
    if summary.get("itemCount") is not None and not keys and summary["itemCount"]:
        raise TerminalError("the export's manifest lists no data file but counts items; read it again later")
    return tuple(keys)


def _read(clients: Clients, bucket: str, key: str) -> bytes:
    return clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # botocore retries it


def start_export(clients: Clients, settings: Settings, store: ProgressStore, index: int, bucket: str) -> Step:
    """Ask for the step's export (or find it again by its ClientToken), wait for it, and list its files."""
    step = store.progress.steps[index]
    if not step.export_arn:
        token = client_token(settings.table_name, step, store.progress.started)
        request = export_request(table_arn(clients, settings), bucket, settings, step, token, clients.account_id)
        described = clients.dynamodb.export_table_to_point_in_time(**request)["ExportDescription"]
        step = store.update_step(index, replace(step, export_arn=described["ExportArn"])).steps[index]
    described = wait_for_export(clients, step.export_arn)
    if not step.since:
        at = described.get("ExportTime") or described.get("StartTime")
        if not isinstance(at, datetime):
            raise TerminalError(f"DescribeExport of {step.export_arn} names no ExportTime; the snapshot rows need "
                                "it: run `make backfill` again once the export shows it")
        step = replace(step, at=at.astimezone(UTC).isoformat())
    else:
        step = replace(step, at=step.until)
    summary = json.loads(_read(clients, bucket, described["ExportManifest"]))
    files_key = summary.get("manifestFilesS3Key") or described["ExportManifest"].replace("manifest-summary.json",
                                                                                          "manifest-files.json")
    files = manifest_files(summary, _read(clients, bucket, files_key).decode("utf-8"))
    step = replace(step, files=files, total_segments=len(files) or 1,
                   segments=step.segments if files else {0: Segment(done=True)})
    return store.update_step(index, step).steps[index]


def wait_for_export(clients: Clients, arn: str, sleep: Callable[[float], None] = time.sleep,
                    timeout_s: float = EXPORT_TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described = clients.dynamodb.describe_export(ExportArn=arn)["ExportDescription"]
        status = described.get("ExportStatus")
        if status == "COMPLETED":
            return described
        if status == "FAILED":
            raise TerminalError(f"export {arn} failed: {described.get('FailureCode', '')} "
                                f"{described.get('FailureMessage', '')}".strip())
        if time.monotonic() > deadline:
            raise TransientError(f"export {arn} is still {status} after {timeout_s / 3600:.0f} h; "
                                 "run `make backfill` again later to go on waiting")
        sleep(POLL_S)


def convert_file(body: bytes, at: datetime, read_ms: int) -> Converted:
    """Pure: one gzip data file of DynamoDB JSON lines -> rows (and the lines the contract refuses)."""
    rows, failed = [], []
    text = gzip.decompress(body).decode("utf-8") if body[:2] == b"\x1f\x8b" else body.decode("utf-8")
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line, parse_float=Decimal)
            rows.append(export_line_row(parsed, at, read_ms, snapshot_id(at)))
        except (RecordError, ValueError) as exc:
            failed.append(({"line": line[:2000]}, str(exc)))
    return Converted(rows, failed)


def run_exports(clients: Clients, settings: Settings, out: LakeOut, store: ProgressStore,
                on_items: Callable[[int], None]) -> None:
    """Every step in order: its export, then each data file not yet saved, in pages of BACKFILL_PAGE_ITEMS."""
    bucket = out.bucket
    for index in range(len(store.progress.steps)):
        step = store.progress.steps[index]
        if step.done:
            continue
        if not step.files and not step.total_segments:
            step = start_export(clients, settings, store, index, bucket)
        at = parse_time("snapshot", step.at)
        for number, key in enumerate(step.files):
            if step.segment(number).done:
                continue
            converted = convert_file(_read(clients, bucket, key), at, int(time.time() * 1000))
            pages = chunks(converted.rows, settings.backfill_page_items)
            unfit = sum(out.write_page(at, number, page, rows, converted.failed if page == 0 else [])
                        for page, rows in enumerate(pages))
            store.update_segment(index, number, Segment(next_page=len(pages), done=True,
                                                        items=len(converted.rows) - unfit,
                                                        failed=len(converted.failed) + unfit))
            on_items(len(converted.rows) + len(converted.failed))
            step = store.progress.steps[index]


def describe(step: Step) -> str:
    if step.since:
        return f"incremental export {iso(parse_time('SINCE', step.since))} to {iso(parse_time('SINCE', step.until))}"
    return "full export"
