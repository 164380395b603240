"""Send operations to DynamoDB with BatchWriteItem, keeping each order's steps in order.

BatchWriteItem takes at most 25 put/delete requests and rejects a batch that touches the
same item twice; what it could not do comes back as UnprocessedItems, to be resent with
exponential backoff. A PutRequest replaces the whole item, which DynamoDB Streams reports as
MODIFY with both images, so every lifecycle step can go through batches (~3x PutItem's rate
on the emulator).
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html#Programming.Errors.BatchOperations

Per-key order: a key always goes to the same worker (crc32 shard), a worker sends its batches
one after the other and finishes a batch (unprocessed items included) before the next, and a
batch is cut before a key would appear in it twice. So a later step never overtakes an earlier one.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from common.aws import error_code, retrying
from common.errors import TerminalError, TransientError
from generator.lifecycle import Operation

MAX_BATCH = 25


def attribute_values(item: Mapping[str, str | Decimal]) -> dict[str, dict[str, str]]:
    """An item in DynamoDB's wire format (only strings and numbers occur in the contract)."""
    return {k: {"S": v} if isinstance(v, str) else {"N": str(v)} for k, v in item.items()}


def write_request(op: Operation) -> dict[str, Any]:
    """The BatchWriteItem request for one operation."""
    if op.item is None:
        return {"DeleteRequest": {"Key": {"order_id": {"S": op.order_id}}}}
    return {"PutRequest": {"Item": attribute_values(op.item)}}


class BatchBuilder:
    """Collects operations into a batch; says when the next one must start a new batch."""

    def __init__(self, size: int = MAX_BATCH) -> None:
        self.size = size
        self.ops: list[Operation] = []
        self.keys: set[str] = set()
        self.since = 0.0  # monotonic time of the batch's first operation

    def fits(self, op: Operation) -> bool:
        return len(self.ops) < self.size and op.order_id not in self.keys

    def add(self, op: Operation) -> None:
        if not self.ops:
            self.since = time.monotonic()
        self.ops.append(op)
        self.keys.add(op.order_id)

    def take(self) -> list[Operation]:
        ops, self.ops, self.keys = self.ops, [], set()
        return ops


def plan_batches(ops: Iterable[Operation], size: int = MAX_BATCH) -> Iterator[list[Operation]]:
    """Consecutive batches of at most `size` with no key twice, in stream order."""
    builder = BatchBuilder(size)
    for op in ops:
        if not builder.fits(op):
            yield builder.take()
        builder.add(op)
    if builder.ops:
        yield builder.take()


def shard_of(order_id: str, shards: int) -> int:
    """A stable shard for a key (crc32, not hash(): that changes per process)."""
    return zlib.crc32(order_id.encode()) % shards


def write_batch(
    client: Any,
    table: str,
    ops: list[Operation],
    *,
    attempts: int = 8,
    base: float = 0.05,
    cap: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write one batch, resending UnprocessedItems with jittered backoff; returns requests written."""
    send = retrying()(client.batch_write_item)
    pending = [write_request(op) for op in ops]
    for attempt in range(attempts):
        try:
            response = send(RequestItems={table: pending})
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise TerminalError(
                    f"DynamoDB table {table!r} does not exist; create it with `make up` first"
                ) from None
            raise
        pending = response.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return len(ops)
        sleep(random.uniform(0, min(cap, base * 2**attempt)))
    raise TransientError(
        f"BatchWriteItem left {len(pending)} requests unprocessed on {table!r} after {attempts} "
        "attempts; the table is throttled, lower --rate"
    )


class BatchWriter:
    """Batches operations per shard and writes them from `threads` workers.

    submit() may block when a worker's queue is full (backpressure). flush(wait=False) sends
    partial batches; flush() also waits until everything submitted is written. A worker's
    error is raised on the next submit/flush/close.
    """

    def __init__(self, client: Any, table: str, *, threads: int = 2, queue_depth: int = 4,
                 batch_size: int = MAX_BATCH, sleep: Callable[[float], None] = time.sleep) -> None:
        if not 1 <= threads <= 16:
            raise ValueError("threads must be between 1 and 16")
        self._client, self._table, self._sleep = client, table, sleep
        self._builders = [BatchBuilder(batch_size) for _ in range(threads)]
        self._queues: list[queue.Queue[list[Operation] | None]] = [
            queue.Queue(maxsize=queue_depth) for _ in range(threads)
        ]
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._closed = False
        self.writes = 0
        self._workers = [
            threading.Thread(target=self._work, args=(q,), name=f"batch-writer-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, op: Operation) -> None:
        self._raise_error()
        shard = shard_of(op.order_id, len(self._builders))
        builder = self._builders[shard]
        if not builder.fits(op):
            self._queues[shard].put(builder.take())
        builder.add(op)

    def flush(self, wait: bool = True, older_than: float = 0.0) -> None:
        """Send partial batches (only those started `older_than` seconds ago or earlier)."""
        cutoff = time.monotonic() - older_than
        for builder, q in zip(self._builders, self._queues, strict=True):
            if builder.ops and builder.since <= cutoff:
                q.put(builder.take())
        if wait:
            for q in self._queues:
                q.join()
        self._raise_error()

    def close(self) -> None:
        """Write what is pending, then stop the workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(wait=True)
        finally:
            for q in self._queues:
                q.put(None)
            for worker in self._workers:
                worker.join()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self, q: queue.Queue[list[Operation] | None]) -> None:
        while True:
            batch = q.get()
            try:
                if batch is None:
                    return
                if self._error is None:  # after a failure, drain without writing
                    written = write_batch(self._client, self._table, batch, sleep=self._sleep)
                    with self._lock:
                        self.writes += written
            except BaseException as exc:  # surfaced to the submitting thread
                with self._lock:
                    self._error = self._error or exc
            finally:
                q.task_done()
