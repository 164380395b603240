"""`make backfill`: the table's existing items enter the lake as snapshot rows, then CDC goes on (docs/backfill.md).

`run_backfill` is the one entry point: it resumes an unfinished run from its checkpoint, or starts a
new snapshot; on the emulated targets by a parallel Scan (backfill/scan.py), which ends with tombstones
for the orders the lake holds but the table no longer has (backfill/tombstones.py), on `aws` by
DynamoDB's export to S3 (backfill/export.py). The pure rules (rows, ordering, bookkeeping) are in backfill/core.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backfill.core import Progress as RunProgress
from backfill.core import Step, iso, last_snapshot, parse_time, resumable, snapshot_start
from backfill.export import describe, export_steps, run_exports
from backfill.lake_out import LakeOut
from backfill.scan import run_scan
from backfill.state import ProgressStore, checkpoint_path
from backfill.tombstones import write_tombstones
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.process import exclusive
from common.state_dir import backfill_lock_file

__all__ = ["BackfillResult", "run_backfill"]


@dataclass(frozen=True)
class BackfillResult:
    mode: str
    snapshot_at: tuple[str, ...]  # each step's snapshot time (ISO UTC)
    rows: int
    failed: int
    resumed: bool
    seconds: float
    tombstones: int = 0  # orders alive in the lake that the snapshot did not contain, now deleted rows


def _fresh(clients: Clients, settings: Settings, since: datetime | None, segments: int,
           previous: datetime | None) -> RunProgress:
    """A new run's progress; `previous`: when the table's last snapshot began (None: no earlier run)."""
    now = datetime.now(UTC)
    started = snapshot_start(now, previous)
    if started > now:
        time.sleep((started - now).total_seconds())
    if settings.emulated:
        # The snapshot begins now: every Scan page is read after this instant (docs/backfill.md, the rule).
        step = Step(at=started.isoformat(), total_segments=segments)
        return RunProgress(mode="scan", table=settings.table_name, segments=segments,
                           since=since.isoformat() if since else "", steps=(step,), started=started.isoformat())
    return RunProgress(mode="export", table=settings.table_name, segments=0,
                       since=since.isoformat() if since else "", steps=export_steps(clients, settings, since),
                       started=started.isoformat())


def run_backfill(clients: Clients, settings: Settings, console: Console, since: datetime | None = None,
                 segments: int | None = None) -> BackfillResult:
    """Backfill the table into the lake; resumable (killed, it goes on where it stopped) and idempotent.

    One backfill per table at a time: a second one stops at once with one line instead of sharing
    the first one's checkpoint.
    """
    lock = backfill_lock_file(settings.state_dir, settings.table_name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(lock, timeout=0, what=f"another make backfill of {settings.table_name}"):
        return _run_backfill(clients, settings, console, since, segments)


def _run_backfill(clients: Clients, settings: Settings, console: Console, since: datetime | None,
                  segments: int | None) -> BackfillResult:
    segments = segments or settings.backfill_segments
    store = ProgressStore(checkpoint_path(settings), console)
    mode = "scan" if settings.emulated else "export"
    wanted = RunProgress(mode=mode, table=settings.table_name, segments=segments if mode == "scan" else 0,
                         since=since.isoformat() if since else "")
    last = store.load()
    saved = resumable(last, wanted)
    resumed = saved is not None
    progress = saved if saved is not None else _fresh(clients, settings, since, segments, last_snapshot(last))
    store.begin(progress)
    done_before = progress.rows() + progress.failed()
    if resumed:
        console.step(f"resuming the backfill of {settings.table_name} begun {progress.started} "
                     f"({done_before:,} items already in the lake)")
    elif since is not None and settings.emulated:
        console.step(f"SINCE={iso(since)}: the emulator has no incremental export, so every item is read "
                     "(a superset of the changes since then)")
    if not settings.emulated:
        for step in progress.steps:
            console.step(f"{describe(step)} of {settings.table_name} to "
                         f"s3://{settings.lake_bucket_for(clients.account_id)}/{settings.backfill_export_prefix}")
    began = time.monotonic()
    out = LakeOut(clients, settings)
    total = _item_count(clients, settings) if settings.emulated else None
    with _bar(console, total, done_before) as advance:
        if settings.emulated:
            run_scan(clients, settings, out, store, advance)
        else:
            run_exports(clients, settings, out, store, advance)
    if store.progress.writes_tombstones and not store.progress.tombstones_done:
        write_tombstones(clients, settings, out, store, console)
    final = store.progress
    stamps = tuple(iso(parse_time("snapshot", s.at)) for s in final.steps if s.at)
    result = BackfillResult(mode=final.mode, snapshot_at=stamps,
                            rows=final.rows(), failed=final.failed(), resumed=resumed,
                            seconds=time.monotonic() - began, tombstones=final.tombstones)
    console.ok(f"backfilled {result.rows:,} orders into the lake as snapshot rows of "
               f"{', '.join(result.snapshot_at)} in {result.seconds:.1f}s"
               + (f" (resumed; {done_before:,} were already there)" if resumed else ""))
    if result.tombstones:
        console.ok(f"{result.tombstones:,} orders the lake held but the table no longer has are marked deleted "
                   "as of the snapshot")
    if result.failed:
        console.warn(f"{result.failed:,} items do not fit the lake's row contract: their reasons are under "
                     f"s3://{out.bucket}/{settings.error_prefix}backfill-failed/")
    return result


def _item_count(clients: Clients, settings: Settings) -> int | None:
    """DescribeTable's ItemCount: the bar's total (AWS updates it about every six hours: a hint only)."""
    try:
        table = clients.dynamodb.describe_table(TableName=settings.table_name)["Table"]
        return int(table.get("ItemCount", 0)) or None
    except Exception:  # the bar goes without a total; the Scan itself says what is wrong
        return None


class _bar:
    """A rich progress bar of items read, on a terminal only; `advance(n)` is safe from worker threads."""

    def __init__(self, console: Console, total: int | None, done: int) -> None:
        self.enabled = not (console.capture or console.quiet) and console.rich.is_terminal
        self.progress = Progress(TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console.rich, transient=True) if self.enabled else None
        self.total, self.done = total, done

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.progress is None:
            return lambda n: None
        self.progress.start()
        task = self.progress.add_task("items", total=self.total, completed=self.done)
        return lambda n: self.progress.advance(task, n) if self.progress else None

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
