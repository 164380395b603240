"""Patch: stream records live in a file under the emulator's data dir, not in its memory.

MiniStack 1.5.33 keeps every DynamoDB stream record and every Kinesis record as Python dicts for the
24 hours both services retain them (services/dynamodb.py `_stream_records`, services/kinesis.py each
shard's "records"). A DynamoDB record also holds the item's old image, a version the table itself no
longer keeps. Measured in the emulator after 10,000 orders through the pipeline (~39,000 change events):
stream records 168 MB beyond the table's own items (46 MB), Kinesis records 92 MB, S3 objects 5 MB;
at 200,000 orders the emulator reached 6.4 GB, and every full garbage collection walked all of it.

This patch keeps those lists as `SpilledRecords`: a sequence with a list's operations whose elements
are pickled into one append-only file per emulator process (created in MiniStack's STATE_DIR and
unlinked at once, so its disk space is freed when the process ends, however it ends); memory keeps 12
bytes per record (offset and length) and the 8,192 records used last as the objects MiniStack built, so
a consumer that keeps up never unpickles. An older record is read back as a fresh copy of the record as
appended; none of MiniStack's readers changes a stored record, so both answer alike.

- DynamoDB: after `_emit_stream_event` appends, the table's list becomes a SpilledRecords (restored
  lists too). Streams GetShardIterator AT/AFTER_SEQUENCE_NUMBER scanned the stream for the sequence
  number; the patch bisects (sequence numbers grow along the stream, the same assumption as
  kinesis_reads'), so opening a shard reads about 20 records instead of all of them.
- Kinesis: before `_expire_records` (which every put runs first), each shard's list becomes one.
- Persistence: `copy.deepcopy` of a SpilledRecords is a plain list, so saved state is unchanged.

Known cost: SubscribeToShard (enhanced fan-out) filters a shard's whole list on each pass, which now
unpickles it; the project never calls it. docs/emulator-patches.md has the upstream report.
Runs in the emulator's interpreter: standard library and MiniStack only.
"""

from __future__ import annotations

import copy
import os
import pickle
import tempfile
import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from typing import Any

SPAN_LIMIT = 16 << 20  # a slice whose records lie within 16 MB of the file is read with one pread
RECENT = 8192  # records kept as objects, most recently used: a consumer that keeps up never unpickles
_MISSING = object()


class RecordLog:
    """One append-only file of pickled records, shared by every list of a process (one descriptor)."""

    def __init__(self, directory: str | None = None, capacity: int = RECENT) -> None:
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="ministack-records-", suffix=".bin", dir=directory)
        os.unlink(path)  # nothing left behind: the space is freed when the descriptor closes
        self.fd = fd
        self.size = 0
        self._lock = threading.Lock()
        self.recent: OrderedDict[int, Any] = OrderedDict()  # offset -> record, newest last
        self.capacity = capacity

    def append(self, blob: bytes, record: Any) -> int:
        with self._lock:
            offset = self.size
            view = memoryview(blob)
            while view:
                written = os.pwrite(self.fd, view, offset + len(blob) - len(view))
                view = view[written:]
            self.size += len(blob)
            self._remember(offset, record)
        return offset

    def _remember(self, offset: int, record: Any) -> None:
        self.recent[offset] = record
        if len(self.recent) > self.capacity:
            self.recent.popitem(last=False)

    def load(self, offset: int, length: int, blob: bytes | memoryview | None = None) -> Any:
        """The record at `offset`: the object itself while it is among the most recent, else unpickled."""
        with self._lock:
            record = self.recent.get(offset, _MISSING)
            if record is not _MISSING:
                self.recent.move_to_end(offset)
                return record
        record = pickle.loads(self.read(offset, length) if blob is None else blob)
        with self._lock:
            self._remember(offset, record)
        return record

    def read(self, offset: int, length: int) -> bytes:
        chunks = []
        while length > 0:
            chunk = os.pread(self.fd, length, offset)
            if not chunk:
                raise OSError(f"record log ends at {offset}, {length} bytes short")
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        os.close(self.fd)


class SpilledRecords(MutableSequence):
    """A list of records kept in a RecordLog: every list operation, each read a fresh copy."""

    def __init__(self, log: RecordLog, records: Iterable[Any] = ()) -> None:
        self._log = log
        self._starts = array("Q")
        self._lengths = array("I")
        self._lock = threading.RLock()
        self.extend(records)

    def _store(self, record: Any) -> tuple[int, int]:
        blob = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        return self._log.append(blob, record), len(blob)

    def _load(self, index: int) -> Any:
        return self._log.load(self._starts[index], self._lengths[index])

    def _load_range(self, first: int, stop: int) -> list[Any]:
        """Records first..stop-1: recent ones as they are, the others unpickled from one read of their span."""
        missing = {i for i in range(first, stop) if self._starts[i] not in self._log.recent}
        low = min((self._starts[i] for i in missing), default=0)
        high = max((self._starts[i] + self._lengths[i] for i in missing), default=0)
        if len(missing) < 2 or high - low > SPAN_LIMIT:
            return [self._load(i) for i in range(first, stop)]
        span = memoryview(self._log.read(low, high - low))
        return [self._log.load(self._starts[i], self._lengths[i],
                               span[self._starts[i] - low:self._starts[i] - low + self._lengths[i]] if i in missing
                               else None)
                for i in range(first, stop)]

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int | slice) -> Any:
        with self._lock:
            if isinstance(index, slice):
                start, stop, step = index.indices(len(self))
                if step == 1:
                    return self._load_range(start, stop)
                return [self._load(i) for i in range(start, stop, step)]
            if index < 0:
                index += len(self)
            if not 0 <= index < len(self):
                raise IndexError("list index out of range")
            return self._load(index)

    def __setitem__(self, index: int | slice, value: Any) -> None:
        with self._lock:
            if isinstance(index, slice):
                stored = [self._store(record) for record in value]
                self._starts[index] = array("Q", [s for s, _ in stored])
                self._lengths[index] = array("I", [n for _, n in stored])
            else:
                self._starts[index], self._lengths[index] = self._store(value)

    def __delitem__(self, index: int | slice) -> None:
        with self._lock:
            del self._starts[index]
            del self._lengths[index]

    def insert(self, index: int, value: Any) -> None:
        with self._lock:
            start, length = self._store(value)
            self._starts.insert(index, start)
            self._lengths.insert(index, length)

    def append(self, value: Any) -> None:
        with self._lock:
            start, length = self._store(value)
            self._starts.append(start)
            self._lengths.append(length)

    def extend(self, values: Iterable[Any]) -> None:
        for value in list(values):  # a list of itself too
            self.append(value)

    def clear(self) -> None:
        with self._lock:
            self._starts = array("Q")
            self._lengths = array("I")

    def __iter__(self) -> Iterator[Any]:
        position = 0
        while True:
            chunk = self[position:position + 256]
            if not chunk:
                return
            yield from chunk
            position += len(chunk)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SpilledRecords | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return copy.deepcopy(list(self), memo)  # the recent records are live objects; saved state stays plain JSON

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return list, (list(self),)

    def __repr__(self) -> str:
        return f"SpilledRecords({len(self)} records)"


def sequence_index(records: Any, sequence_number: str) -> int | None:
    """Index of the DynamoDB stream record with this sequence number, by bisection; None if none has it.

    Equals MiniStack's scan `next(i for i, r in enumerate(records) if r[...] == seq)` on a stream
    whose sequence numbers increase (they are fixed-width, millisecond-prefixed strings)."""
    index = bisect_left(records, sequence_number, key=lambda r: r["dynamodb"]["SequenceNumber"])
    if index < len(records) and records[index]["dynamodb"]["SequenceNumber"] == sequence_number:
        return index
    return None


def apply() -> None:
    from ministack.core import persistence
    from ministack.services import dynamodb, dynamodb_streams, kinesis

    log = RecordLog(persistence.STATE_DIR)

    original_emit = dynamodb._emit_stream_event

    def _emit_stream_event(table_name: str, *args: Any, **kwargs: Any) -> Any:
        result = original_emit(table_name, *args, **kwargs)
        records = dynamodb._stream_records.get(table_name)
        if type(records) is list:  # just created, or restored from saved state
            dynamodb._stream_records[table_name] = SpilledRecords(log, records)
        return result

    original_expire = kinesis._expire_records

    def _expire_records(stream: dict[str, Any]) -> None:
        for shard in stream["shards"].values():
            if type(shard["records"]) is list:  # a new shard, or one restored from saved state
                shard["records"] = SpilledRecords(log, shard["records"])
        original_expire(stream)

    original_iterator = dynamodb_streams._get_shard_iterator
    streams = dynamodb_streams

    def _get_shard_iterator(data: dict[str, Any]) -> Any:
        iterator_type, seq, arn = data.get("ShardIteratorType"), data.get("SequenceNumber"), data.get("StreamArn")
        shard_id = data.get("ShardId") or streams._DEFAULT_SHARD_ID
        if iterator_type not in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER") or not isinstance(seq, str) \
                or not seq or not arn or shard_id != streams._DEFAULT_SHARD_ID:
            return original_iterator(data)  # MiniStack's own answer, errors included
        source = streams._request_stream_source(arn)
        if source is None:
            return original_iterator(data)
        spec, table_name = source
        info = streams._enabled_stream_info(table_name, account_id=spec.account_id, region=spec.region)
        if info is None or info["StreamArn"] != arn:
            closed = streams._ddb.closed_stream(arn)
            if closed is None:
                return original_iterator(data)
            records, horizon = closed["records"], closed["trimmed"]
        else:
            records = streams._records_for(spec.account_id, spec.region, table_name)
            horizon = streams._horizon(spec.account_id, spec.region, table_name)
        index = sequence_index(records, seq)
        if index is None:
            # Not found by bisection: trimmed, never issued, or appended out of order (MiniStack numbers a record
            # under a lock and appends it later, from more than one thread). MiniStack's scan decides: rare, so
            # its cost (a pass over the stream) is paid only here.
            return original_iterator(data)
        position = horizon + (index if iterator_type == "AT_SEQUENCE_NUMBER" else index + 1)
        iterator = streams._encode_iterator(table_name, shard_id, position, account_id=spec.account_id,
                                            region=spec.region, stream_arn=arn)
        return streams.json_response({"ShardIterator": iterator})

    dynamodb._emit_stream_event = _emit_stream_event
    kinesis._expire_records = _expire_records
    dynamodb_streams._get_shard_iterator = _get_shard_iterator
