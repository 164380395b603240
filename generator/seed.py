"""`pipeline seed`: run the simulated shop against the orders table, paced, with progress.

The thin I/O shell around the pure simulator: it paces placements with a token bucket,
hands every operation to the batch writer, keeps the expected final table (the fold of what
was sent) for `make verify`, and stops cleanly on Ctrl-C or when the duration is up, writing
what was already in flight so the table and the expected state agree.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from botocore.client import BaseClient
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.aws import Clients, error_code, retrying
from common.config import Settings
from common.console import Console
from common.errors import ConfigError, TerminalError
from generator.lifecycle import KINDS, Item, LifecycleConfig, Operation, apply_operation, history_span_ms, simulate
from generator.model import build_catalog
from generator.pacing import TokenBucket
from generator.writer import BatchWriter, RawBatchWrites

STOPPED = ("completed", "duration", "interrupted")
MAX_BATCH_AGE_S = 0.25  # longest a write waits in a partial batch while placements are paced


@dataclass(frozen=True)
class SeedSummary:
    """What a seed run did, and the table it should have left behind."""

    counts: Mapping[str, int]  # operations sent per kind, in KINDS order
    writes: int  # write requests DynamoDB accepted (one stream record each)
    items_in_table_expected: Mapping[str, Item]  # live order_id -> final item
    elapsed: float
    rate: float  # orders placed per second while placing (the pace --rate asks for)
    write_rate: float  # writes per second over the whole run (lifecycles finish after the last order)
    stopped_by: str  # one of STOPPED
    start: datetime  # the simulated clock's start
    batches: int = 0  # BatchWriteItem batches written (writes / batches: how full they were, at most 25)

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == "interrupted"

    @property
    def placed(self) -> int:
        return self.counts["placed"]

    @property
    def updated(self) -> int:
        """Puts that replaced an existing item (status moves and corrections)."""
        return sum(n for kind, n in self.counts.items() if kind not in ("placed", "deleted"))

    @property
    def deleted(self) -> int:
        return self.counts["deleted"]


def validate_seed_args(orders: Any, rate: Any, duration: Any, seed: Any, threads: Any = 2) -> None:
    """One clear line naming the first bad flag."""
    if isinstance(orders, bool) or not isinstance(orders, int) or orders <= 0:
        raise ConfigError(f"--orders must be a positive integer, got {orders!r}")
    if rate is not None and not _positive(rate):
        raise ConfigError(
            f"--rate must be a positive number of orders per second (omit it for as fast as possible), "
            f"got {rate!r}"
        )
    if duration is not None and not _positive(duration):
        raise ConfigError(
            f"--duration must be a positive number of seconds (omit it to run until every order "
            f"is done), got {duration!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 16:
        raise ConfigError(f"--threads must be an integer from 1 to 16, got {threads!r}")


def _positive(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value) and value > 0)


def history_config(days: float, orders: int) -> LifecycleConfig:
    """The lifecycle of `--days`: orders arrive so that their simulated history spans `days` days.

    Only the simulated timestamps spread out; the writes still go as fast as the table takes them.
    """
    return LifecycleConfig(mean_gap_ms=days * 86_400_000 / orders)


def default_start(orders: int, config: LifecycleConfig, now: datetime | None = None, *, seed: int) -> datetime:
    """A start so that the simulated history of `seed` ends by now: never a timestamp in the future (its
    arrivals are summed exactly, its last lifecycle taken at its longest)."""
    now = now or datetime.now(UTC)
    return now - timedelta(milliseconds=history_span_ms(seed, orders, config))


def check_table(clients: Clients, table: str, console: Console) -> None:
    """Fail with one line when the table is missing; warn when it has no stream to feed."""
    try:
        description = retrying()(clients.dynamodb.describe_table)(TableName=table)["Table"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            missing = f"DynamoDB table {table!r} does not exist; create it with `make up` first"
            raise TerminalError(missing) from None
        raise
    if not description.get("StreamSpecification", {}).get("StreamEnabled"):
        console.warn(f"table {table!r} has no stream enabled: the pipeline will not see these writes")


@contextlib.contextmanager
def _stop_on_sigint(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C sets `stop` (the loop then flushes and returns); a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(console: Console) -> Progress:
    """The seed's bar. Redrawn by a thread 4 times a second on a terminal; elsewhere (a log file, the bench)
    drawn once at the end: the thread renders the bar at every tick even with nothing to draw it on, about
    4% of the generator's CPU."""
    return Progress(
        TextColumn("[bold cyan]seeding[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("orders  {task.fields[speed]}"),
        TimeElapsedColumn(),
        console=console.rich,
        disable=console.capture or console.quiet,
        auto_refresh=console.rich.is_terminal,
        refresh_per_second=4,
    )


def run_seed(
    clients: Clients,
    settings: Settings,
    *,
    orders: int,
    rate: float | None,
    duration: float | None,
    seed: int,
    console: Console,
    start: datetime | None = None,
    threads: int = 2,
    config: LifecycleConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SeedSummary:
    """Place `orders` orders and play their lifecycles into `settings.table_name`."""
    validate_seed_args(orders, rate, duration, seed, threads)
    config = config or LifecycleConfig()
    start = start or default_start(orders, config, seed=seed)
    table = settings.table_name
    check_table(clients, table, console)
    catalog = build_catalog(seed)  # before the clock starts: it is not part of the rate

    stop = threading.Event()
    counts = dict.fromkeys(KINDS, 0)
    state: dict[str, Item] = {}
    bucket = TokenBucket(rate, clock=clock) if rate else None
    stopped_by: str | None = None
    sent = 0
    began = clock()
    placing = 1e-9  # seconds from the start to the latest placement
    deadline = began + duration if duration else math.inf
    writer = BatchWriter(writer_client(clients), table, threads=threads)
    progress = _progress(console)
    task = progress.add_task("seed", total=orders, speed="")
    try:
        with progress, _stop_on_sigint(stop):
            for op in simulate(seed, orders, start, config, catalog):
                stopped_by = _should_stop(op, stop, bucket, writer, clock, deadline)
                if stopped_by is not None:
                    break
                apply_operation(state, op)  # first: an interrupted submit has the op in hand, close() writes it
                counts[op.kind] += 1
                sent += 1
                writer.submit(op)
                if op.kind == "placed":
                    placing = max(clock() - began, 1e-9)
                if op.kind == "placed" or sent % 500 == 0:
                    spent = max(clock() - began, 1e-9)
                    progress.update(task, completed=counts["placed"],
                                    speed=f"{counts['placed'] / placing:,.0f}/s  {sent / spent:,.0f} writes/s")
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        writer.close()  # writes everything already handed over (raises a worker's error)
    stopped_by = stopped_by or "completed"
    elapsed = max(clock() - began, 1e-9)
    summary = SeedSummary(
        counts=counts,
        writes=writer.writes,
        items_in_table_expected={k: dict(v) for k, v in state.items()},
        elapsed=elapsed,
        rate=counts["placed"] / (placing if placing > 0.05 else elapsed),
        write_rate=writer.writes / elapsed,
        stopped_by=stopped_by,
        start=start,
        batches=writer.batches,
    )
    changes = ", ".join(f"{n:,} {kind}" for kind, n in counts.items() if n)
    report = (f"{summary.placed:,} orders, {summary.writes:,} writes into {table!r} in {elapsed:.1f}s "
              f"({summary.rate:,.0f} orders/s, {summary.write_rate:,.0f} writes/s): {changes}")
    if stopped_by == "completed":
        console.ok(f"seeded {report}")
    else:
        console.warn(f"seeding stopped ({stopped_by}) after {report}; in-flight writes were flushed")
    return summary


def writer_client(clients: Clients) -> Any:
    """What the writer sends BatchWriteItem through: JSON over the raw path when the DynamoDB client is
    botocore's own (generator/writer.py RawBatchWrites says why), else the client as given, so a
    stand-in (a test's fake, a recorder wrapping the client) still sees every batch."""
    client = clients.client("dynamodb", validated=False)
    if isinstance(client, BaseClient) and callable(getattr(clients, "raw_json", None)):
        return RawBatchWrites(clients)
    return client


def _should_stop(op: Operation, stop: threading.Event, bucket: TokenBucket | None, writer: BatchWriter,
                 clock: Callable[[], float], deadline: float) -> str | None:
    """Pace placements; say why to stop before `op` (None: go on)."""
    if stop.is_set():
        return "interrupted"
    if clock() >= deadline:
        return "duration"
    if bucket is not None and op.kind == "placed":
        wait = bucket.reserve()
        if wait > 0:
            # A slow rate must not leave writes lingering in a half-full batch; a fast one
            # must not shrink batches (small batches would cap the rate below the target).
            writer.flush(wait=False, older_than=MAX_BATCH_AGE_S)
            if stop.wait(min(wait, max(deadline - clock(), 0))):
                return "interrupted"
            if clock() >= deadline:
                return "duration"
    return None
