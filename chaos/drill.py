"""The chaos drill: a seed in phases, runners SIGKILLed at random moments, the emulator restarted once.

A supervisor restarts each killed runner at once, as systemd or a container runtime would. The
emulator restart is graceful (MiniStack saves its state on SIGTERM; the stream-persistence patch in
bootstrap/emulator_patches keeps the DynamoDB stream too) and falls between two seed phases, so the
producer never writes into the outage: what a producer does when DynamoDB is away is its own
business, what the pipeline does with what DynamoDB accepted is ours.

At the end the drill counts, independently of the runners:
- changes lost: sequence numbers the DynamoDB stream holds that no lake row carries (must be 0);
- duplicates collapsed: lake rows beyond one per sequence number (at-least-once delivery);
- and reconciles the lake's current state with a DynamoDB scan (`make verify`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from analytics.engine import open_engine
from analytics.verify import Reconciliation, reconcile
from bootstrap import emulator
from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from generator.seed import run_seed
from runners import service
from runners.crawler import crawl


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: which runner, and how long after the phase started."""

    runner: str
    after_s: float


def plan_kills(rng: random.Random, count: int, phases: int, window_s: float) -> list[list[Kill]]:
    """`count` kills spread over `phases`, each at a random moment within the phase's first `window_s`."""
    plan: list[list[Kill]] = [[] for _ in range(phases)]
    for i in range(count):
        plan[i % phases].append(Kill(rng.choice(service.RUNNERS), rng.uniform(0.2, window_s)))
    return [sorted(p, key=lambda k: k.after_s) for p in plan]


@dataclass
class DrillReport:
    orders: int
    kills: list[str] = field(default_factory=list)
    emulator_restarts: int = 0
    stream_changes: int = 0
    lake_rows: int = 0
    changes_lost: int = 0
    duplicates_collapsed: int = 0
    error_records: int = 0
    error_types: dict[str, int] = field(default_factory=dict)  # error-output type -> objects (why they failed)
    reconciliation: Reconciliation | None = None

    @property
    def ok(self) -> bool:
        agreed = self.reconciliation is not None and self.reconciliation.ok
        return agreed and self.changes_lost == 0 and self.error_records == 0

    def lines(self) -> list[str]:
        rec = self.reconciliation
        return [
            f"kills survived: {len(self.kills)} ({', '.join(self.kills) or 'none'}); "
            f"emulator restarts: {self.emulator_restarts}",
            f"changes in the DynamoDB stream: {self.stream_changes:,}; lake rows: {self.lake_rows:,}",
            f"duplicates collapsed: {self.duplicates_collapsed:,}",
            f"changes lost: {self.changes_lost:,}",
            f"error-output records: {self.error_records:,}"
            + (f" ({', '.join(f'{kind}: {n:,}' for kind, n in sorted(self.error_types.items()))})"
               if self.error_types else ""),
            "verify: " + ("lake and table agree" if rec and rec.ok else "DIFFERENCES")
            + (f" ({rec.lake_orders:,} orders)" if rec else ""),
        ]


def kill_runner(settings: Settings, name: str) -> bool:
    """SIGKILL one runner (no flush, no checkpoint save) and reap it; False if it was not running."""
    pid = service.running(settings, name)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # our child: reap it, or it lingers as a zombie
        os.waitpid(pid, 0)
    return True


def _killer(settings: Settings, kills: list[Kill], stop: threading.Event, done: list[str]) -> None:
    """Follow the phase's kill schedule; restart each victim at once (the supervisor's job)."""
    started = 0.0
    for kill in kills:
        if stop.wait(kill.after_s - started):
            return
        started = kill.after_s
        if kill_runner(settings, kill.runner):
            done.append(kill.runner)
            service.start(settings)


def stream_records(clients: Clients, settings: Settings) -> Iterator[dict[str, Any]]:
    """Every change record the table's stream holds, read from TRIM_HORIZON independently of the runners."""
    streams = clients.client("dynamodbstreams")
    arn = clients.dynamodb.describe_table(TableName=settings.table_name)["Table"]["LatestStreamArn"]
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            resp = streams.get_records(ShardIterator=iterator, Limit=1000)
            yield from resp["Records"]
            if not resp["Records"]:
                break
            iterator = resp.get("NextShardIterator")


def error_output_types(clients: Clients, settings: Settings) -> dict[str, int]:
    """Error-output objects per type (errors/<error-output-type>/...): which failure put records there."""
    bucket = settings.lake_bucket_for(clients.account_id)
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="errors/")
    types: dict[str, int] = {}
    for page in pages:
        for obj in page.get("Contents", []):
            kind = obj["Key"].split("/")[1]
            types[kind] = types.get(kind, 0) + 1
    return types


def run_drill(
    settings: Settings, *, orders: int, kills: int, seed: int, console: Console,
    phases: int = 2, window_s: float = 4.0, restart_emulator: bool = True,
    seed_writer: Callable[..., Any] = run_seed,
) -> DrillReport:
    """Run the drill against an emulator already started with persistence on `settings`."""
    rng = random.Random(seed)
    clients = Clients(settings)
    apply(clients, build_plan(clients, settings), Console(capture=True))
    service.start(settings)
    report = DrillReport(orders=orders)
    schedule = plan_kills(rng, kills, phases, window_s)
    per_phase = [orders // phases + (1 if i < orders % phases else 0) for i in range(phases)]
    for phase, (phase_orders, phase_kills) in enumerate(zip(per_phase, schedule, strict=True)):
        console.step(f"phase {phase + 1}/{phases}: {phase_orders} orders, {len(phase_kills)} kill(s) at random moments")
        stop = threading.Event()
        killer = threading.Thread(target=_killer, args=(settings, phase_kills, stop, report.kills), daemon=True)
        killer.start()
        seed_writer(clients, settings, orders=phase_orders, rate=None, duration=None, seed=seed + phase,
                    console=Console(quiet=True))
        killer.join()  # the phase's every kill happens, even when the seed was quicker than the schedule
        stop.set()
        if restart_emulator and phase == 0 and phases > 1:
            console.step("restarting the emulator (graceful, persisted) while the runners keep running")
            emulator.stop(settings)
            emulator.start(settings, persist=True)
            clients = Clients(settings)
            report.emulator_restarts += 1
        service.start(settings)  # a runner that died on its own is restarted too, as by its supervisor
    console.step("waiting for the runners to deliver every change")
    service.wait_drained(settings, timeout=300)
    return measure(clients, settings, report)


def measure(clients: Clients, settings: Settings, report: DrillReport) -> DrillReport:
    """Count losses and duplicates against the stream, and reconcile with a scan."""
    crawl(clients, settings)
    stream = {r["dynamodb"]["SequenceNumber"] for r in stream_records(clients, settings)}
    with open_engine(clients, settings, Console(quiet=True)) as eng:
        lake = [row[0] for row in eng.conn.execute("SELECT sequence_number FROM sales_orders_cdc").fetchall()]
        report.reconciliation = reconcile(clients, settings, eng.conn)
    report.stream_changes = len(stream)
    report.lake_rows = len(lake)
    report.duplicates_collapsed = len(lake) - len(set(lake))
    report.changes_lost = len(stream - set(lake))
    report.error_types = error_output_types(clients, settings)
    report.error_records = sum(report.error_types.values())
    return report
