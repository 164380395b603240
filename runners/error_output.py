"""Firehose's error output as AWS documents it, and `make errors`: every error record with its reason.

What a record that failed looks like, per error-output type (the folder `!{firehose:error-output-type}`
names under the ErrorOutputPrefix):

- `processing-failed`: the Lambda processor failed the record. Fields, exactly: attemptsMade,
  arrivalTimestamp, errorCode, errorMessage, attemptEndingTimestamp, rawData (the original record,
  base64), lambdaArn
  (https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html).
  errorCode and errorMessage are the Lambda invocation error's
  (https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-logs.html#lambda-invocation-errors:
  Lambda.InvokeAccessDenied, Lambda.JsonProcessingException, Lambda.InvokeLimitExceeded,
  Lambda.DuplicatedRecordId, Lambda.MissingRecordId, Lambda.ResourceNotFound and the VPC ones, each
  with its documented message). A record the function itself answered `ProcessingFailed` carries
  Lambda.ProcessingFailedStatus and a fixed message: AWS leaves the function's reason where the
  function wrote it, its CloudWatch Logs group (the same page: "you can emit error logs to Amazon
  CloudWatch Logs from your Lambda function"). That code, its message, Lambda.FunctionError and
  Lambda.FunctionTimedOut are what AWS writes in users' error objects, but no page we could retrieve
  prints them (tests/fixtures/aws_docs/firehose_lambda_invocation_errors.json keeps them apart as
  `observed`). An invoke failure no page names keeps Lambda's exception name under the documented
  prefix, as the documented VPC codes do (Lambda.ENILimitReachedException): Lambda.ServiceException.
- `format-conversion-failed`: Parquet conversion refused the record (the Lambda's output). Fields,
  exactly: attemptsMade, arrivalTimestamp, lastErrorCode, lastErrorMessage, attemptEndingTimestamp,
  rawData, sequenceNumber, subSequenceNumber, dataCatalogTable {catalogId, databaseName, tableName,
  region, versionId, catalogArn}
  (https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html; the
  page has also been served spelling the two error fields ErrorCode / ErrorMessage, see the fixture).
- `activePartitionExceeded`: records beyond the stream's active partitions (500)
  (https://docs.aws.amazon.com/firehose/latest/dev/buffering.html). AWS documents the folder, not the
  fields; the processing-failed shape is used. A record whose partition keys are missing (the
  prefix cannot be evaluated) goes "to the S3 error bucket prefix, organized based on the error type"
  (https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-error-handling.html) without a
  documented folder name: it goes to `processing-failed`, a documented error-output type
  (https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html), since the keys are the Lambda's.
- `pipe-dead-letter`: the pipe runner's local dead letters (runners/pipe.py explains why they are
  in S3 locally and in the SQS queue of DeadLetterConfig on AWS).

`list_errors` lists the records of every type from the lake bucket and joins each with its reason:
the error object's own message, except for Lambda.ProcessingFailedStatus, whose reason is the
transform's log line in /aws/lambda/<function> (the same group name on AWS and in the emulator).
The error object has no recordId, so the transform logs what identifies the record in it: the
SHA-256 of the record's data (the object's rawData, decoded), its arrival time and its Kinesis
position; the log group is read with FilterLogEvents over the records' time window
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from common.aws import Clients, error_code
from common.config import Settings
from runners.pipe import DEAD_LETTER_OUTPUT

PROCESSING_FAILED = "processing-failed"
FORMAT_CONVERSION_FAILED = "format-conversion-failed"
ACTIVE_PARTITION_EXCEEDED = "activePartitionExceeded"
FIREHOSE_OUTPUT_TYPES = (PROCESSING_FAILED, FORMAT_CONVERSION_FAILED, ACTIVE_PARTITION_EXCEEDED)
OUTPUT_TYPES = (*FIREHOSE_OUTPUT_TYPES, DEAD_LETTER_OUTPUT)

PROCESSING_FAILED_FIELDS = ("attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage", "attemptEndingTimestamp",
                            "rawData", "lambdaArn")
FORMAT_CONVERSION_FAILED_FIELDS = ("attemptsMade", "arrivalTimestamp", "lastErrorCode", "lastErrorMessage",
                                   "attemptEndingTimestamp", "rawData", "sequenceNumber", "subSequenceNumber",
                                   "dataCatalogTable")
DATA_CATALOG_TABLE_FIELDS = ("catalogId", "databaseName", "tableName", "region", "versionId", "catalogArn")

# The Lambda invocation errors AWS documents, with their messages (monitoring-with-cloudwatch-logs.html).
ASSUME_ROLE_ACCESS_DENIED = "Lambda.AssumeRoleAccessDenied"
INVOKE_ACCESS_DENIED = "Lambda.InvokeAccessDenied"
JSON_PROCESSING_EXCEPTION = "Lambda.JsonProcessingException"
INVOKE_LIMIT_EXCEEDED = "Lambda.InvokeLimitExceeded"
DUPLICATED_RECORD_ID = "Lambda.DuplicatedRecordId"
MISSING_RECORD_ID = "Lambda.MissingRecordId"
RESOURCE_NOT_FOUND = "Lambda.ResourceNotFound"
DOCUMENTED_MESSAGES = {
    ASSUME_ROLE_ACCESS_DENIED: "Access was denied. Ensure that the trust policy for the provided IAM role allows "
                               "Kinesis Data Firehose to assume the role.",
    INVOKE_ACCESS_DENIED: "Access was denied. Ensure that the access policy allows access to the Lambda function.",
    JSON_PROCESSING_EXCEPTION: "There was an error parsing returned records from the Lambda function. Ensure that the "
                               "returned records follow the status model required by Kinesis Data Firehose.",
    INVOKE_LIMIT_EXCEEDED: "The Lambda concurrent execution limit is exceeded. Increase the concurrent execution "
                           "limit.",
    DUPLICATED_RECORD_ID: "Multiple records were returned with the same record ID. Ensure that the Lambda function "
                          "returns unique record IDs for each record.",
    MISSING_RECORD_ID: "One or more record IDs were not returned. Ensure that the Lambda function returns all "
                       "received record IDs.",
    RESOURCE_NOT_FOUND: "The specified Lambda function does not exist. Use a different function that does exist.",
    "Lambda.InvalidSubnetIDException": "The specified subnet ID in the Lambda function VPC configuration is invalid. "
                                       "Ensure that the subnet ID is valid.",
    "Lambda.InvalidSecurityGroupIDException": "The specified security group ID in the Lambda function VPC "
                                              "configuration is invalid. Ensure that the security group ID is valid.",
    "Lambda.SubnetIPAddressLimitReachedException": "AWS Lambda was not able to set up the VPC access for the Lambda "
                                                   "function because one or more configured subnets have no available "
                                                   "IP addresses. Increase the IP address limit.",
    "Lambda.ENILimitReachedException": "AWS Lambda was not able to create an Elastic Network Interface (ENI) in the "
                                       "VPC, specified as part of the Lambda function configuration, because the "
                                       "limit for network interfaces has been reached. Increase the network "
                                       "interface limit.",
}
# Lambda's Invoke exception -> the Firehose code, where the two names differ (API_Invoke.html errors).
_INVOKE_EXCEPTIONS = {
    "AccessDeniedException": INVOKE_ACCESS_DENIED,
    "ResourceNotFoundException": RESOURCE_NOT_FOUND,
    "TooManyRequestsException": INVOKE_LIMIT_EXCEEDED,
}
# What AWS writes but no retrievable page prints (the fixture keeps them under `observed`).
PROCESSING_FAILED_STATUS = "Lambda.ProcessingFailedStatus"
PROCESSING_FAILED_STATUS_MESSAGE = "ProcessingFailed status set for record"
FUNCTION_ERROR = "Lambda.FunctionError"
FUNCTION_TIMED_OUT = "Lambda.FunctionTimedOut"
FUNCTION_TIMED_OUT_MESSAGE = ("The Lambda function invocation timed out. Increase the Timeout setting in the Lambda "
                              "function.")
# Codes of this runner where AWS documents none (listed in common/deviations.py).
CONVERSION_INVALID_SCHEMA = "DataFormatConversion.InvalidSchema"
PARTITION_KEY_MISSING = "DynamicPartitioning.MissingKey"
ACTIVE_PARTITIONS_EXCEEDED_CODE = "DynamicPartitioning.ActivePartitionExceeded"

LOG_SLACK_MS = 60_000  # the log group is read from the first arrival to the last attempt's end, plus this
LOG_PAGES_MAX = 200


def invoke_error(exception_name: str) -> tuple[str, str]:
    """Lambda's Invoke exception -> (Firehose's code, its documented message, or the exception name)."""
    code = _INVOKE_EXCEPTIONS.get(exception_name, f"Lambda.{exception_name}")
    return code, DOCUMENTED_MESSAGES.get(code, exception_name)


def function_error_code(payload: bytes) -> tuple[str, str]:
    """A function error (Invoke's FunctionError) -> FunctionTimedOut, or FunctionError with Lambda's message."""
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return FUNCTION_ERROR, payload[:300].decode(errors="replace")
    kind, message = str(answer.get("errorType") or ""), str(answer.get("errorMessage") or "")
    if kind == "Sandbox.Timedout" or "Task timed out" in message:
        return FUNCTION_TIMED_OUT, FUNCTION_TIMED_OUT_MESSAGE
    return FUNCTION_ERROR, f"{kind}: {message}" if kind else message


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def processing_failed_record(*, attempts: int, arrival: datetime, code: str, message: str, ended: datetime,
                             raw: bytes, lambda_arn: str) -> dict[str, Any]:
    """One processing-failed (or activePartitionExceeded) record: the documented fields, in their order."""
    return {
        "attemptsMade": attempts,
        "arrivalTimestamp": epoch_ms(arrival),
        "errorCode": code,
        "errorMessage": message,
        "attemptEndingTimestamp": epoch_ms(ended),
        "rawData": base64.b64encode(raw).decode(),
        "lambdaArn": lambda_arn,
    }


def data_catalog_table(*, catalog_id: str, database: str, table: str, region: str, version: str = "LATEST",
                       partition: str = "aws") -> dict[str, Any]:
    """The dataCatalogTable of a format-conversion-failed record: the table the conversion read."""
    return {
        "catalogId": catalog_id,
        "databaseName": database,
        "tableName": table,
        "region": region,
        "versionId": version,
        "catalogArn": f"arn:{partition}:glue:{region}:{catalog_id}:catalog",
    }


def format_conversion_failed_record(*, attempts: int, arrival: datetime, code: str, message: str, ended: datetime,
                                    raw: bytes, sequence_number: str, subsequence_number: int,
                                    table: dict[str, Any]) -> dict[str, Any]:
    """One format-conversion-failed record: the documented fields, in their order."""
    return {
        "attemptsMade": attempts,
        "arrivalTimestamp": epoch_ms(arrival),
        "lastErrorCode": code,
        "lastErrorMessage": message,
        "attemptEndingTimestamp": epoch_ms(ended),
        "rawData": base64.b64encode(raw).decode(),
        "sequenceNumber": sequence_number,
        "subSequenceNumber": subsequence_number,
        "dataCatalogTable": table,
    }


def json_line(record: dict[str, Any]) -> bytes:
    """The JSON line Firehose writes per failed record."""
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def data_digest(raw: bytes) -> str:
    """What the transform logs to identify a record: the SHA-256 of its data (hex)."""
    return hashlib.sha256(raw).hexdigest()


# --- make errors --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorRecord:
    """One failed record, where it lies, and why it failed."""

    output: str  # the error-output type (its folder)
    key: str  # the S3 object holding it
    code: str
    message: str  # as the error object says
    reason: str  # the record's own reason: from the Lambda's log group, or the message
    reason_from: str  # where the reason was read: the log group's name, or "error object"
    raw: bytes  # the record's data as the object keeps it (for a dead letter: its events)
    arrival: datetime | None
    document: dict[str, Any]

    def line(self) -> str:
        when = self.arrival.strftime("%Y-%m-%dT%H:%M:%SZ") if self.arrival else "-"
        return f"{when} {self.output} {self.code}: {self.reason} [{self.key}]"


def log_group_of(function: str) -> str:
    """The CloudWatch Logs group Lambda writes a function's output to: /aws/lambda/<FunctionName>."""
    parts = function.split(":")
    name = parts[6] if function.startswith("arn:") and len(parts) > 6 else function
    return f"/aws/lambda/{name}"


def error_lines(body: bytes, key: str) -> list[dict[str, Any]]:
    """The JSON lines of one Firehose error-output object (gzip when its name says so)."""
    text = gzip.decompress(body) if key.endswith(".gz") else body
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from (obj["Key"] for obj in page.get("Contents", []))


def _raw(document: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(document.get("rawData", ""), validate=True)
    except (binascii.Error, ValueError, TypeError):
        return b""


def _arrival(milliseconds: Any) -> datetime | None:
    return datetime.fromtimestamp(milliseconds / 1000, UTC) if isinstance(milliseconds, int | float) else None


def read_error_records(s3: Any, bucket: str, error_prefix: str) -> list[ErrorRecord]:
    """Every record of every error-output type under the prefix (replayed ones, under redriven/, excluded)."""
    found: list[ErrorRecord] = []
    for output in FIREHOSE_OUTPUT_TYPES:
        for key in _keys(s3, bucket, f"{error_prefix}{output}/"):
            for doc in error_lines(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), key):
                code = str(doc.get("errorCode", doc.get("lastErrorCode", doc.get("ErrorCode", ""))))
                message = str(doc.get("errorMessage", doc.get("lastErrorMessage", doc.get("ErrorMessage", ""))))
                found.append(ErrorRecord(output, key, code, message, message, "error object", _raw(doc),
                                         _arrival(doc.get("arrivalTimestamp")), doc))
    for key in _keys(s3, bucket, f"{error_prefix}{DEAD_LETTER_OUTPUT}/"):
        letter = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        condition = str(letter.get("context", {}).get("condition", ""))
        code = str(letter.get("errorCode") or condition)
        message = str(letter.get("errorMessage") or condition)
        events = letter.get("originalEvents")
        raw = json.dumps(events, ensure_ascii=False).encode() if events is not None else b""
        when = str(letter.get("timestamp", ""))
        try:
            arrival = datetime.strptime(when, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            arrival = None
        found.append(ErrorRecord(DEAD_LETTER_OUTPUT, key, code, message, message, "error object", raw, arrival,
                                 letter))
    return found


def reasons_from_log_events(events: list[dict[str, Any]]) -> dict[str, list[tuple[int | None, str]]]:
    """data digest -> [(the record's arrival ms, reason)] from the transform's JSON failure lines."""
    found: dict[str, list[tuple[int | None, str]]] = {}
    for event in events:
        message = event.get("message")
        if not isinstance(message, str) or not message.startswith("{"):
            continue
        try:
            line = json.loads(message)
        except ValueError:
            continue
        if not isinstance(line, dict):
            continue
        digest, reason = line.get("dataSha256"), line.get("reason")
        if isinstance(digest, str) and isinstance(reason, str):
            arrival = line.get("approximateArrivalTimestamp")
            found.setdefault(digest, []).append((arrival if isinstance(arrival, int) else None, reason))
    return found


def _pick(candidates: list[tuple[int | None, str]], arrival_ms: Any) -> str:
    """The reason logged for the same data arriving at the same time (else the closest one)."""
    if not isinstance(arrival_ms, int):
        return candidates[-1][1]
    return min(candidates, key=lambda c: abs((c[0] if c[0] is not None else 0) - arrival_ms))[1]


def read_reasons(logs: Any, group: str, records: list[ErrorRecord]) -> tuple[dict[str, list[tuple[int | None, str]]],
                                                                             str]:
    """The transform's logged reasons over the records' time window; ('', problem) when unreadable."""
    starts = [r.document.get("arrivalTimestamp") for r in records]
    ends = [r.document.get("attemptEndingTimestamp") for r in records]
    request: dict[str, Any] = {"logGroupName": group, "filterPattern": '"dataSha256"'}
    if all(isinstance(t, int) for t in starts + ends):
        request.update(startTime=min(starts) - LOG_SLACK_MS, endTime=max(ends) + LOG_SLACK_MS)
    found: dict[str, list[tuple[int | None, str]]] = {}
    try:
        for _page in range(LOG_PAGES_MAX):
            page = logs.filter_log_events(**request)
            for digest, reasons in reasons_from_log_events(page.get("events", [])).items():
                found.setdefault(digest, []).extend(reasons)
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
    except (ClientError, BotoCoreError) as exc:
        return found, error_code(exc) or type(exc).__name__
    return found, ""


def join_reasons(records: list[ErrorRecord], logs: Any, group: str) -> list[ErrorRecord]:
    """Each ProcessingFailedStatus record with the reason its function logged; the others as they are."""
    wanted = [r for r in records if r.code == PROCESSING_FAILED_STATUS]
    if not wanted:
        return records
    found, problem = read_reasons(logs, group, wanted)
    joined = []
    for record in records:
        if record.code == PROCESSING_FAILED_STATUS:
            candidates = found.get(data_digest(record.raw))
            if candidates:
                record = _with_reason(record, _pick(candidates, record.document.get("arrivalTimestamp")), group)
            else:
                why = f"could not be read from {group} ({problem})" if problem else f"is not in {group}"
                record = _with_reason(record, f"{record.message}; the function's reason {why}", "")
        joined.append(record)
    return joined


def _with_reason(record: ErrorRecord, reason: str, source: str) -> ErrorRecord:
    return ErrorRecord(record.output, record.key, record.code, record.message, reason, source, record.raw,
                       record.arrival, record.document)


def list_errors(clients: Clients, settings: Settings) -> list[ErrorRecord]:
    """Every error record of every type, oldest first, each joined with its reason (on every target)."""
    bucket = settings.lake_bucket_for(clients.account_id)
    records = read_error_records(clients.s3, bucket, settings.error_prefix)
    records = join_reasons(records, clients.client("logs"), log_group_of(settings.lambda_name))
    return sorted(records, key=lambda r: (r.arrival or datetime.min.replace(tzinfo=UTC), r.key))


def summarize(records: list[ErrorRecord]) -> str:
    """One line: how many records per error-output type and code, e.g. for `make errors`."""
    if not records:
        return "no error records"
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        per_code = counts.setdefault(record.output, {})
        per_code[record.code] = per_code.get(record.code, 0) + 1
    parts = []
    for output, per_code in counts.items():
        codes = ", ".join(f"{code} {n:,}" for code, n in sorted(per_code.items()))
        parts.append(f"{sum(per_code.values()):,} {output} ({codes})")
    return f"{len(records):,} error record(s): " + "; ".join(parts)
