"""Send operations to DynamoDB with BatchWriteItem, keeping each order's steps in order.

BatchWriteItem takes at most 25 put/delete requests and rejects a batch that touches the
same item twice; what it could not do comes back as UnprocessedItems, to be resent with
exponential backoff. A PutRequest replaces the whole item, which DynamoDB Streams reports as
MODIFY with both images, so every lifecycle step can go through batches (~3x PutItem's rate
on the emulator).
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html#Programming.Errors.BatchOperations

Per-key order: a key always goes to the same worker (crc32 shard), a worker sends its batches
one after the other and finishes a batch (unprocessed items included) before the next, and an
operation always goes into a later batch than its key's previous one. So a later step never
overtakes an earlier one.

Full batches: a repeated key does not cut the batch being filled. Each shard keeps a window of
open batches, and an operation goes into the first one with room after the batch holding its
key's previous step; only a full oldest batch (or a flush) is sent. With `make seed`'s DAYS=14,
orders arrive ~10 simulated minutes apart and each lifecycle spans minutes, so the stream is
mostly one order's steps in a row: cutting at each repeated key made batches of ~1.9 requests
(~0.2x the rate of full ones). Operations of different keys may be written in another order
than the stream's; DynamoDB Streams orders records per item only, and the writer threads never
kept a cross-key order anyway.
"""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from common.errors import TerminalError, TransientError
from common.retry import RAW_CALL_ATTEMPTS, Backoff, error_code, retry_as_sdk
from generator.lifecycle import KINDS, Operation
from generator.lifecycle import attribute_values as attribute_values  # importable from here, as before

MAX_BATCH = 25


def write_request(op: Operation) -> dict[str, Any]:
    """The BatchWriteItem request for one operation (the simulator's wire form of the item when it has one)."""
    if op.item is None:
        return {"DeleteRequest": {"Key": {"order_id": {"S": op.order_id}}}}
    return {"PutRequest": {"Item": op.wire if op.wire is not None else attribute_values(op.item)}}


class RawBatchWrites:
    """`batch_write_item` sent and answered as JSON through `Clients.raw_json`, retried as botocore would.

    Why: botocore's JSON serializer walks the service model for every attribute of every item,
    about 100 us per item, more than the rest of the generator per write. A request built from
    the item contract is already DynamoDB's wire form (S and N only), so json.dumps is the whole
    serialization, and the answer (UnprocessedItems) is wire form too. AWS errors still come back
    as ClientError with their code; the service still validates every request.
    """

    def __init__(self, clients: Any, attempts: int = RAW_CALL_ATTEMPTS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clients, self._attempts, self._sleep = clients, attempts, sleep
        clients.client("dynamodb")  # built once here, not raced for by the writer threads

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        params = {"RequestItems": RequestItems}
        return retry_as_sdk(lambda: self._clients.raw_json("dynamodb", "BatchWriteItem", params),
                            attempts=self._attempts, sleep=self._sleep)


# An order has at most one operation of each kind, so a window of as many batches as there are
# kinds (8) holds a whole lifecycle without sending a partial batch.
WINDOW = len(KINDS)


class _Batch:
    __slots__ = ("ops", "since")

    def __init__(self) -> None:
        self.ops: list[Operation] = []
        self.since = 0.0  # monotonic time of its first operation


class BatchPlanner:
    """Places operations into a window of open batches; says which batches are ready to send.

    An operation goes into the first batch with room after the one holding its key's latest
    operation (any open batch, for a key not in the window), so no batch holds a key twice and a
    key's operations are in batch order. The oldest batch leaves when it is full, or, partial,
    when an operation needs a batch beyond the window.
    """

    def __init__(self, size: int = MAX_BATCH, window: int = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1 or window < 1:
            raise ValueError("size and window must be at least 1")
        self.size, self.window, self._clock = size, window, clock
        self._open: deque[_Batch] = deque()
        self._base = 0  # sequence number of the oldest open batch
        self._latest: dict[str, int] = {}  # key -> sequence number of the open batch with its latest op

    def __len__(self) -> int:
        """Operations held in open batches."""
        return sum(len(batch.ops) for batch in self._open)

    def add(self, op: Operation) -> list[list[Operation]]:
        """Place `op`; return the batches that left the window, oldest first, to be sent in that order."""
        ready: list[list[Operation]] = []
        after = self._latest.get(op.order_id, self._base - 1) + 1  # first sequence number allowed
        while True:
            index = after - self._base
            while index < len(self._open) and len(self._open[index].ops) >= self.size:
                index += 1
            if index < self.window:
                break
            ready.append(self._pop())  # never the key's own batch: that one is before `after`
        if index == len(self._open):
            self._open.append(_Batch())
        batch = self._open[index]
        if not batch.ops:
            batch.since = self._clock()
        batch.ops.append(op)
        self._latest[op.order_id] = self._base + index
        while self._open and len(self._open[0].ops) >= self.size:
            ready.append(self._pop())
        return ready

    def take(self, older_than: float = 0.0) -> list[list[Operation]]:
        """The open batches, oldest first, up to the last one started `older_than` seconds ago or earlier
        (a batch's first operation is never older than an earlier batch's, so they leave in order)."""
        cutoff = self._clock() - older_than
        ready: list[list[Operation]] = []
        while self._open and self._open[0].ops and self._open[0].since <= cutoff:
            ready.append(self._pop())
        return ready

    def _pop(self) -> list[Operation]:
        batch = self._open.popleft()
        for op in batch.ops:
            if self._latest.get(op.order_id) == self._base:
                del self._latest[op.order_id]
        self._base += 1
        return batch.ops


def plan_batches(ops: Iterable[Operation], size: int = MAX_BATCH, window: int = WINDOW) -> Iterator[list[Operation]]:
    """The batches the writer sends for `ops` (one shard), in sending order."""
    planner = BatchPlanner(size, window)
    for op in ops:
        yield from planner.add(op)
    yield from planner.take()


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
    """Write one batch, resending UnprocessedItems with jittered backoff; returns requests written.

    A throttled or failed call is retried by botocore (common/aws.py); this loop only resends what an
    answered call left unprocessed, so the two never multiply (common/retry.py).
    """
    backoff = Backoff(base, cap)
    pending = [write_request(op) for op in ops]
    for attempt in range(attempts):
        try:
            response = client.batch_write_item(RequestItems={table: pending})
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise TerminalError(
                    f"DynamoDB table {table!r} does not exist; create it with `make up` first"
                ) from None
            raise
        pending = response.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return len(ops)
        sleep(backoff.delay(attempt))
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
        self._planners = [BatchPlanner(batch_size) for _ in range(threads)]
        # Per shard, batches out of the planner but not yet in the queue: a put interrupted by a second Ctrl-C
        # leaves its batch here, first in line, so close() never writes a later step without an earlier one.
        self._backlog: list[deque[list[Operation]]] = [deque() for _ in range(threads)]
        self._queues: list[queue.Queue[list[Operation] | None]] = [
            queue.Queue(maxsize=queue_depth) for _ in range(threads)
        ]
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._closed = False
        self.writes = 0
        self.batches = 0
        self._workers = [
            threading.Thread(target=self._work, args=(q,), name=f"batch-writer-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, op: Operation) -> None:
        self._raise_error()
        shard = shard_of(op.order_id, len(self._planners))
        self._backlog[shard].extend(self._planners[shard].add(op))
        self._send(shard)

    def flush(self, wait: bool = True, older_than: float = 0.0) -> None:
        """Send partial batches (only those started `older_than` seconds ago or earlier, and the
        batches before them)."""
        for shard, planner in enumerate(self._planners):
            self._backlog[shard].extend(planner.take(older_than))
            self._send(shard)
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

    def _send(self, shard: int) -> None:
        """Hand the shard's waiting batches to its worker, oldest first (put may block: backpressure)."""
        backlog = self._backlog[shard]
        while backlog:
            batch = backlog.popleft()
            try:
                self._queues[shard].put(batch)
            except BaseException:  # interrupted while waiting for room: still first in line
                backlog.appendleft(batch)
                raise

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
                        self.batches += 1
            except BaseException as exc:  # surfaced to the submitting thread
                with self._lock:
                    self._error = self._error or exc
            finally:
                q.task_done()
