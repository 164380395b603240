"""Firehose runner: Kinesis -> transform Lambda (Invoke API) -> per-partition buffers -> S3.

Mirrors Kinesis Data Firehose with a Kinesis source, a Lambda processor and dynamic partitioning:
- a shard with no checkpoint starts where the delivery stream started reading: at LATEST as of its
  creation ("Amazon Data Firehose starts reading data from the LATEST position of your Kinesis stream",
  writing-with-kinesis-streams.html). The bootstrap recorded that position in the runner's spec (each
  shard's last sequence number, bootstrap/resources/local.py), so the runner delivers what was written
  after the delivery stream was created and nothing before, whenever it first starts, and a restart
  before its first checkpoint skips nothing. A shard empty then, or created since, starts at
  TRIM_HORIZON; so does every shard after an unreadable checkpoint (duplicates, never a skip);
- records are batched for the Lambda as Firehose buffers them: "Firehose buffers incoming data" up to
  the processor's BufferSizeInMBs (0.2-3 MB, default 1) or BufferIntervalInSeconds (0-900 s, default 60)
  "then invokes the specified Lambda function synchronously with each buffered batch"
  (data-transformation.html). So each time BufferSizeInMBs of record data is buffered, one invocation
  carries that much (a single larger record goes alone); what is left is invoked once its oldest record
  has waited BufferIntervalInSeconds, or at a graceful stop; each payload stays under Lambda's 6 MB;
- the invocations run on a thread of their own, one at a time and in order, and the pass waits for
  them; meanwhile a destination buffer that falls due is written on time, not behind the invoke (the
  loop, runners/loop.py, also wakes between reads for it), and the shards are read as often as their
  limit allows (those records wait for the next invoke). A record enters its destination buffer when it
  leaves the processor's buffer by the rules above (its read + the processor's interval, or earlier in
  a full batch), not when this loop gets round to routing it; the buffer's interval counts from there;
- an invocation may run as long as the function's Timeout (LAMBDA_TIMEOUT_S, at most Firehose's 5
  minutes, data-transformation.html "Lambda invocation duration"): the Lambda client waits that long
  plus a margin, so a slow function answers, and one that runs out of time answers as Lambda does
  (Sandbox.Timedout); either timeout is retried like any transient failure, then its records are
  processing-failed with Lambda.FunctionTimedOut;
- a failed invoke is retried by one policy, `InvokeRetry`, and nothing else (the Lambda client
  makes one attempt per call, no retry decorator). AWS documents that an invocation failing on a
  network timeout or on the Lambda invocation limit is retried three times by default, after which
  the batch is skipped and its records are treated as unsuccessfully processed (processing-failed)
  (data-transformation-failure-handling.html); the count is the Lambda processor's NumberOfRetries
  parameter, default 3 (API_ProcessorParameter.html). So only transient failures are retried:
  throttling (TooManyRequestsException, any 429), Lambda's 5xx (ServiceException, the EC2/ENI
  errors), a function still being updated, the network (connect and read timeouts), and an
  Unhandled function error, which is how a timed-out function answers; a failure another attempt
  cannot fix (no such function, a request Lambda refuses, a Handled error, an answer that is not
  JSON) fails the batch at once. Between attempts it waits with exponential backoff and full jitter,
  base 1 s doubling, capped at 20 s (botocore's standard retry mode for throttling; the AWS SDKs'
  retry behaviour, sdkref feature-retry-behavior.html, and the Builders' Library article on backoff
  with jitter). AWS documents neither its wait between Lambda retries nor a retry duration for the
  processor (only that one invocation may last up to 5 minutes, data-transformation.html), so
  NumberOfRetries alone bounds the window. One exception: when every attempt found the endpoint itself
  unreachable (connection refused: the emulator is down or restarting), the pass fails instead, and the
  loop reads the batch again once it answers (Firehose runs inside AWS, so an outage of the emulated
  cloud is not its function failing, and nothing goes to the error output for it). The sleep and the
  jitter draw are injectable: tests never wait;
- the Lambda's answer is checked (every recordId once, result Ok / Dropped / ProcessingFailed,
  base64 data, metadata.partitionKeys), anything else is processing-failed;
- failed records go to the error output with the fields and codes AWS documents per error-output
  type (runners/error_output.py): an invoke that fails carries its Lambda invocation error
  (Lambda.InvokeLimitExceeded, Lambda.FunctionTimedOut, ...), an answer outside the status model
  Lambda.JsonProcessingException, Lambda.MissingRecordId or Lambda.DuplicatedRecordId, and a record
  the transform marked ProcessingFailed Lambda.ProcessingFailedStatus with AWS's fixed message: its
  own reason stays where AWS leaves it, in the function's log group /aws/lambda/<FunctionName>, where
  `make errors` (error_output.list_errors) reads it back;
- transformed rows are buffered per evaluated prefix by BufferingHints, at most 500 active
  partitions (beyond: to the error output as activePartitionExceeded, buffering.html; a record
  whose partition keys are missing goes to processing-failed, dynamic-partitioning-error-handling.html);
- objects are named as Firehose names them, with the delivery stream's version (one more per update,
  basic-create.html; the bootstrap counts it in the runner's spec); the checkpoint moves only past
  records in S3.
https://docs.aws.amazon.com/firehose/latest/dev/writing-with-kinesis-streams.html
https://docs.aws.amazon.com/firehose/latest/dev/basic-create.html
https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html
https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html
https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-logs.html#lambda-invocation-errors
https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html
https://docs.aws.amazon.com/firehose/latest/APIReference/API_ProcessorParameter.html
https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (its errors and status codes)
https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/
https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html
https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from botocore.exceptions import ClientError, EndpointConnectionError, HTTPClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from common.aws import Clients
from common.retry import TRANSIENT_CODES, Backoff, error_code, retry_call
from lake.encoding import decode_rows, encode_fitting, encode_jsonl_gzip, parquet_bytes, table_from_lines
from lake.glue_schema import TableSchema
from lake.keys import PartitionKeyError, evaluate_prefix, object_name
from runners.buffers import BufferSet, InFlight, SourceRef
from runners.checkpoint import Checkpoint
from runners.error_output import (
    ACTIVE_PARTITION_EXCEEDED,
    ACTIVE_PARTITIONS_EXCEEDED_CODE,
    CONVERSION_INVALID_SCHEMA,
    DOCUMENTED_MESSAGES,
    DUPLICATED_RECORD_ID,
    FORMAT_CONVERSION_FAILED,
    FUNCTION_TIMED_OUT,
    FUNCTION_TIMED_OUT_MESSAGE,
    JSON_PROCESSING_EXCEPTION,
    MISSING_RECORD_ID,
    PARTITION_KEY_MISSING,
    PROCESSING_FAILED,
    PROCESSING_FAILED_STATUS,
    PROCESSING_FAILED_STATUS_MESSAGE,
    data_catalog_table,
    format_conversion_failed_record,
    function_error_code,
    invoke_error,
    json_line,
    processing_failed_record,
)
from runners.firehose_config import LAMBDA_SYNC_PAYLOAD_MAX, FirehoseConfig
from runners.loop import Stats
from runners.shards import KINESIS_READS_PER_SHARD_S as KINESIS_READS_PER_SHARD_S  # bench reads it from here
from runners.shards import KinesisStreamApi, ReadsShards, ShardReader

FIREHOSE_MAX_INVOKE_S = 300  # Firehose supports a Lambda invocation of up to 5 minutes (data-transformation.html)
INVOKE_READ_MARGIN_S = 10  # beyond the function's timeout, for Lambda to answer that it timed out
VALID_RESULTS = ("Ok", "Dropped", "ProcessingFailed")
# Invoke errors another attempt may fix (API_Invoke.html): throttling, Lambda's own 5xx, a function
# that is being updated or whose network is not ready yet. Any 5xx status counts too.
TRANSIENT_INVOKE_CODES = TRANSIENT_CODES | frozenset({
    "ServiceException", "EC2ThrottledException", "EC2UnexpectedException", "ENILimitReachedException",
    "SubnetIPAddressLimitReachedException", "ResourceNotReadyException", "ResourceConflictException",
    "EFSMountConnectivityException", "EFSMountTimeoutException", "SnapStartTimeoutException",
    "SnapStartNotReadyException",
})


INVOKE_BACKOFF = Backoff(base_s=1.0, cap_s=20.0)
MIN_WAIT_S = 0.005  # the shortest wait on a running invoke before looking at the buffers again
# Writing an object: botocore retries each PutObject; on top, Firehose's own delivery retry ("If data delivery
# to your Amazon S3 bucket fails, Amazon Data Firehose retries to deliver data", basic-deliver.html) keeps
# the buffers rather than failing the pass, which would read, invoke and convert all of them again. For these
# few attempts only, not the spec's RetryOptions.DurationInSeconds: a deviation (common/deviations.py).
S3_DELIVERY_ATTEMPTS = 6
S3_DELIVERY_BACKOFF = Backoff(base_s=0.2, cap_s=5.0)


def _retry_delivery(exc: BaseException) -> bool:
    return isinstance(exc, EndpointConnectionError) or error_code(exc) in TRANSIENT_CODES


@dataclass(frozen=True)
class InvokeRetry:
    """The one retry policy of a Lambda invoke: `retries` more attempts, with common/retry.py's full-jitter
    backoff (base 1 s doubling, capped at 20 s)."""

    retries: int  # the Lambda processor's NumberOfRetries
    backoff: Backoff = INVOKE_BACKOFF

    def delay(self, retry: int, draw: float) -> float:
        """The wait before retry number `retry` + 1: `draw` (uniform in [0, 1)) times min(cap, base * 2**retry)."""
        return self.backoff.delay(retry, draw)


@dataclass(frozen=True)
class InvokeFailure:
    """Why one invoke attempt failed, and whether another attempt may succeed."""

    code: str
    message: str
    transient: bool
    # The endpoint could not be reached at all (connection refused): the emulated cloud itself is down, not the
    # function. When that outlasts the retries, the pass fails and the batch is read again once it is back,
    # instead of going to the error output (Firehose runs inside AWS: an outage of AWS is not its Lambda's).
    unreachable: EndpointConnectionError | None = None


def invoke_failure(exc: Exception) -> InvokeFailure:
    """Classify an exception raised by Invoke (a ClientError with AWS's code, or botocore's network errors).

    The code and message are Firehose's Lambda invocation error for it (runners/error_output.py); a read
    timeout is a function that did not answer in time: Lambda.FunctionTimedOut.
    """
    if isinstance(exc, ClientError):
        sdk_code = error_code(exc) or "ServiceException"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code, message = invoke_error(sdk_code)
        return InvokeFailure(code, message, sdk_code in TRANSIENT_INVOKE_CODES or status == 429 or status >= 500)
    if isinstance(exc, ReadTimeoutError):
        return InvokeFailure(FUNCTION_TIMED_OUT, FUNCTION_TIMED_OUT_MESSAGE, True)
    code, _ = invoke_error(type(exc).__name__)
    unreachable = exc if isinstance(exc, EndpointConnectionError) else None
    return InvokeFailure(code, str(exc)[:200], True, unreachable)  # the network: the call may not have arrived


def warm_up_arrow() -> None:
    """pyarrow's first pa.array imports pandas when it is installed: 1 to 3 s here, once per process. Run on
    a thread when the first records arrive, it overlaps their buffer's interval instead of delaying its
    write (and `make up`, which waits for the first pass, does not pay for it)."""
    pa.array([0])


def invoke_read_timeout(function_timeout_s: float) -> float:
    """How long to wait for an Invoke: as long as the function may run (Firehose's cap included), and a margin."""
    return min(function_timeout_s, FIREHOSE_MAX_INVOKE_S) + INVOKE_READ_MARGIN_S


@dataclass(frozen=True)
class SourceRecord:
    """One Kinesis record as the runner holds it: its data stays the base64 text GetRecords gave, which is
    what the Lambda event carries (decoding it and encoding it again was a tenth of the runner's CPU)."""

    record_id: str
    encoded: str  # the data, base64 (standard alphabet, padded), as Kinesis and the Lambda event carry it
    arrival: datetime
    source: SourceRef
    partition_key: str
    read_at: float = 0.0  # the runner's clock when it was read: its buffer's interval counts from there

    @classmethod
    def of(cls, record_id: str, data: bytes, arrival: datetime, source: SourceRef, partition_key: str,
           read_at: float = 0.0) -> SourceRecord:
        """A record from its bytes (tests, the bench)."""
        return cls(record_id, base64.b64encode(data).decode("ascii"), arrival, source, partition_key, read_at)

    @property
    def data(self) -> bytes:
        """The bytes, decoded when needed (an error document's rawData)."""
        return binascii.a2b_base64(self.encoded)

    @property  # not functools.cached_property: its lock (Python 3.11) cost more than the arithmetic
    def size(self) -> int:
        """len(self.data), from the text alone: what BufferSizeInMBs and Lambda's payload limit count."""
        text = self.encoded
        return len(text) // 4 * 3 - (2 if text.endswith("==") else 1 if text.endswith("=") else 0)


@dataclass(frozen=True)
class Outcome:
    """What the processor made of one record: a row with partition keys, or an error."""

    record: SourceRecord
    result: str
    data: bytes = b""
    partition_keys: dict[str, str] | None = None
    error_code: str = ""
    error_message: str = ""
    attempts: int = 1


def invoke_event(records: list[SourceRecord], config: FirehoseConfig, region: str) -> dict[str, Any]:
    """The data-transformation event Firehose sends for a Kinesis source."""
    return {
        "invocationId": f"local-{time.time_ns()}",
        "deliveryStreamArn": f"arn:aws:firehose:{region}::deliverystream/{config.delivery_stream}",
        "sourceKinesisStreamArn": f"arn:aws:kinesis:{region}::stream/{config.source_stream}",
        "region": region,
        "records": [
            {
                "recordId": r.record_id,
                "approximateArrivalTimestamp": int(r.arrival.timestamp() * 1000),
                "data": r.encoded,
                "kinesisRecordMetadata": {
                    "sequenceNumber": r.source[1],
                    "subsequenceNumber": 0,
                    "partitionKey": r.partition_key,
                    "shardId": r.source[0],
                    "approximateArrivalTimestamp": int(r.arrival.timestamp() * 1000),
                },
            }
            for r in records
        ],
    }


def split_for_payload(records: list[SourceRecord], limit: int = LAMBDA_SYNC_PAYLOAD_MAX) -> list[list[SourceRecord]]:
    """Split a batch so each invoke's JSON stays under Lambda's synchronous payload limit."""
    batches: list[list[SourceRecord]] = []
    batch: list[SourceRecord] = []
    size = 1024  # envelope
    for r in records:
        cost = len(r.encoded) + 400  # base64 + per-record JSON
        if batch and size + cost > limit:
            batches.append(batch)
            batch, size = [], 1024
        batch.append(r)
        size += cost
    if batch:
        batches.append(batch)
    return batches


def _failed(record: SourceRecord, code: str) -> Outcome:
    """A record that failed the status model, with Firehose's documented code and message."""
    return Outcome(record, "ProcessingFailed", error_code=code, error_message=DOCUMENTED_MESSAGES[code])


def parse_response(records: list[SourceRecord], payload: Any) -> list[Outcome]:
    """Check the Lambda's answer against the status model; every record gets exactly one outcome.

    Outside the model (https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html)
    a record fails with Firehose's Lambda invocation error: no 'records' list, a result, data (an Ok needs
    one) or metadata that is not the model's: Lambda.JsonProcessingException; its recordId absent (or not a
    string): Lambda.MissingRecordId, twice: Lambda.DuplicatedRecordId. Unknown recordIds are ignored. A
    malformed answer never raises: it would stop the runner at the same batch on every restart.
    """
    by_id = {r.record_id: r for r in records}
    answered: dict[str, Outcome] = {}
    items = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return [_failed(r, JSON_PROCESSING_EXCEPTION) for r in records]
    for item in items:
        record_id = item.get("recordId") if isinstance(item, dict) else None
        record = by_id.get(record_id) if isinstance(record_id, str) else None
        if record is None:
            continue
        repeated = record.record_id in answered
        answered[record.record_id] = _failed(record, DUPLICATED_RECORD_ID) if repeated else _outcome(record, item)
    return [answered.get(r.record_id) or _failed(r, MISSING_RECORD_ID) for r in records]


def _outcome(record: SourceRecord, item: dict[str, Any]) -> Outcome:
    result = item.get("result")
    if result not in VALID_RESULTS:
        return _failed(record, JSON_PROCESSING_EXCEPTION)
    if result == "ProcessingFailed":  # the reason is in the function's log group, as on AWS
        return Outcome(record, result, error_code=PROCESSING_FAILED_STATUS,
                       error_message=PROCESSING_FAILED_STATUS_MESSAGE)
    if result == "Dropped":
        return Outcome(record, result)
    metadata = item.get("metadata") or {}
    if "data" not in item or not isinstance(metadata, dict):
        return _failed(record, JSON_PROCESSING_EXCEPTION)
    try:
        data = binascii.a2b_base64(item["data"], strict_mode=True)  # b64decode(validate=True), without its regex
    except (binascii.Error, TypeError, ValueError):
        return _failed(record, JSON_PROCESSING_EXCEPTION)
    keys = metadata.get("partitionKeys")
    return Outcome(record, "Ok", data=data, partition_keys=keys if isinstance(keys, dict) else None)


def error_document(outcome: Outcome, lambda_arn: str, now: datetime) -> bytes:
    """The processing-failed line Firehose writes per failed record; rawData is the ORIGINAL record, base64."""
    return json_line(processing_failed_record(
        attempts=outcome.attempts, arrival=outcome.record.arrival, code=outcome.error_code,
        message=outcome.error_message, ended=now, raw=outcome.record.data, lambda_arn=lambda_arn))


class FirehoseRunner(ReadsShards):
    """One delivery stream, run from its CreateDeliveryStream request."""

    name = "firehose"

    def __init__(self, clients: Clients, config: FirehoseConfig, checkpoint_path: Path, *,
                 lambda_client: Any = None, sleep: Callable[[float], None] = time.sleep,
                 draw: Callable[[], float] = random.random, clock: Callable[[], float] = time.monotonic) -> None:
        self.clients = clients
        self.config = config
        self.kinesis = clients.kinesis
        self.s3 = clients.s3
        # One attempt per call: InvokeRetry is the only retry loop around Invoke. It waits as long as the
        # function may run (LAMBDA_TIMEOUT_S, the Timeout the bootstrap deploys it with).
        self.lam = lambda_client if lambda_client is not None else clients.one_attempt(
            "lambda", invoke_read_timeout(clients.settings.lambda_timeout_s))
        self._clock = clock
        self.retry = InvokeRetry(config.lambda_retries)
        self._sleep = sleep
        self._draw = draw
        self.region = clients.settings.region
        self.stats = Stats()
        self.api = KinesisStreamApi(self.kinesis, config.source_stream)
        self.checkpoint = Checkpoint(checkpoint_path, scope=self.api.scope)
        # Without lineage: a resharded stream's children are read alongside their parents, as this runner
        # always did (it keeps no finished shards: its checkpoint moves after S3 writes, not per page).
        self.reader = ShardReader(self.api, clients.raw_json, self.checkpoint, self.stats, name=self.name,
                                  start_at=self._start_at, lineage=False, clock=clock)
        self.processor: list[SourceRecord] = []
        self.processor_read: list[float] = []  # when each buffered record was read (the interval counts from it)
        self.processor_bytes = 0
        self.rows = BufferSet(config.buffer_bytes, config.buffer_interval_s)
        self.errors = BufferSet(config.buffer_bytes, config.buffer_interval_s)
        self.inflight = InFlight()
        self._invoker: ThreadPoolExecutor | None = None  # one thread: invokes in order, off the write path
        self._warm_up: threading.Thread | None = None

    # -- source (discovered, pacer, shards and ready_in come from ReadsShards) ---------------------
    def _start_at(self, shard: str) -> tuple[str, str | None]:
        position = self._starting_position(shard)
        return ("AFTER_SEQUENCE_NUMBER", position) if position else ("TRIM_HORIZON", None)

    def _starting_position(self, shard: str) -> str | None:
        """Where a shard without a checkpoint starts: after its last record when the delivery stream was
        created (LATEST then); None (TRIM_HORIZON) for a shard empty then or created since, for every shard
        when that position is unknown, and after an unreadable checkpoint (re-read, never skipped)."""
        if self.checkpoint.recovered or self.config.starting_positions is None:
            return None
        return self.config.starting_positions.get(shard)

    def _read(self, shard: str, now: float) -> int:
        page = self.reader.read(shard)  # in wire form (Clients.raw_json): botocore's parsing was a quarter of our CPU
        if page.millis_behind is not None:
            self.stats.lag_ms = page.millis_behind
        if page.records and self._warm_up is None:
            self._warm_up = threading.Thread(target=warm_up_arrow, name="firehose-warm-up", daemon=True)
            self._warm_up.start()
        for rec in page.records:
            seq = rec["SequenceNumber"]
            arrival = datetime.fromtimestamp(rec["ApproximateArrivalTimestamp"], UTC)
            record = SourceRecord(f"{shard}:{seq}", rec["Data"], arrival, (shard, seq), rec.get("PartitionKey", ""),
                                  now)
            self.processor.append(record)
            self.processor_read.append(now)
            self.processor_bytes += record.size
            self.inflight.read(shard, seq)
        return len(page.records)

    # -- processor -------------------------------------------------------------------------------
    def _processor_batches(self, now: float, force: bool) -> list[list[SourceRecord]]:
        """Take the invocations that are due from the processor's buffer, in read order: one of up to
        BufferSizeInMBs each time that much is buffered, then what is left once its oldest record has waited
        BufferIntervalInSeconds (or on `force`); each split further to stay under Lambda's 6 MB payload."""
        batches: list[list[SourceRecord]] = []
        limit = self.config.processor_bytes
        while self.processor and (force or self.processor_bytes >= limit
                                  or now - self.processor_read[0] >= self.config.processor_interval_s):
            count, size = 0, 0
            for record in self.processor:
                if count and size + record.size > limit:
                    break
                count, size = count + 1, size + record.size
            batch = self.processor[:count]
            del self.processor[:count], self.processor_read[:count]
            self.processor_bytes -= size
            batches += split_for_payload(batch)
        return batches

    def _invoke(self, records: list[SourceRecord]) -> list[Outcome]:
        """Invoke the transform for one batch under InvokeRetry; the answer is checked record by record."""
        event = invoke_event(records, self.config, self.region)
        payload = orjson.dumps(event)  # the same JSON as json.dumps, compact, in a tenth of its time
        attempts = self.retry.retries + 1
        for attempt in range(1, attempts + 1):
            answer, failure = self._invoke_once(payload)
            if failure is None:
                return parse_response(records, answer)
            if not failure.transient or attempt == attempts:
                break
            self._sleep(self.retry.delay(attempt - 1, self._draw()))
        if failure.unreachable is not None:
            raise failure.unreachable  # the loop retries the pass; the checkpoint never passed these records
        return [Outcome(r, "ProcessingFailed", error_code=failure.code, error_message=failure.message,
                        attempts=attempt) for r in records]

    def _invoke_once(self, payload: bytes) -> tuple[Any, InvokeFailure | None]:
        """One Invoke: (the function's answer, None), or (None, why it failed)."""
        try:
            resp = self.lam.invoke(FunctionName=self.config.lambda_arn, Payload=payload)
            body = resp["Payload"].read()
        except (ClientError, HTTPClientError, BotoConnectionError) as exc:
            return None, invoke_failure(exc)
        function_error = resp.get("FunctionError")
        if function_error:  # Unhandled includes a timed-out function: worth another attempt; Handled is not
            code, message = function_error_code(body)
            return None, InvokeFailure(code, message, function_error == "Unhandled")
        try:
            return json.loads(body), None
        except ValueError:
            return None, InvokeFailure(JSON_PROCESSING_EXCEPTION, DOCUMENTED_MESSAGES[JSON_PROCESSING_EXCEPTION], False)

    def _route(self, outcomes: list[Outcome], now: float) -> None:
        stamp = datetime.now(UTC)
        for o in outcomes:
            if o.result == "Dropped":
                self.inflight.done(o.record.source)
                continue
            if o.result == "Ok":
                try:
                    prefix = evaluate_prefix(self.config.prefix, partition_keys=o.partition_keys,
                                             arrival=o.record.arrival)
                except PartitionKeyError as exc:
                    o = Outcome(o.record, "ProcessingFailed", error_code=PARTITION_KEY_MISSING, error_message=str(exc))
                else:
                    if prefix not in self.rows and len(self.rows) >= self.config.max_active_partitions:
                        limit = self.config.max_active_partitions
                        o = Outcome(o.record, "ProcessingFailed", error_code=ACTIVE_PARTITIONS_EXCEEDED_CODE,
                                    error_message=f"more than {limit} active partitions")
                    else:
                        data = o.data + b"\n" if self.config.append_delimiter else o.data
                        self.rows.add(prefix, data, o.record.source, self._entered(o.record, now), o.record.arrival)
                        continue
            kind = ACTIVE_PARTITION_EXCEEDED if o.error_code == ACTIVE_PARTITIONS_EXCEEDED_CODE else PROCESSING_FAILED
            self.errors.add(kind, error_document(o, self.config.lambda_arn, stamp), o.record.source,
                            self._entered(o.record, now), o.record.arrival)

    def _entered(self, record: SourceRecord, now: float) -> float:
        """When `record` entered its destination buffer: when it left the processor's buffer by Firehose's rules
        (its read + BufferIntervalInSeconds of the processor, or earlier when a full batch took it), not when
        this loop got round to routing it (a record read while an invoke ran waits for the next one)."""
        if not record.read_at:
            return now
        return min(now, record.read_at + self.config.processor_interval_s)

    # -- destination -----------------------------------------------------------------------------
    def _write(self, key: str, body: bytes) -> None:
        self._put_object(key, body)
        self.stats.objects_out += 1

    def _put_object(self, key: str, body: bytes) -> None:
        retry_call(lambda: self.s3.put_object(Bucket=self.config.bucket, Key=key, Body=body),
                   attempts=S3_DELIVERY_ATTEMPTS, backoff=S3_DELIVERY_BACKOFF, retryable=_retry_delivery,
                   sleep=self._sleep)

    def _flush_rows(self, prefix: str, items: list[bytes], sources: list[SourceRef],
                    arrivals: list[datetime]) -> None:
        now = datetime.now(UTC)
        name = object_name(self.config.delivery_stream, self.config.version_id, now, self.config.file_extension)
        if not self.config.parquet:
            body = encode_jsonl_gzip(items) if self.config.gzip else b"".join(items)
            self._write(prefix + name, body)
            self.stats.records_out += len(items)
            return
        schema = self._schema_source().known()  # rows of its columns only: the schema for_rows would give
        table = table_from_lines(items, schema) if schema is not None else None  # all fit: one read in C++
        if table is not None:
            self._write(prefix + name, parquet_bytes(table))
            self.stats.records_out += len(items)
            return
        decoded: list[tuple[dict, bytes, SourceRef, datetime]] = []
        for item, source, arrival in zip(items, sources, arrivals, strict=True):
            try:
                row = decode_rows([item])[0]
            except ValueError as exc:  # the transform's output is not JSON
                self._conversion_failed(item, source, arrival, f"not JSON: {exc}")
                continue
            if isinstance(row, dict):
                decoded.append((row, item, source, arrival))
            else:
                self._conversion_failed(item, source, arrival, f"a JSON {type(row).__name__}, not an object")
        if not decoded:  # every record went to the error output: no object, no schema to read
            return
        rows = [row for row, _, _, _ in decoded]
        body, unfit = encode_fitting(rows, self._conversion_schema(rows))
        for index, reason in unfit:
            _, item, source, arrival = decoded[index]
            self._conversion_failed(item, source, arrival, reason)
        if body is not None:
            self._write(prefix + name, body)
            self.stats.records_out += len(rows) - len(unfit)

    def _conversion_schema(self, rows: list[dict]) -> pa.Schema:
        """The Glue table's columns as of now, as Firehose's conversion reads them (SchemaConfiguration,
        VersionId LATEST): a column added to the table reaches the next objects, attributes it lacks are
        dropped. lake/glue_schema.py TableSchema reads the table at the first flush, every 60 s, and at once
        for an attribute it has not asked about."""
        return self._schema_source().for_rows(rows)

    def _schema_source(self) -> TableSchema:
        """The table SchemaConfiguration names (bootstrap/spec.py); `table_schema` may be set beforehand
        (tests: a clock)."""
        source = getattr(self, "table_schema", None)
        if source is None:
            settings = self.clients.settings
            source = self.table_schema = TableSchema(self.clients.glue, settings.glue_database, settings.glue_table)
        return source

    def _conversion_failed(self, item: bytes, source: SourceRef, arrival: datetime, message: str) -> None:
        """A row Parquet conversion refuses goes to format-conversion-failed with the data it had and its own
        arrival time, in the shape of record-format-conversion-error-handling.html (the Glue table it was read
        against included)."""
        doc = json_line(format_conversion_failed_record(
            attempts=1, arrival=arrival, code=CONVERSION_INVALID_SCHEMA, message=message, ended=datetime.now(UTC),
            raw=item, sequence_number=source[1], subsequence_number=0, table=self._catalog_table()))
        self.errors.add(FORMAT_CONVERSION_FAILED, doc, source, time.monotonic(), arrival)

    def _catalog_table(self) -> dict[str, Any]:
        """The Glue table SchemaConfiguration names (bootstrap/spec.py), in the Lambda's account and region."""
        settings = self.clients.settings
        parts = self.config.lambda_arn.split(":")
        partition, region, account = (parts[1], parts[3], parts[4]) if len(parts) > 4 else ("aws", self.region, "")
        return data_catalog_table(catalog_id=account, database=settings.glue_database, table=settings.glue_table,
                                  region=region or self.region, partition=partition)

    def _flush(self, now: float, force: bool) -> int:
        flushed = 0
        for buf in self.rows.take_due(now, force):
            self._flush_rows(buf.key, buf.items, buf.sources, buf.arrivals)
            for source in buf.sources:
                self.inflight.done(source)
            flushed += 1
        for buf in self.errors.take_due(now, force or bool(flushed)):
            prefix = evaluate_prefix(self.config.error_prefix, arrival=buf.oldest_arrival or datetime.now(UTC),
                                     error_output_type=buf.key)
            name = object_name(self.config.delivery_stream, self.config.version_id, datetime.now(UTC),
                               ".gz" if self.config.gzip else "")
            body = encode_jsonl_gzip(buf.items) if self.config.gzip else b"".join(buf.items)
            self._write(prefix + name, body)
            for source in buf.sources:
                self.inflight.done(source)
            self.stats.errors += len(buf.items)
            flushed += 1
        return flushed

    def _checkpoint(self) -> None:
        moved = self.inflight.advance()
        if moved:
            for shard, seq in moved.items():
                self.checkpoint.advance(shard, seq)
                self.stats.position[shard] = seq
            self.checkpoint.save()

    # -- the loop's contract ---------------------------------------------------------------------
    def due_in(self) -> float | None:
        """Seconds before the oldest buffered record's interval ends (None: nothing buffered), so an idle
        loop wakes to invoke or write it on time rather than after its idle sleep."""
        processor = (max(0.0, self.processor_read[0] + self.config.processor_interval_s - self._clock())
                     if self.processor else None)
        due = [d for d in (processor, self._buffers_due_in()) if d is not None]
        return min(due) if due else None

    def run_once(self, force: bool = False) -> bool:
        try:
            return self._pass(force)
        except Exception:
            self._rewind()
            raise

    def _rewind(self) -> None:
        """After a failed pass, forget everything past the checkpoint: it is read again (at-least-once)."""
        self.reader.rewind()
        self.processor, self.processor_read, self.processor_bytes = [], [], 0
        self.rows = BufferSet(self.config.buffer_bytes, self.config.buffer_interval_s)
        self.errors = BufferSet(self.config.buffer_bytes, self.config.buffer_interval_s)
        self.inflight = InFlight()

    def flush_due(self) -> bool:
        """Invoke and write what has fallen due, reading nothing: the loop calls it between two allowed
        reads (runners/loop.py), so a buffer is written when its interval ends, not at the next read."""
        try:
            return not self._pass(force=False, read=False)
        except Exception:
            self._rewind()
            raise

    def _pass(self, force: bool, read: bool = True) -> bool:
        # What is due already is written first: it would otherwise wait behind this pass's read and invoke.
        flushed = self._timed("write", lambda: self._flush(self._clock(), False))
        now = self._clock()
        records = self._read_shards(now) if read else 0
        batches = self._processor_batches(now, force)
        written, read_meanwhile = self._invoke_all(batches, now, read_meanwhile=read and not force)
        flushed, records = flushed + written, records + read_meanwhile
        flushed += self._timed("write", lambda: self._flush(self._clock(), force))
        self._checkpoint()
        self.stats.pending = len(self.processor) + self.rows.pending + self.errors.pending
        return records == 0 and not batches and not flushed

    def _read_shards(self, now: float) -> int:
        started = time.perf_counter()
        records = sum(self._read(shard.shard_id, now) for shard in self.reader.readable())
        self._spent("read", started)
        self.stats.records_in += records
        return records

    def _invoke_all(self, batches: list[list[SourceRecord]], now: float, *,
                    read_meanwhile: bool = False) -> tuple[int, int]:
        """Invoke the batches (in order, on the invoke thread) and route their outcomes. While the function
        runs, a buffer that falls due is written, on time, rather than behind the invoke; with
        `read_meanwhile` the shards are read too, each as soon as its read limit allows (the records wait for
        the next invoke, their buffer's interval counting from their read). Returns (buffers written,
        records read) meanwhile."""
        if not batches:
            return 0, 0
        if self._invoker is None:
            self._invoker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firehose-invoke")

        def invoke() -> tuple[list[list[Outcome]], float]:
            started = time.perf_counter()
            return [self._invoke(batch) for batch in batches], time.perf_counter() - started

        running = self._invoker.submit(invoke)
        flushed = read = 0
        while True:
            waits = [w for w in (self._buffers_due_in(), self.ready_in() if read_meanwhile else None) if w is not None]
            try:
                answers, seconds = running.result(timeout=max(min(waits), MIN_WAIT_S) if waits else None)
                break
            except FutureTimeout:
                flushed += self._timed("write", lambda: self._flush(self._clock(), False))
                if read_meanwhile and self.ready_in() <= 0:
                    read += self._read_shards(self._clock())
        self.stats.phase_s["invoke"] = self.stats.phase_s.get("invoke", 0.0) + seconds
        for outcomes in answers:
            self._route(outcomes, now)
        return flushed, read

    def _buffers_due_in(self) -> float | None:
        """Seconds before the oldest destination buffer (rows or errors) falls due; None: none buffered."""
        due = [b.opened + buffers.interval_s for buffers in (self.rows, self.errors)
               for b in buffers.buffers.values() if b.items]
        return max(0.0, min(due) - self._clock()) if due else None

    def _timed(self, phase: str, step: Callable[[], int]) -> int:
        started = time.perf_counter()
        done = step()
        if done:
            self._spent(phase, started)
        return done

    def _spent(self, phase: str, started: float) -> None:
        """Where the passes' time goes (Stats.phase_s; `make bench` shows it per pass): wall seconds, summed."""
        self.stats.phase_s[phase] = self.stats.phase_s.get(phase, 0.0) + time.perf_counter() - started

    def close(self) -> None:
        """A graceful stop delivers what is buffered, then saves the checkpoint."""
        now = self._clock()
        try:
            self._invoke_all(self._processor_batches(now, force=True), now)  # reads nothing meanwhile
            self._flush(self._clock(), force=True)
            self._checkpoint()
            self.checkpoint.save()
        finally:
            if self._invoker is not None:
                self._invoker.shutdown(wait=True)
                self._invoker = None
