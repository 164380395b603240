"""Reading a stream's shards, once for both runners: DynamoDB Streams (the pipe) and Kinesis (the firehose).

The two APIs differ in little (how shards are listed, what GetShardIterator and GetRecords are called with,
their read limits), and that little is a small adapter (`DynamoDBStreamsApi`, `KinesisStreamApi`). The
rest is `ShardReader`, as the KCL and Lambda's pollers read a stream:
- shards are discovered on a timer (runners/refresh.py), again at once when a shard has been read to its end
  (its children are due) or a pass failed (the stream may be gone, or re-created);
- with lineage, a child shard waits until its parent, if still listed, is finished: read to its end and
  checkpointed (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.KCLAdapter.html);
  the runner says when by `finish()`, since only it knows when a page is durable downstream;
- a shard opens AFTER its checkpoint; without one, where the runner's `start_at` says (its StartingPosition);
  a checkpoint the stream no longer holds (TrimmedDataAccessException: past the 24 h retention, or an
  emulator restart without the records) is a data-loss notice in the status, then TRIM_HORIZON;
- each shard is read at most `reads_per_shard_s` times a second (`ShardPacer`; the loop waits `ready_in()`);
- GetRecords goes through `Clients.raw_json` (docs/decisions.md section 2), which botocore does not retry:
  throttling is retried here (a few attempts, common/retry.py `Backoff`), a lost connection is not (the
  iterator may be gone with the endpoint); an expired iterator, or a shard or stream gone, drops the
  iterator and looks for shards again before the pass fails (transient): the next pass re-opens from the
  checkpoint (`rewind()` after any failed pass), so records may repeat but none is skipped.
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from common.errors import TransientError
from common.retry import TRANSIENT_CODES, Backoff, error_code, retry_call
from runners.checkpoint import Checkpoint
from runners.loop import Stats
from runners.refresh import Refreshing

log = logging.getLogger("runners")

DYNAMODB_STREAMS_GET_LIMIT = 1000  # AWS's maximum for DynamoDB Streams GetRecords
KINESIS_GET_LIMIT = 10000  # and for Kinesis GetRecords
# GetRecords calls per second per shard. DynamoDB Streams: "Do not allow more than two processes to read from
# the same DynamoDB Streams shard at the same time. Exceeding this limit can result in request throttling."
# (amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-dynamodb-streams); its own pollers read a
# shard 4 times a second ("Lambda polls shards in your DynamoDB stream for records at a base rate of 4 times
# per second", lambda/latest/dg/with-ddb.html). The pipe reads each shard at most that often.
STREAMS_READS_PER_SHARD_S = 4.0
# Kinesis: "Each shard can support up to five read transactions per second"
# (streams/latest/dev/service-sizes-and-limits.html); the firehose reads each shard at most that often, and
# backs off to once a second when idle (runners/loop.py).
KINESIS_READS_PER_SHARD_S = 5.0
# How often an idle shard is still read (the loop's idle sleep never grows past it): AWS's own pollers keep
# a base rate whether or not they find records. DynamoDB Streams: 4 times a second, the rate above
# (lambda/latest/dg/with-ddb.html); Pipes document no other. Kinesis: "Kinesis Firehose calls the Kinesis
# Streams GetRecords operation once per second for each shard" (firehose/latest/dev/
# writing-with-kinesis-streams.html), as Lambda does ("at a base rate of once per second", with-kinesis.html).
STREAMS_IDLE_READS_PER_SHARD_S = STREAMS_READS_PER_SHARD_S
KINESIS_IDLE_READS_PER_SHARD_S = 1.0

GET_RECORDS_ATTEMPTS = 4  # a throttled raw GetRecords: then the pass fails and the loop backs off
GET_RECORDS_BACKOFF = Backoff(base_s=0.2, cap_s=5.0)
# GetRecords errors after which the iterator is dropped and the shard re-opened from its checkpoint.
REOPEN_CODES = frozenset({"ExpiredIteratorException", "TrimmedDataAccessException", "ResourceNotFoundException"})


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parent_id: str | None = None
    closed: bool = False


@dataclass(frozen=True)
class Page:
    """One GetRecords answer: its records (wire form), whether it ends a closed shard, how far behind it is."""

    shard_id: str
    records: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    millis_behind: int | None = None


class StreamApi(Protocol):
    """What differs between DynamoDB Streams and Kinesis; everything else is `ShardReader`'s."""

    service: str  # the service name `Clients.raw_json` takes for GetRecords
    get_limit: int
    reads_per_shard_s: float
    idle_reads_per_shard_s: float  # AWS's base rate: how often an idle shard is still read
    scope: str  # the checkpoint's scope (runners/checkpoint.py)

    def list_shards(self) -> list[Shard]: ...

    def shard_iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str: ...


class DynamoDBStreamsApi:
    """DynamoDB Streams: DescribeStream pages by ExclusiveStartShardId; checkpoints are scoped by the stream's
    ARN (a re-created table's stream has a new ARN but may reuse the old shard ids: the emulator does)."""

    service = "dynamodbstreams"
    get_limit = DYNAMODB_STREAMS_GET_LIMIT
    reads_per_shard_s = STREAMS_READS_PER_SHARD_S
    idle_reads_per_shard_s = STREAMS_IDLE_READS_PER_SHARD_S

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client, self.stream_arn = client, stream_arn
        self.scope = stream_arn

    def list_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            desc = self.client.describe_stream(**kwargs)["StreamDescription"]
            for s in desc.get("Shards", []):
                closed = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                shards.append(Shard(s["ShardId"], s.get("ParentShardId"), closed))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def shard_iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]


class KinesisStreamApi:
    """Kinesis: ListShards pages by NextToken. Its checkpoints keep the unscoped form the firehose runner has
    always written (a re-created Kinesis stream keeps its ARN, so a scope would not tell the two apart)."""

    service = "kinesis"
    get_limit = KINESIS_GET_LIMIT
    reads_per_shard_s = KINESIS_READS_PER_SHARD_S
    idle_reads_per_shard_s = KINESIS_IDLE_READS_PER_SHARD_S
    scope = ""

    def __init__(self, client: Any, stream_name: str) -> None:
        self.client, self.stream_name = client, stream_name

    def list_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"NextToken": token} if token else {"StreamName": self.stream_name}
            resp = self.client.list_shards(**kwargs)
            for s in resp["Shards"]:
                closed = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                shards.append(Shard(s["ShardId"], s.get("ParentShardId"), closed))
            token = resp.get("NextToken")
            if not token:
                return shards

    def shard_iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["StartingSequenceNumber"] = sequence
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]


class ShardPacer:
    """Per shard, the time of its last read; `ready_in()` says how long until every shard may be read again
    without passing `calls_per_s` reads per second on any of them. Times come from `clock` (tests inject one)."""

    def __init__(self, calls_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / calls_per_s
        self._clock = clock
        self._last: dict[str, float] = {}

    def polled(self, shard: str) -> None:
        """Call just before each read of `shard`."""
        self._last[shard] = self._clock()

    def ready_in(self) -> float:
        if not self._last:
            return 0.0
        return max(0.0, max(self._last.values()) + self.interval - self._clock())


def order_shards(shards: Iterable[Shard], finished: set[str], lineage: bool = True) -> list[Shard]:
    """Shards that may be read now: not finished, and (with lineage) a child waits until its parent, if still
    listed, is finished."""
    shards = list(shards)
    listed = {s.shard_id for s in shards}
    return [
        s for s in shards
        if s.shard_id not in finished
        and (not lineage or s.parent_id is None or s.parent_id not in listed or s.parent_id in finished)
    ]


# Where a shard without a checkpoint starts: (ShardIteratorType, sequence number or None).
StartAt = Callable[[str], tuple[str, str | None]]


def _retry_get_records(exc: BaseException) -> bool:
    """Throttling only: a lost connection may have taken the iterator with it, so the pass re-opens it."""
    return isinstance(exc, TransientError) or error_code(exc) in TRANSIENT_CODES


class ShardReader:
    """Reads the shards of one stream for one runner; the runner decides what a page's records become."""

    def __init__(self, api: StreamApi, raw_json: Callable[[str, str, dict[str, Any]], dict[str, Any]],
                 checkpoint: Checkpoint, stats: Stats, *, name: str, start_at: StartAt, lineage: bool,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api, self.raw_json, self.checkpoint, self.stats = api, raw_json, checkpoint, stats
        self.name, self.start_at, self.lineage, self.sleep = name, start_at, lineage, sleep
        self.iterators: dict[str, str | None] = {}
        self.discovered = Refreshing(api.list_shards)
        self.pacer = ShardPacer(api.reads_per_shard_s, clock)
        self.closed: set[str] = set()  # shards read to their end by this process

    def shards(self) -> list[Shard]:
        """Every listed shard (discovery runs on a timer, not per read)."""
        return self.discovered.get()

    def readable(self) -> list[Shard]:
        """The shards to read this pass, parents before children (with lineage). A closed shard this process
        has read to its end is not read again until a rewind: re-opening it from a checkpoint that lags what
        the runner still buffers would read those records a second time."""
        done = {sid for sid in self.closed if self.iterators.get(sid) is None}
        return [s for s in order_shards(self.shards(), self.checkpoint.finished, self.lineage)
                if s.shard_id not in done]

    def read(self, shard_id: str) -> Page:
        """One GetRecords of `shard_id`, from where its iterator stands (opened from the checkpoint if none)."""
        if self.iterators.get(shard_id) is None:
            self.iterators[shard_id] = self._open(shard_id)
        self.pacer.polled(shard_id)
        self.stats.reads[shard_id] = self.stats.reads.get(shard_id, 0) + 1
        params = {"ShardIterator": self.iterators[shard_id], "Limit": self.api.get_limit}
        try:
            resp = retry_call(lambda: self.raw_json(self.api.service, "GetRecords", params),
                              attempts=GET_RECORDS_ATTEMPTS, backoff=GET_RECORDS_BACKOFF,
                              retryable=_retry_get_records, sleep=self.sleep)
        except ClientError as exc:
            if error_code(exc) in REOPEN_CODES:
                self._lost(shard_id, exc)
            raise
        next_iterator = resp.get("NextShardIterator")
        self.iterators[shard_id] = next_iterator
        ended = next_iterator is None
        if ended and shard_id not in self.closed:  # a closed shard read to its end: its children are due
            self.closed.add(shard_id)
            self.discovered.expire()
        return Page(shard_id, resp.get("Records", []), ended, resp.get("MillisBehindLatest"))

    def finish(self, shard_id: str) -> None:
        """A closed shard's last page is durable downstream: its children may start (lineage)."""
        self.checkpoint.finish(shard_id)
        self.checkpoint.save()
        self.discovered.expire()

    def rewind(self) -> None:
        """After a failed pass: re-open every shard from its checkpoint (what was read past it is read again,
        never a gap) and list the shards again (an endpoint that came back empty is noticed there)."""
        self.iterators.clear()
        self.closed.clear()
        self.discovered.expire()

    def ready_in(self) -> float:
        """Seconds before every shard may be read again within the stream's per-shard read limit."""
        return self.pacer.ready_in()

    def _open(self, shard_id: str) -> str:
        position = self.checkpoint.get(shard_id)
        kind, sequence = ("AFTER_SEQUENCE_NUMBER", position) if position else self.start_at(shard_id)
        try:
            return self.api.shard_iterator(shard_id, kind, sequence)
        except ClientError as exc:
            if error_code(exc) == "TrimmedDataAccessException":
                self._data_loss(shard_id, sequence)
                return self.api.shard_iterator(shard_id, "TRIM_HORIZON")
            if error_code(exc) == "ResourceNotFoundException":
                self._lost(shard_id, exc)
            raise

    def _lost(self, shard_id: str, exc: ClientError) -> None:
        """The iterator expired, or the shard (or its stream) is gone: drop it, list the shards again."""
        self.iterators[shard_id] = None
        self.discovered.expire()
        code = error_code(exc)
        why = "vanished (stream deleted or re-created?)" if code == "ResourceNotFoundException" else code
        raise TransientError(f"shard {shard_id}: {why}; reopening from the checkpoint") from exc

    def _data_loss(self, shard_id: str, position: str | None) -> None:
        """Our checkpoint is older than the stream's retention: say so, then go on from the oldest record."""
        self.stats.errors += 1
        self.stats.last_error = (
            f"shard {shard_id}: the stream no longer holds the records after checkpoint {position} "
            "(trimmed, or the emulator restarted without them): changes in between are lost; "
            "run `make verify` to see which orders differ"
        )
        self.stats.data_loss = [*self.stats.data_loss, self.stats.last_error][-5:]
        log.error("%s: %s", self.name, self.stats.last_error)


class ReadsShards:
    """What a runner reading through `self.reader` shows of it: the shards, their discovery and the read pacing
    (tests and the bench swap the pacer, the loop asks `ready_in()`)."""

    reader: ShardReader

    @property
    def discovered(self) -> Refreshing[list[Shard]]:
        return self.reader.discovered

    @property
    def pacer(self) -> ShardPacer:
        """Each shard at most the stream's reads per second (StreamApi.reads_per_shard_s)."""
        return self.reader.pacer

    @pacer.setter
    def pacer(self, pacer: ShardPacer) -> None:
        self.reader.pacer = pacer

    def shards(self) -> list[Shard]:
        return self.reader.shards()

    def ready_in(self) -> float:
        """Seconds before every shard may be read again within the stream's read limit (the loop waits)."""
        return self.reader.ready_in()

    def idle_poll_s(self) -> float:
        """The longest the loop may sleep while idle: an idle shard is still read at AWS's base rate
        (StreamApi.idle_reads_per_shard_s); the pipe is not left a second behind a quiet stream."""
        return 1.0 / self.reader.api.idle_reads_per_shard_s
