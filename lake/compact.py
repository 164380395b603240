"""Compaction: rewrite one day's many small lake objects as a few large ones, safely for readers.

Why: Firehose writes one object per flush, so a day at a 1 s buffer holds thousands of small
objects, and every reader (Athena, the Glue crawler, DuckDB through Arrow) pays a request per
object (docs/decisions.md section 3). `make compact` rewrites them as files of up to `target_rows` rows.

What S3 offers, and what it does not:
- LIST, GET and PUT are strongly consistent; one PUT is atomic; there is no rename and no
  multi-object transaction. https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel
- Conditional writes: PutObject If-None-Match: * (create only) and If-Match: <ETag>
  (compare-and-swap); GetObject If-Match reads exactly the version that was listed.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
- DeleteObjects removes up to 1,000 keys per call, each key atomically, not the set.
  https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
- Conditional deletes (2024): DeleteObject If-Match: <ETag>, and an ETag per key in DeleteObjects,
  delete only the current object holding that ETag (412 otherwise, 404 when it is gone).
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html
  MiniStack evaluates both as S3 does; the journal delete also re-reads the journal first (HEAD
  If-Match) so that an S3 ignoring the header can only get it wrong between those two requests.
So swapping N objects for M cannot be atomic for a reader that lists the prefix, which all of
ours do (Hive-style tables have no manifest; a table format such as Iceberg would give an atomic
pointer swap, but MiniStack's Athena cannot read Iceberg snapshots). We therefore order the
steps so that a listing reader can only ever see MORE rows than before, never fewer.

The protocol, for the partition <lake prefix>year=YYYY/month=MM/day=DD/:
 1. Lock: create the journal s3://<lake>/_compaction/<lake prefix>year=YYYY/month=MM/day=DD.json
    with If-None-Match: * (state `planning`). It lives outside the table location (and starts
    with `_`), so no reader or crawler ever sees it. A second compactor finds it and skips the
    partition; a journal not updated for `lease_s` is taken over (If-Match) and recovered. The
    run renews its lease (a compare-and-swap of the journal with a new `updated`) whenever a third
    of it has passed: before each input read and output PUT, between delete batches, and all
    through the grace period. A renewal that fails means another run took over: this run stops.
 2. Snapshot: LIST the partition once. Inputs are its data objects smaller than `large_bytes`
    (names starting with `_` or `.` are not data, as for Athena and Hive); objects written later
    (the firehose runner keeps writing) are never read, never deleted.
 3. Read every input with If-Match: <listed ETag>: exactly the listed bytes, or stop.
 4. Journal -> `writing`, with the inputs (key, ETag) and the output keys (If-Match).
 5. PUT the outputs, `~compacted-<UTC stamp>-<run id>-<NNNN>-<rows>rows<ext>` in the same
    partition, If-None-Match: * (`~` sorts them after every input: see "never fewer" below). Rows
    are copied as they are: same columns, same multiplicity (sorted by event time inside a file). A
    compacted file already holding `target_rows` rows is "settled": later runs leave it alone.
 6. Journal -> `committed` (If-Match). This single PUT is the decision: a crash before it rolls
    back (the outputs are deleted), a crash after it rolls forward (the inputs are deleted).
 7. After `grace_s`, DeleteObjects exactly the inputs (each with its listed ETag: an object rewritten
    since is left alone), then delete the journal with If-Match: <our ETag>.

The guarantee, precisely:
- No event is lost: at every instant each snapshot row is visible in an input, an output or both.
- After compaction the partition holds the same multiset of rows (event_id with multiplicity)
  as the snapshot, plus whatever the firehose wrote meanwhile, untouched.
- Duplicates, within a bounded window: from the first output PUT (step 5) to the last input
  delete (step 7), a reader that lists the partition may see snapshot rows twice. The lake
  contract already allows duplicates (at-least-once delivery): `sales_orders_current` collapses
  them (same event_id and sequence number); a raw change-log count (e.g. the CDC freshness KPI's
  `events`) counts them twice during that window. `CompactResult.duplicate_window_s` measures it.
- In-flight readers: S3 has no snapshot reads, so a query that listed the partition before step 7
  and opens an input after it gets NoSuchKey and must be retried; `grace_s` (longer than your
  longest query) avoids that at the price of a longer duplicate window.
- "Never fewer" holds for a reader that pages through the listing too. A LIST returns 1,000 keys a
  page, in key order; a reader still paging through a partition when the inputs go finds the
  outputs on a later page, since `~compacted-...` sorts after every Firehose name (`<stream>-...`),
  backfill page and older compacted file: it may see rows twice (the window above), never fewer.
  The inputs it listed before and opens after step 7 are NoSuchKey (in-flight readers, above).
- A crash leaves the journal; the next run on that partition (after `lease_s`) finishes or
  undoes the work the journal describes.
- Two runs: the journal's compare-and-swap decides. A live run keeps its journal younger than a
  third of the lease, so a second run skips the partition (it never rolls a live run forward nor
  back, and never cuts its grace short), whatever `grace_s` is. A run stalled past its lease (a
  suspended process, clocks more than 2/3 of the lease apart) is taken over; its next renewal
  fails and it stops without touching anything but its own not-yet-committed outputs, and its
  journal delete is conditional, so it never erases the journal of the run that took over.
  What remains: a run stalled between a renewal and its next write still makes that one write.
  An input delete is harmless (the takeover rolls the same commit forward, and the delete is
  conditional on the ETags); an output PUT after a roll-back is removed by the stalled run itself
  at its next renewal, but stays as a duplicate if that run dies first, or if the run that took
  over listed it as an input in between. S3 offers no fencing token that would close this.
- On the versioned lake bucket a deleted input stays as a noncurrent version until a lifecycle
  rule expires it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from common.aws import Clients, error_code, retrying
from common.config import Settings
from common.console import Console
from common.errors import ConfigError, PipelineError, TerminalError
from lake.encoding import parquet_bytes
from lake.partitions import Partition, day_partition

DEFAULT_TARGET_ROWS = 1_000_000  # ~60-100 MB of Parquet per file for this schema
DEFAULT_LARGE_BYTES = 64 * 1024 * 1024  # objects this big are already "large": left alone
DEFAULT_MIN_OBJECTS = 2  # compacting a single object buys nothing
DEFAULT_LEASE_S = 900.0  # a journal untouched this long belongs to a crashed run
JOURNAL_ROOT = "_compaction/"
DELETE_BATCH = 1000  # DeleteObjects' limit
OBJECT_FORMATS = ("parquet", "jsonl.gz", "jsonl")  # a lake object's format, told by its name
EXTENSIONS = {"parquet": ".parquet", "jsonl.gz": ".gz", "jsonl": ""}
_COMPACTED = re.compile(r"^~?compacted-.*-(\d+)rows(?:\.parquet|\.gz)?$")  # without ~: older runs
_LOST = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404")


class LockLost(TerminalError):
    """Another run took over (or holds) this partition's journal."""


# --- pure: names and plans ---------------------------------------------------------------------


@dataclass(frozen=True)
class LakeObject:
    """One object of a listing, with the ETag that its read and its delete are conditional on."""

    key: str
    size: int
    etag: str


def partition(year: int | str, month: int | str, day: int | str) -> Partition:
    """Validate and zero-pad a day; one clear line naming the bad field."""
    values = {}
    for name, value, width, low, high in (("year", year, 4, 1, 9999), ("month", month, 2, 1, 12),
                                          ("day", day, 2, 1, 31)):
        text = str(value).strip()
        if isinstance(value, bool) or not _ascii_digits(text) or not low <= int(text) <= high:
            raise ConfigError(f"{name} must be a number from {low} to {high}, got {value!r}")
        values[name] = text.zfill(width)
    try:
        datetime(int(values["year"]), int(values["month"]), int(values["day"]))
    except ValueError:
        raise ConfigError(f"{values['year']}-{values['month']}-{values['day']} is not a calendar day") from None
    return Partition(values["year"], values["month"], values["day"])


def _ascii_digits(text: str) -> bool:
    """0-9 only: str.isdigit() also takes superscripts and other scripts' digits, which name no partition."""
    return text.isascii() and text.isdigit()


def parse_day(text: str) -> Partition:
    """`--day 2026-01-05` -> its Partition; one clear line, naming --day, for anything else."""
    parts = str(text).strip().split("-")
    if len(parts) != 3 or not all(_ascii_digits(p) for p in parts):
        raise ConfigError(f"--day must be a UTC day written YYYY-MM-DD, got {text!r}")
    try:
        return partition(*parts)
    except ConfigError as exc:
        raise ConfigError(f"--day {text!r}: {exc}; write a UTC day as YYYY-MM-DD") from None


def validate_compact_args(*, more_than: Any, grace_s: Any, target_rows: Any) -> None:
    """One clear line naming the first bad flag of `compact`."""
    if isinstance(more_than, bool) or not isinstance(more_than, int) or more_than < 0:
        raise ConfigError(f"--more-than must be a whole number of objects, 0 or more, got {more_than!r}")
    if isinstance(grace_s, bool) or not isinstance(grace_s, int | float) or not 0 <= grace_s <= 3600:
        raise ConfigError(f"--grace must be a number of seconds from 0 to 3600, got {grace_s!r}")
    if isinstance(target_rows, bool) or not isinstance(target_rows, int) or target_rows < 1:
        raise ConfigError(f"--target-rows must be a positive whole number of rows per file, got {target_rows!r}")


def object_format(key: str) -> str | None:
    """The data format of a lake object by its name, or None when it is not table data."""
    name = key.rsplit("/", 1)[-1]
    if not name or name.startswith(("_", ".")):
        return None
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".gz"):
        return "jsonl.gz"
    return None if "." in name.rsplit("-", 1)[-1] else "jsonl"


def journal_key(part: Partition, lake_prefix: str) -> str:
    """The journal that locks a day: outside the table location, so no reader or crawler sees it."""
    return f"{JOURNAL_ROOT}{lake_prefix}year={part.year}/month={part.month}/day={part.day}.json"


def journal_partition(key: str, lake_prefix: str) -> Partition | None:
    """_compaction/<lake prefix>year=YYYY/month=MM/day=DD.json -> that Partition."""
    if not key.startswith(JOURNAL_ROOT) or not key.endswith(".json"):
        return None
    return day_partition(key[len(JOURNAL_ROOT):-len(".json")] + "/journal", lake_prefix)


@dataclass(frozen=True)
class CompactionPlan:
    """Which objects of one partition get rewritten, per format, and which are left alone."""

    groups: dict[str, tuple[LakeObject, ...]]
    kept: tuple[LakeObject, ...]

    @property
    def inputs(self) -> tuple[LakeObject, ...]:
        return tuple(o for fmt in OBJECT_FORMATS for o in self.groups.get(fmt, ()))


def is_settled(obj: LakeObject, target_rows: int, large_bytes: int) -> bool:
    """Large objects, and compacted files already holding `target_rows` rows, are not rewritten."""
    rows = compacted_rows(obj.key)
    return obj.size >= large_bytes or (rows is not None and rows >= target_rows)


def plan_partition(objects: Iterable[LakeObject], *, target_rows: int = DEFAULT_TARGET_ROWS,
                   large_bytes: int = DEFAULT_LARGE_BYTES, min_objects: int = DEFAULT_MIN_OBJECTS) -> CompactionPlan:
    """Small data objects of a format with at least `min_objects` of them are inputs; the rest stay."""
    by_format: dict[str, list[LakeObject]] = {}
    kept: list[LakeObject] = []
    for obj in sorted(objects, key=lambda o: o.key):
        fmt = object_format(obj.key)
        if fmt is None or is_settled(obj, target_rows, large_bytes):
            kept.append(obj)
        else:
            by_format.setdefault(fmt, []).append(obj)
    groups = {}
    for fmt in OBJECT_FORMATS:
        members = by_format.get(fmt, [])
        if len(members) >= max(min_objects, 2):
            groups[fmt] = tuple(members)
        else:
            kept += members
    return CompactionPlan(groups, tuple(sorted(kept, key=lambda o: o.key)))


def chunk_sizes(total_rows: int, target_rows: int) -> list[int]:
    """Rows per output file: full files of `target_rows`, the remainder last (none for no rows)."""
    if target_rows < 1:
        raise ConfigError(f"--target-rows must be at least 1, got {target_rows}")
    full, rest = divmod(total_rows, target_rows)
    return [target_rows] * full + ([rest] if rest else [])


def output_count(total_rows: int, target_rows: int) -> int:
    return math.ceil(total_rows / target_rows) if total_rows else 0


def output_key(prefix: str, stamp: datetime, run_id: str, index: int, rows: int, fmt: str) -> str:
    """~compacted-<UTC stamp>-<run id>-<NNNN>-<rows>rows<ext>: never a Firehose name, never hidden.

    `~` sorts after every character of a delivery stream's name ([a-zA-Z0-9_.-]), so the outputs come after
    every input in a listing: a reader paging through the partition when the inputs go meets them on a later
    page (it would miss both, were they listed first). The row count is in the name because a LIST is all the
    planner sees: a compacted file that is already full is left alone instead of being rewritten on every run.
    """
    stamp_text = f"{stamp.astimezone(UTC):%Y-%m-%d-%H-%M-%S}"
    return f"{prefix}~compacted-{stamp_text}-{run_id}-{index:04d}-{rows}rows{EXTENSIONS[fmt]}"


def compacted_rows(key: str) -> int | None:
    """The row count a compacted file's name carries (None for any other object)."""
    match = _COMPACTED.search(key.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def partitions_to_compact(objects: Iterable[LakeObject], lake_prefix: str, *, more_than: int,
                          target_rows: int = DEFAULT_TARGET_ROWS,
                          large_bytes: int = DEFAULT_LARGE_BYTES) -> list[Partition]:
    """Partitions holding more than `more_than` small data objects, oldest day first."""
    counts: dict[Partition, int] = {}
    for obj in objects:
        part = day_partition(obj.key, lake_prefix)
        if part is not None and object_format(obj.key) is not None and not is_settled(obj, target_rows, large_bytes):
            counts[part] = counts.get(part, 0) + 1
    return sorted((p for p, n in counts.items() if n > more_than), key=lambda p: (p.year, p.month, p.day))


def base_state(state: object) -> str:
    """A recovery that crashed leaves `recovering-<state>`: it still means <state>."""
    return str(state).removeprefix("recovering-")


def journal_action(journal: dict[str, Any]) -> str:
    """committed -> roll-forward (delete the inputs), writing -> roll-back (delete the outputs),
    anything else (planning: nothing was written yet) -> discard (just drop the journal)."""
    return {"committed": "roll-forward", "writing": "roll-back"}.get(base_state(journal.get("state")), "discard")


def recovery_action(journal: dict[str, Any], now: datetime, lease_s: float) -> str:
    """What to do with a journal found on a partition: skip (its run is alive) or recover it."""
    updated = datetime.fromisoformat(str(journal.get("updated", "1970-01-01T00:00:00+00:00")))
    if (now - updated).total_seconds() < lease_s:
        return "skip"
    return journal_action(journal)


class RowBatcher:
    """Arrow tables in, tables of exactly `target_rows` out (the remainder on `finish`)."""

    def __init__(self, target_rows: int) -> None:
        chunk_sizes(0, target_rows)  # validates
        self.target_rows = target_rows
        self._pending: list[pa.Table] = []
        self._rows = 0

    def add(self, table: pa.Table) -> Iterator[pa.Table]:
        self._pending.append(table)
        self._rows += table.num_rows
        while self._rows >= self.target_rows:
            merged = pa.concat_tables(self._pending, promote_options="permissive")
            yield merged.slice(0, self.target_rows)
            rest = merged.slice(self.target_rows)
            self._pending, self._rows = ([rest] if rest.num_rows else []), rest.num_rows

    def finish(self) -> Iterator[pa.Table]:
        if self._rows:
            yield pa.concat_tables(self._pending, promote_options="permissive")
        self._pending, self._rows = [], 0


def sort_rows(table: pa.Table) -> pa.Table:
    """Event-time order inside a file: tighter min/max statistics for time filters."""
    keys = [(k, "ascending") for k in ("event_ts", "sequence_number", "event_id") if k in table.column_names]
    return table.sort_by(keys) if keys else table


def split_lines(body: bytes) -> list[bytes]:
    """JSON lines of one object, each with its newline (a missing final newline is added)."""
    lines = body.splitlines(keepends=True)
    return [line if line.endswith(b"\n") else line + b"\n" for line in lines if line.strip()]


# --- I/O: the journal ----------------------------------------------------------------------------


@dataclass
class Journal:
    """This run's journal and the ETag that proves we still own it."""

    key: str
    body: dict[str, Any]
    etag: str = ""


class Clock:
    """Wall time (journal `updated`, compared across hosts), a monotonic clock and sleep: tests inject one."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = Clock()


def _read_journal(s3: Any, bucket: str, key: str) -> tuple[dict[str, Any], str] | None:
    try:
        resp = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    return json.loads(resp["Body"].read()), resp["ETag"]


def _write_journal(s3: Any, bucket: str, journal: Journal, clock: Clock, **changes: Any) -> None:
    """Create (no ETag yet) or compare-and-swap the journal; LockLost if someone else owns it."""
    body = {**journal.body, **changes, "updated": clock.now().isoformat()}
    condition = {"IfMatch": journal.etag} if journal.etag else {"IfNoneMatch": "*"}
    try:
        resp = s3.put_object(Bucket=bucket, Key=journal.key, Body=json.dumps(body, indent=1).encode(),
                             ContentType="application/json", **condition)
    except ClientError as exc:
        if error_code(exc) not in _LOST:
            raise
        # A retried request may have succeeded the first time: if the journal is ours, it is.
        found = _read_journal(s3, bucket, journal.key)
        if found is None or found[0].get("run_id") != body["run_id"] or found[0].get("state") != body["state"]:
            raise LockLost(f"the compaction journal {journal.key} belongs to another run") from None
        journal.body, journal.etag = found
        return
    journal.body, journal.etag = body, resp["ETag"]


def _delete_journal(s3: Any, bucket: str, journal: Journal) -> None:
    """Delete the journal only while it is still ours: If-Match with our ETag; LockLost if it is not.

    AWS S3 (conditional deletes, 2024) and MiniStack evaluate If-Match on DeleteObject atomically.
    For an S3 that ignores the header, the journal is re-read first (HeadObject If-Match): a journal
    another run has taken over is left alone, except in the window between those two requests.
    A journal already gone is fine: our own earlier attempt, or a recovery that finished our work.
    """
    for call in (s3.head_object, s3.delete_object):
        try:
            call(Bucket=bucket, Key=journal.key, IfMatch=journal.etag)
        except ClientError as exc:
            code = error_code(exc)
            if code in ("NoSuchKey", "404"):
                return
            if code in _LOST:
                raise LockLost(f"the compaction journal {journal.key} now belongs to another run; "
                               "left it alone") from None
            raise


@dataclass
class Lease:
    """This run's hold on its journal; every journal write is a compare-and-swap that renews it.

    A journal whose `updated` is `lease_s` old is taken over by the next run, so a live run renews
    it (CAS, same state, new `updated`) whenever a third of the lease has passed since its last
    write: before each input read and output PUT, between delete batches, and all through the grace
    period. A CAS that fails raises LockLost: another run took over, and this one must stop.
    """

    s3: Any
    bucket: str
    journal: Journal
    lease_s: float
    clock: Clock
    renewed: float = -math.inf  # monotonic time of our last successful journal write

    def write(self, **changes: Any) -> None:
        _write_journal(self.s3, self.bucket, self.journal, self.clock, **changes)
        self.renewed = self.clock.monotonic()

    def keep(self) -> None:
        """Renew when a third of the lease has passed since our last write; LockLost if we lost it."""
        if self.clock.monotonic() - self.renewed >= self.lease_s / 3:
            self.write()

    def wait(self, seconds: float) -> None:
        """Sleep `seconds` in slices of a third of the lease, renewing after each one."""
        remaining = seconds
        while remaining > 0:
            step = min(remaining, self.lease_s / 3) if self.lease_s > 0 else remaining
            self.clock.sleep(step)
            remaining -= step
            self.write()

    def release(self) -> None:
        _delete_journal(self.s3, self.bucket, self.journal)


def _delete_keys(s3: Any, bucket: str, keys: list[str], etags: dict[str, str] | None = None,
                 tick: Callable[[], None] | None = None) -> list[str]:
    """DeleteObjects in batches of 1,000 (`tick` before each); returns the keys left alone as changed.

    With `etags`, a key is deleted only if it still holds that ETag (conditional delete): an object
    rewritten since it was read holds rows we did not copy. A key already gone is fine (idempotent).
    """
    etags = etags or {}
    delete = retrying()(s3.delete_objects)
    changed: list[str] = []
    for start in range(0, len(keys), DELETE_BATCH):
        if tick is not None:
            tick()
        batch = [{"Key": k, **({"ETag": etags[k]} if etags.get(k) else {})} for k in keys[start:start + DELETE_BATCH]]
        resp = delete(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        for error in resp.get("Errors", []):
            if error.get("Code") == "NoSuchKey":
                continue
            if error.get("Code") in ("PreconditionFailed", "412"):
                changed.append(error["Key"])
                continue
            raise TerminalError(f"could not delete {error['Key']}: {error.get('Code')}; re-run compact "
                                "(the journal finishes the job)")
    return changed


def list_objects(s3: Any, bucket: str, prefix: str) -> list[LakeObject]:
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects += [LakeObject(o["Key"], int(o["Size"]), o["ETag"]) for o in page.get("Contents", [])]
    return objects


def recover(s3: Any, bucket: str, journal: Journal, console: Console, clock: Clock = SYSTEM_CLOCK,
            lease_s: float = DEFAULT_LEASE_S) -> str:
    """Finish (committed) or undo (writing) what a crashed run's journal describes; then drop it."""
    action = journal_action(journal.body)
    run_id = journal.body.get("run_id")
    # Take the journal over first (If-Match): two recoveries never act on the same journal.
    lease = Lease(s3, bucket, journal, lease_s, clock)
    lease.write(state=f"recovering-{base_state(journal.body.get('state'))}", recovered_from=run_id,
                run_id=f"recover-{uuid.uuid4().hex[:8]}")
    changed: list[str] = []
    if action == "roll-forward":
        inputs = journal.body.get("inputs", [])
        changed = _delete_keys(s3, bucket, [i["key"] for i in inputs], {i["key"]: i.get("etag", "") for i in inputs},
                               lease.keep)
    elif action == "roll-back":
        _delete_keys(s3, bucket, list(journal.body.get("outputs", [])), None, lease.keep)
    lease.release()
    console.warn(f"recovered compaction run {run_id} ({action}) from {journal.key}")
    _warn_changed(console, journal.key, changed)
    return action


def _warn_changed(console: Console, where: str, changed: list[str]) -> None:
    if changed:
        console.warn(f"{where}: {len(changed)} input(s) were rewritten after they were read and stay in place "
                     f"(their new rows were not compacted), e.g. {changed[0]}")


# --- I/O: compaction -------------------------------------------------------------------------------


@dataclass
class CompactResult:
    partition: str
    inputs: int = 0
    outputs: list[str] = field(default_factory=list)
    rows: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    kept: int = 0
    elapsed_s: float = 0.0
    duplicate_window_s: float = 0.0
    recovered: str = ""
    skipped: str = ""
    run_id: str = ""


def _read_input(s3: Any, bucket: str, obj: LakeObject) -> bytes:
    try:
        body = retrying()(s3.get_object)(Bucket=bucket, Key=obj.key, IfMatch=obj.etag)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("PreconditionFailed", "NoSuchKey", "412", "404"):
            raise InputChanged(f"{obj.key} changed or vanished since it was listed") from None
        raise
    return gzip.decompress(body) if obj.key.endswith(".gz") else body


class InputChanged(TerminalError):
    """An input is not the object we listed any more: this run stops, nothing is deleted."""


def _build_outputs(s3: Any, bucket: str, fmt: str, inputs: tuple[LakeObject, ...], target_rows: int,
                   name: Callable[[int, str], str], tick: Callable[[], None] = lambda: None,
                   ) -> tuple[list[tuple[str, bytes]], int]:
    """Read the inputs one by one (`tick` before each); return (key, body) per output and the row count."""
    outputs: list[tuple[str, bytes]] = []
    rows = 0
    if fmt == "parquet":
        batcher = RowBatcher(target_rows)

        def emit(tables: Iterable[pa.Table]) -> None:
            for table in tables:
                outputs.append((name(table.num_rows, fmt), parquet_bytes(sort_rows(table))))

        for obj in inputs:
            tick()
            try:
                table = pq.read_table(io.BytesIO(_read_input(s3, bucket, obj)))
            except pa.ArrowException as exc:
                raise TerminalError(f"s3://{bucket}/{obj.key} is not readable Parquet "
                                    f"({str(exc).splitlines()[0]}); move it out of the partition") from None
            rows += table.num_rows
            emit(batcher.add(table))
        emit(batcher.finish())
        return outputs, rows
    lines: list[bytes] = []
    for obj in inputs:
        tick()
        lines += split_lines(_read_input(s3, bucket, obj))
    rows = len(lines)
    start = 0
    for size in chunk_sizes(rows, target_rows):
        body = b"".join(lines[start:start + size])
        outputs.append((name(size, fmt), gzip.compress(body, compresslevel=6) if fmt == "jsonl.gz" else body))
        start += size
    return outputs, rows


def compact_partition(
    clients: Clients,
    settings: Settings,
    *,
    year: int | str,
    month: int | str,
    day: int | str,
    console: Console,
    target_rows: int = DEFAULT_TARGET_ROWS,
    large_bytes: int = DEFAULT_LARGE_BYTES,
    min_objects: int = DEFAULT_MIN_OBJECTS,
    grace_s: float = 0.0,
    lease_s: float = DEFAULT_LEASE_S,
    clock: Clock = SYSTEM_CLOCK,
) -> CompactResult:
    """Rewrite one day's small objects as files of up to `target_rows` rows (see the module docstring)."""
    chunk_sizes(0, target_rows)
    part = partition(year, month, day)
    s3 = clients.s3
    bucket = settings.lake_bucket_for(clients.account_id)
    prefix = part.prefix(settings.lake_prefix)
    run_id = uuid.uuid4().hex[:8]
    result = CompactResult(str(part), run_id=run_id)
    began = clock.monotonic()
    journal = Journal(journal_key(part, settings.lake_prefix),
                      {"run_id": run_id, "partition": prefix, "started": clock.now().isoformat()})

    # 1. lock (recovering a stale journal first)
    found = _read_journal(s3, bucket, journal.key)
    if found is not None:
        body, etag = found
        if recovery_action(body, clock.now(), lease_s) == "skip":
            result.skipped = f"run {body.get('run_id')} is compacting it (journal {journal.key})"
            console.warn(f"{part}: skipped, {result.skipped}")
            return result
        try:
            result.recovered = recover(s3, bucket, Journal(journal.key, body, etag), console, clock, lease_s)
        except LockLost:
            result.skipped = f"another run is recovering the journal {journal.key}"
            console.warn(f"{part}: skipped, {result.skipped}")
            return result
    lease = Lease(s3, bucket, journal, lease_s, clock)
    try:
        lease.write(state="planning")
    except LockLost:
        result.skipped = f"another run took the journal {journal.key} first"
        console.warn(f"{part}: skipped, {result.skipped}")
        return result

    written: list[str] = []
    committing = False  # from the commit PUT on, our outputs may be what a roll-forward relies on
    committed = False
    try:
        # 2-3. snapshot and read
        plan = plan_partition(list_objects(s3, bucket, prefix), target_rows=target_rows, large_bytes=large_bytes,
                              min_objects=min_objects)
        result.kept = len(plan.kept)
        if not plan.groups:
            result.skipped = f"fewer than {max(min_objects, 2)} small objects of one format to rewrite"
            lease.release()
            console.info(f"{part}: nothing to compact ({result.skipped})")
            return result
        stamp, numbers = clock.now(), itertools.count(1)

        def name(rows: int, fmt: str) -> str:
            return output_key(prefix, stamp, run_id, next(numbers), rows, fmt)

        outputs: list[tuple[str, bytes]] = []
        for fmt, inputs in plan.groups.items():
            built, rows = _build_outputs(s3, bucket, fmt, inputs, target_rows, name, lease.keep)
            outputs += built
            result.rows += rows
        result.inputs = len(plan.inputs)
        result.bytes_in = sum(o.size for o in plan.inputs)
        result.bytes_out = sum(len(body) for _, body in outputs)
        result.outputs = [key for key, _ in outputs]

        # 4-6. intent, outputs, commit
        lease.write(state="writing", outputs=result.outputs, rows=result.rows,
                    inputs=[{"key": o.key, "etag": o.etag, "size": o.size} for o in plan.inputs])
        window_opened = clock.monotonic()
        put = retrying()(s3.put_object)
        for key, body in outputs:
            lease.keep()
            put(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            written.append(key)
        committing = True
        lease.write(state="committed")
        committed = True

        # 7. grace (renewing the lease), delete exactly the inputs we read, drop our journal
        lease.wait(grace_s)
        changed = _delete_keys(s3, bucket, [o.key for o in plan.inputs], {o.key: o.etag for o in plan.inputs},
                               lease.keep)
        result.duplicate_window_s = clock.monotonic() - window_opened
        _warn_changed(console, str(part), changed)
        lease.release()
    except LockLost as exc:
        # Another run took the journal over (we were stalled past the lease): it finishes or undoes
        # this run's work, so we stop. Only before the commit do we remove our own outputs, which the
        # takeover rolled back already but which a PUT of ours may have re-created since.
        if not committing:
            with contextlib.suppress(Exception):
                _delete_keys(s3, bucket, written)
        result.skipped = f"lost its lease ({exc}); stopped, the run that took over finishes the job"
        console.warn(f"{part}: {result.skipped}")
        return result
    except InputChanged as exc:
        result.skipped = str(exc)
        _abandon(s3, bucket, journal, written)
        console.warn(f"{part}: skipped, {exc}; nothing was deleted")
        return result
    except BaseException:
        if not committed:
            _abandon(s3, bucket, journal, written, committing)
        raise  # committed: the journal stays, the next run rolls forward
    result.elapsed_s = clock.monotonic() - began
    console.ok(f"{part}: {result.inputs} objects -> {len(result.outputs)} ({result.rows:,} rows, "
               f"{result.bytes_in / 1e6:.1f} MB -> {result.bytes_out / 1e6:.1f} MB) in {result.elapsed_s:.1f}s")
    return result


def _abandon(s3: Any, bucket: str, journal: Journal, written: list[str], committing: bool = False) -> None:
    """Undo a run that failed before it knew it had committed.

    If the journal says we did commit (the commit PUT landed but its answer was lost), nothing is
    undone: the next run rolls forward. If the commit was sent and the journal is no longer ours,
    we cannot tell whether a takeover rolled our commit forward, so nothing is touched either.
    Otherwise our outputs go first, then our journal (If-Match), so a failure half way leaves a
    `writing` journal that the next run rolls back: inputs are never touched. Our outputs are every one
    the journal lists, not only those whose upload answered: an upload can land and lose its answer
    (botocore's retry then meets If-None-Match), and that object would otherwise stay, its rows twice.
    """
    with contextlib.suppress(Exception):
        found = _read_journal(s3, bucket, journal.key)
        ours = found is not None and found[0].get("run_id") == journal.body.get("run_id")
        if ours and base_state(found[0].get("state")) == "committed":
            return
        if committing and not ours:
            return
        listed = [str(key) for key in (found[0].get("outputs") or [])] if ours and found is not None else []
        _delete_keys(s3, bucket, list(dict.fromkeys([*written, *listed])))
        if ours and found is not None:
            _delete_journal(s3, bucket, Journal(journal.key, found[0], found[1]))


def compact_all(
    clients: Clients,
    settings: Settings,
    *,
    console: Console,
    more_than: int = 10,
    target_rows: int = DEFAULT_TARGET_ROWS,
    large_bytes: int = DEFAULT_LARGE_BYTES,
    grace_s: float = 0.0,
    lease_s: float = DEFAULT_LEASE_S,
    clock: Clock = SYSTEM_CLOCK,
) -> list[CompactResult]:
    """Compact every partition holding more than `more_than` small data objects (one LIST of the lake)."""
    if more_than < 1:
        raise ConfigError(f"--more-than must be at least 1, got {more_than}")
    bucket = settings.lake_bucket_for(clients.account_id)
    objects = list_objects(clients.s3, bucket, settings.lake_prefix)
    parts = partitions_to_compact(objects, settings.lake_prefix, more_than=more_than, target_rows=target_rows,
                                  large_bytes=large_bytes)
    # Stale journals on partitions that no longer qualify are recovered too (a crash mid-delete).
    journals = list_objects(clients.s3, bucket, JOURNAL_ROOT + settings.lake_prefix)
    stale = {journal_partition(j.key, settings.lake_prefix) for j in journals}
    parts += sorted((p for p in stale if p is not None and p not in parts), key=lambda p: (p.year, p.month, p.day))
    if not parts:
        console.info(f"no partition of s3://{bucket}/{settings.lake_prefix} has more than {more_than} small objects")
        return []
    console.step(f"compacting {len(parts)} partition(s) of s3://{bucket}/{settings.lake_prefix}")
    results, failed = [], []
    for p in parts:  # one partition that cannot be compacted does not keep the others from it
        try:
            results.append(compact_partition(clients, settings, year=p.year, month=p.month, day=p.day,
                                             console=console, target_rows=target_rows, large_bytes=large_bytes,
                                             grace_s=grace_s, lease_s=lease_s, clock=clock))
        except PipelineError as exc:
            failed.append(f"{p} ({str(exc).splitlines()[0]})")
            console.warn(f"{p}: not compacted: {str(exc).splitlines()[0]}")
    if failed:
        raise TerminalError(f"{len(failed)} partition(s) could not be compacted: {'; '.join(failed)}")
    return results
