"""Figure 3: change events/s end to end (DynamoDB write -> object listable in the lake) and freshness.

A whole pipeline per size (its own table, streams, Lambda, runners and bucket), buffering hints
at their minimum, runners as `make up` runs them (separate processes). At full speed the generator
runs as `make seed` runs it (`python -m cli seed`, its own process, its CPU read by pid); on the
paced run it runs in this process and every BatchWriteItem response is timestamped per item.
Each change's timeline comes from the lake rows and the listing (`Timeline`):
- written: the write acknowledged (paced run only: per-write bookkeeping);
- created: the stream record's creation. Its event_ts (ApproximateCreationDateTime) is whole seconds,
  on AWS ("rounded down to the closest second", API_streams_StreamRecord.html) as in MiniStack
  (`int(time.time())`); MiniStack's stream SequenceNumber begins with the epoch milliseconds of the
  same moment (20 digits, then a counter), so where it agrees with event_ts it gives the millisecond;
- arrived: arrival_ts, the Kinesis ApproximateArrivalTimestamp (the pipe's PutRecords landed);
- stored: the object's LastModified from the listing (MiniStack keeps milliseconds; S3 lists an
  object as soon as its PUT succeeds), so the listing interval adds no error to freshness;
- listed: when the poller, listing every `poll_s`, first saw it (the old measure; the gap is shown). At full
  speed it lists every FULL_SPEED_POLL_S at the most often: the emulator serves each listing (14 ms of its
  CPU for 550 objects, measured here), and its CPU is the CPU figure's reference; listing every 0.2 s over
  a 200,000-order run was ~3% of it, work the pipeline never asks for.
Freshness = stored - written (paced) or stored - created (full speed: the record is created inside the
write call, so this leaves out only the rest of that call, which the paced run measures). Each stage's
p50/p95, and its mean over the changes at or above the p95 (the profile of a miss), are printed.
End-to-end rate = distinct events in the lake / (last object stored - the first change's start), over
the same writes as its reference, the generator's own write rate in the same run (the ceiling:
docs/decisions.md section 5), which `make seed` counts from its first write: counted from the launch,
the seed process's own start-up (Python, imports, clients: about a second on 2 busy cores) would weigh
on one side of the ratio only. What remains beside the ceiling is one trip through the pipeline (the
last buffer's interval): a few seconds' run cannot reach 0.9x of it, a minute's can.
Where time goes: CPU seconds per process over the run (1.0 per second of wall = one full core), and
each runner stage alone, in process, over the same records (cProfile'd on a miss or with --profile).
On a miss, a short extra run with MiniStack itself under cProfile shows the ceiling its single
process sets (bench/emulator_profile.py).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench import emulator_profile
from bench.procs import Usage, available_mb, descendants, tree_usage, usage, wait_usage
from bench.profiling import profile_call
from bench.report import Figure, Target, percentile, percentiles, rate, ratio
from bench.stack import pipeline_settings
from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import ROOT, Settings
from common.console import Console
from generator.defaults import DEFAULT_THREADS
from generator.lifecycle import DEFAULT_DELAYS_MS, LifecycleConfig
from generator.seed import run_seed
from runners import service
from runners.firehose import KINESIS_READS_PER_SHARD_S, FirehoseRunner
from runners.firehose_config import parse_config
from runners.loop import read_status
from runners.pipe import STREAMS_READS_PER_SHARD_S, PipeRunner
from runners.shards import KINESIS_IDLE_READS_PER_SHARD_S

EmulatorFactory = Callable[[], AbstractContextManager[tuple[Settings, int]]]
RATE_TARGET = Target("ratio", ">=", 0.9)  # end to end vs the generator's own write rate, at every size
SCALING_TARGET = Target("ratio", ">=", 0.8)  # the largest size's rate vs the smallest's
FRESHNESS_TARGET = Target("ratio", "<=", 1.2)  # p95 vs the buffer interval, paced and at full speed
CPU_TARGET = Target("ratio", "<=", 0.5)  # the project's processes together vs the emulator, CPU per event
EMULATOR_RSS_TARGET = Target("value", "<=", 2048)  # MB, at RSS_TARGET_ORDERS
RSS_TARGET_ORDERS = 200_000
BENCH = "bench (generator, poller)"  # paced: the generator runs in the bench's own process
BENCH_POLLER = "bench (poller)"  # full speed: the bench only lists the lake (not the project's)
FULL_SPEED_POLL_S = 2.0  # the full-speed runs' listing interval at the shortest (module docstring: listed)
GENERATOR = "generator"  # full speed: `make seed` in its own process
PROJECT = (GENERATOR, "pipe runner", "firehose runner", "lambda workers", BENCH)
READS_TARGET = Target("ratio", "<=", 1.0)  # GetRecords calls/s per shard within AWS's limit
PROFILED_ORDERS = 2_000  # enough for a stable profile; cProfile slows MiniStack ~2x
SHORT_LIFECYCLE = LifecycleConfig(delays_ms={kind: (1, 1000) for kind in DEFAULT_DELAYS_MS})


def write_key(request: dict[str, Any]) -> tuple[str, str]:
    """The change event a BatchWriteItem request produces: (order_id, updated_ts) or (order_id, REMOVE)."""
    if "PutRequest" in request:
        item = request["PutRequest"]["Item"]
        return item["order_id"]["S"], item["updated_ts"]["S"]
    return request["DeleteRequest"]["Key"]["order_id"]["S"], "REMOVE"


def row_key(row: dict[str, Any]) -> tuple[str, str]:
    """The same key from a lake row (REMOVE rows carry the old image, so they match by kind)."""
    if row["event_type"] == "REMOVE":
        return row["order_id"], "REMOVE"
    ts: datetime = row["updated_ts"]
    return row["order_id"], f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"


SEQUENCE_MS_DIGITS = 20  # MiniStack's stream SequenceNumber: epoch ms in 20 digits, then a 10-digit counter


def record_created(sequence_number: str, event_ts: datetime) -> float:
    """Pure: when the stream record was created (epoch s). event_ts is whole seconds (AWS rounds it down,
    MiniStack stamps int(time.time()) just before the sequence number); the sequence number's leading
    milliseconds are used when they fall within that second or the next, else the second itself."""
    second = (event_ts if event_ts.tzinfo else event_ts.replace(tzinfo=UTC)).timestamp()
    if len(sequence_number) > SEQUENCE_MS_DIGITS and sequence_number.isdigit():
        created = int(sequence_number[:SEQUENCE_MS_DIGITS]) / 1000
        if second <= created < second + 2:
            return created
    return second


def epoch(ts: datetime) -> float:
    """A lake timestamp (timestamp[ms], naive UTC) or an aware one -> epoch seconds."""
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class Timeline:
    """One change on its way to the lake, in epoch seconds (see the module docstring)."""

    key: str  # the object it landed in
    written: float | None  # the write acknowledged (None: the generator ran in its own process)
    created: float  # the stream record
    arrived: float  # in Kinesis (arrival_ts)
    stored: float  # the object's LastModified
    listed: float  # first listed by the poller

    @property
    def start(self) -> float:
        return self.created if self.written is None else self.written

    @property
    def freshness(self) -> float:
        return self.stored - self.start


# Each stage: (name, from, to), Timeline attributes; they add up to freshness (the last one excepted).
STAGES = (
    ("write ack -> stream record", "written", "created"),
    ("stream record -> Kinesis (pipe: poll + PutRecords)", "created", "arrived"),
    ("Kinesis -> object stored (firehose: poll + invoke + buffer + write)", "arrived", "stored"),
    ("object stored -> first listed (the poll's measurement error)", "stored", "listed"),
)


def _p(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value, 3)


def freshness_breakdown(timelines: list[Timeline], buffer_interval_s: float) -> dict[str, Any]:
    """Pure: freshness and each stage's p50/p95; `tail`: each stage's mean over the changes at or above the
    freshness p95 (where a miss spends its time); `beyond_interval`: per object, how long its oldest record
    waited in the firehose past the buffer interval (read wait + invoke + flush lateness + write)."""
    fresh = [t.freshness for t in timelines]
    p95 = percentile(fresh, 95)
    tail = [t for t in timelines if p95 is not None and t.freshness >= p95]
    stages: dict[str, dict[str, float | None]] = {}
    for name, start, end in STAGES:
        values = [getattr(t, end) - getattr(t, start) for t in timelines if getattr(t, start) is not None]
        late = [getattr(t, end) - getattr(t, start) for t in tail if getattr(t, start) is not None]
        stages[name] = {"p50": _p(values, 50), "p95": _p(values, 95),
                        "tail_mean": round(sum(late) / len(late), 3) if late else None}
    oldest: dict[str, Timeline] = {}
    for t in timelines:
        if t.key not in oldest or t.arrived < oldest[t.key].arrived:
            oldest[t.key] = t
    beyond = [t.stored - t.arrived - buffer_interval_s for t in oldest.values()]
    return {"freshness": {"p50": _p(fresh, 50), "p95": _p(fresh, 95), "p99": _p(fresh, 99), "count": len(fresh)},
            "freshness_as_listed": {"p50": _p([t.listed - t.start for t in timelines], 50),
                                    "p95": _p([t.listed - t.start for t in timelines], 95)},
            "stages": stages, "tail_count": len(tail),
            "object_oldest_beyond_interval": {"p50": _p(beyond, 50), "p95": _p(beyond, 95), "objects": len(beyond)}}


def freshness_floor(pipe_reads_s: float, firehose_reads_s: float, interval_s: float, *, samples: int = 20_000,
                    seed: int = 0) -> dict[str, float]:
    """Pure: the freshness AWS's own waits set, with nothing else: a change waits for the pipe's next read of
    its shard, then the firehose's next read, then the rest of its buffer's interval, counted from the read
    that opened the buffer. Reads and writes take no time, records flow steadily (every read finds some), a
    buffer is written the moment it falls due and the next opens at the first read after. A model (fixed
    seed), not a measurement: the floor a faithful local pipeline cannot beat."""
    rng = random.Random(seed)
    pipe_every, firehose_every = 1 / pipe_reads_s, 1 / firehose_reads_s
    cycle = math.ceil(interval_s / firehose_every - 1e-9) * firehose_every  # a buffer opens every `cycle` s
    values = []
    for _ in range(samples):
        phase = rng.random() * pipe_every
        written = cycle + rng.random() * cycle
        piped = phase + math.ceil((written - phase) / pipe_every) * pipe_every
        read = math.ceil(piped / firehose_every - 1e-9) * firehose_every
        opened = math.floor(read / cycle + 1e-9) * cycle
        values.append(opened + interval_s - written)
    return {"p50": round(percentile(values, 50) or 0.0, 2), "p95": round(percentile(values, 95) or 0.0, 2)}


def breakdown_table(runs: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    """Pure: where freshness goes, one column per run: each stage's "p50 / p95 (mean at or above the p95)"."""
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    with_breakdown = [r for _, r in runs if r.get("freshness_breakdown")]
    runs = [(label, r["freshness_breakdown"]) for label, r in runs if r.get("freshness_breakdown")]
    columns = ["seconds: p50 / p95 (mean of the slowest 5%)", *[label for label, _ in runs]]
    rows = [[name, *[f"{fmt(b['stages'][name]['p50'])} / {fmt(b['stages'][name]['p95'])} "
                     f"({fmt(b['stages'][name]['tail_mean'])})" for _, b in runs]] for name, _, _ in STAGES]
    rows.append(["freshness: write -> object stored",
                 *[f"{fmt(b['freshness']['p50'])} / {fmt(b['freshness']['p95'])}" for _, b in runs]])
    rows.append(["freshness as first listed (the poll's old measure)",
                 *[f"{fmt(b['freshness_as_listed']['p50'])} / {fmt(b['freshness_as_listed']['p95'])}"
                   for _, b in runs]])
    rows.append(["per object: its oldest record past the buffer interval",
                 *[f"{fmt(b['object_oldest_beyond_interval']['p50'])} / "
                   f"{fmt(b['object_oldest_beyond_interval']['p95'])}" for _, b in runs]])
    rows.append(["firehose ms: read, invoke per pass; write per object",
                 *[" / ".join("-" if (r.get("firehose_ms") or {}).get(k) is None else f"{r['firehose_ms'][k]:.0f}"
                              for k in ("read_per_pass", "invoke_per_pass", "write_per_object"))
                   for r in with_breakdown]])
    return columns, rows


class RecordingDynamo:
    """A DynamoDB client that timestamps every item a BatchWriteItem call has written."""

    def __init__(self, inner: Any, written: dict[tuple[str, str], float]) -> None:
        self._inner, self._written = inner, written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def batch_write_item(self, **kwargs: Any) -> Any:
        response = self._inner.batch_write_item(**kwargs)
        done = time.time()
        for table, requests in kwargs["RequestItems"].items():
            unprocessed = response.get("UnprocessedItems", {}).get(table) or []
            left = {write_key(r) for r in unprocessed}
            for request in requests:
                key = write_key(request)
                if key not in left:
                    self._written[key] = done
        return response


class RecordingClients(Clients):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.written: dict[tuple[str, str], float] = {}

    def client(self, service_name: str, *, validated: bool = True) -> Any:
        inner = super().client(service_name, validated=validated)
        return RecordingDynamo(inner, self.written) if service_name == "dynamodb" else inner


class ObjectPoller:
    """Lists the lake prefix every `interval` s; per new object key, when it was first listed (wall time) and
    its LastModified (when S3 stored it: the listing's own timestamp, milliseconds in MiniStack)."""

    def __init__(self, settings: Settings, bucket: str, prefix: str, interval: float) -> None:
        self.s3 = Clients(settings).s3
        self.bucket, self.prefix, self.interval = bucket, prefix, interval
        self.seen: dict[str, float] = {}
        self.stored: dict[str, float] = {}
        self.baseline: set[str] = set()
        self.lists = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lake-poller", daemon=True)

    def listing(self) -> dict[str, float]:
        """Every key under the prefix -> its LastModified (epoch s)."""
        keys: dict[str, float] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys.update((o["Key"], o["LastModified"].timestamp()) for o in page.get("Contents", []))
        self.lists += 1
        return keys

    def start(self) -> ObjectPoller:
        self.baseline = set(self.listing())
        self._thread.start()
        return self

    def poll(self) -> None:
        listed = self.listing()
        now = time.time()
        for key, modified in listed.items():
            if key not in self.baseline and key not in self.seen:
                self.seen[key], self.stored[key] = now, modified

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a failed listing is retried next tick
                self.poll()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()


def wait_for_runners(settings: Settings, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(read_status(settings.runner_dir, n) is None for n in service.RUNNERS):
        if time.monotonic() > deadline:
            raise TimeoutError(f"runners did not start within {timeout:.0f}s; see {settings.runner_dir}/*.log")
        time.sleep(0.2)


def runner_out(settings: Settings) -> int:
    return int((read_status(settings.runner_dir, "firehose") or {}).get("records_out", 0))


def runner_reads(settings: Settings) -> dict[str, dict[str, int]]:
    """Per runner, its GetRecords calls per shard so far (runners/loop.py Stats.reads)."""
    return {name: dict((read_status(settings.runner_dir, name) or {}).get("reads") or {}) for name in service.RUNNERS}


def firehose_phases(settings: Settings) -> dict[str, Any]:
    """The firehose runner's passes so far and its wall seconds per phase (runners/loop.py Stats.phase_s)."""
    status = read_status(settings.runner_dir, "firehose") or {}
    return {"passes": int(status.get("passes", 0)), "objects": int(status.get("objects_out", 0)),
            "phase_s": dict(status.get("phase_s") or {})}


def phase_ms(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    """Pure: between two firehose_phases, the ms per pass spent reading and invoking, and per object written
    (a write includes the Parquet encoding); None for a phase it had no time in (a runner from before it)."""
    passes = max(after["passes"] - before["passes"], 1)
    objects = max(after["objects"] - before["objects"], 1)
    spent = {k: after["phase_s"].get(k, 0.0) - before["phase_s"].get(k, 0.0) for k in ("read", "invoke", "write")}
    return {"read_per_pass": round(1000 * spent["read"] / passes, 1) if spent["read"] else None,
            "invoke_per_pass": round(1000 * spent["invoke"] / passes, 1) if spent["invoke"] else None,
            "write_per_object": round(1000 * spent["write"] / objects, 1) if spent["write"] else None,
            "passes": after["passes"] - before["passes"]}


def reads_per_shard_s(before: dict[str, int], after: dict[str, int], seconds: float) -> float | None:
    """Pure: the busiest shard's GetRecords calls per second between two counts (None: nothing counted)."""
    if not after or seconds <= 0:
        return None
    return round(max(after[shard] - before.get(shard, 0) for shard in after) / seconds, 2)


def processes(emulator_pid: int, settings: Settings) -> dict[str, int]:
    pids = {"emulator": emulator_pid}
    for name in service.RUNNERS:
        pid = service.running(settings, name)
        if pid:
            pids[f"{name} runner"] = pid
    return pids


def cpu_snapshot(pids: dict[str, int], bench: str = BENCH) -> dict[str, Usage]:
    snap = {name: usage(pid) for name, pid in pids.items()}
    snap["lambda workers"] = sum((usage(p) for p in descendants(pids["emulator"])), Usage())
    snap[bench] = usage(os.getpid())
    return snap


def cpu_shares(before: dict[str, Usage], after: dict[str, Usage], wall_s: float) -> dict[str, dict[str, float]]:
    return {name: {"cpu_s": round(after[name].cpu_s - before.get(name, Usage()).cpu_s, 2),
                   "cores": round((after[name].cpu_s - before.get(name, Usage()).cpu_s) / wall_s, 2),
                   "peak_rss_mb": round(after[name].hwm_kb / 1024, 1)}
            for name in after}


EVENT_COLUMNS = ["order_id", "updated_ts", "event_type", "event_id", "sequence_number", "event_ts", "arrival_ts"]


def lake_events(clients: Clients, bucket: str, keys: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(object key, row) for the event columns of every Parquet object listed."""
    out = []
    for key in keys:
        if not key.endswith(".parquet"):
            continue
        body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        table = pq.read_table(io.BytesIO(body), columns=EVENT_COLUMNS)
        out += [(key, row) for row in table.to_pylist()]
    return out


def timelines(rows: list[tuple[str, dict[str, Any]]], poller_seen: dict[str, float], stored: dict[str, float],
              written: dict[tuple[str, str], float] | None) -> tuple[list[Timeline], int]:
    """Pure: each lake row's Timeline, and how many rows had no write to match (`written` given only when
    the generator ran in this process)."""
    out, unmatched = [], 0
    for key, row in rows:
        ack = None
        if written is not None:
            ack = written.get(row_key(row))
            if ack is None:
                unmatched += 1
                continue
        out.append(Timeline(key, ack, record_created(row["sequence_number"], row["event_ts"]),
                            epoch(row["arrival_ts"]), stored.get(key, poller_seen[key]), poller_seen[key]))
    return out, unmatched


def end_to_end_s(timed: list[Timeline], last_stored: float, began: float) -> float:
    """Pure: from the first change's start (its write ack, or its stream record) to the last object stored;
    from `began` when no change was timed (see the module docstring: the generator counts from its first write)."""
    return last_stored - min((t.start for t in timed), default=began)


SEEDED = re.compile(r"seeded ([\d,]+) orders, ([\d,]+) writes into .* in ([\d.]+)s")


def parse_seeded(output: str) -> tuple[int, float] | None:
    """Pure: (writes, seconds) from `make seed`'s last line ("seeded 2,000 orders, 7,784 writes into ... in
    7.0s (...)"); None when it did not complete."""
    found = SEEDED.findall(output)
    if not found:
        return None
    _, writes, seconds = found[-1]
    return int(writes.replace(",", "")), float(seconds)


def seed_command(settings: Settings, *, orders: int, seed: int, threads: int) -> tuple[list[str], dict[str, str]]:
    """Pure: `make seed`'s command line for this pipeline, and the environment that names its stack (the
    settings a runner gets, runners/service.py settings_env, and the bench pipeline's own table)."""
    argv = [sys.executable, "-m", "cli", "seed", "--orders", str(orders), "--seed", str(seed),
            "--threads", str(threads)]
    return argv, {**service.settings_env(settings), "TABLE_NAME": settings.table_name, "NO_COLOR": "1"}


class SeedProcess:
    """`python -m cli seed` as its own process (the path `make seed` takes); its CPU and peak RSS are read by
    pid when it ends (wait4's rusage: /proc forgets an exited process)."""

    def __init__(self, settings: Settings, *, orders: int, seed: int, threads: int, out: Path) -> None:
        argv, env = seed_command(settings, orders=orders, seed=seed, threads=threads)
        self.out = out
        with out.open("wb") as sink:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=sink,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.usage = Usage()

    def wait(self) -> tuple[int, float]:
        """(writes, seconds) once it has ended; a failed seed raises with its output's tail."""
        code, self.usage = wait_usage(self.proc)
        text = self.out.read_text(errors="replace")
        seeded = parse_seeded(text)
        if code != 0 or seeded is None:
            raise RuntimeError(f"make seed (pid {self.proc.pid}) exited {code}: {text[-500:]}")
        return seeded

    def kill(self) -> None:
        if self.proc.returncode is None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def seed_and_follow(settings: Settings, emulator_pid: int, *, orders: int, seed: int, rate_: float | None,
                    config: LifecycleConfig | None, poll_s: float, timeout_s: float, buffer_interval_s: float,
                    threads: int = DEFAULT_THREADS) -> dict[str, Any]:
    """One seeding run through a running pipeline, followed until every write is in the lake.

    Paced (`rate_` set): the generator runs here, with per-write bookkeeping (the write ack -> stream record
    stage). At full speed it runs as `make seed` does, in its own process (`config` is then its own)."""
    clients = RecordingClients(settings)
    bucket = settings.lake_bucket_for(clients.account_id)
    baseline_out = runner_out(settings)
    poller = ObjectPoller(settings, bucket, settings.lake_prefix, poll_s).start()
    pids = processes(emulator_pid, settings)
    in_process = rate_ is not None
    bench = BENCH if in_process else BENCH_POLLER
    before = cpu_snapshot(pids, bench)
    reads_before, phases_before = runner_reads(settings), firehose_phases(settings)
    began, load_before = time.time(), os.getloadavg()[0]
    generator: Usage | None = None
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
        if in_process:
            summary = run_seed(clients, settings, orders=orders, rate=rate_, duration=None, seed=seed,
                               console=Console(quiet=True), config=config)
            if summary.interrupted:  # run_seed turns Ctrl-C / SIGTERM into a clean stop: the benchmark stops too
                poller.stop()
                raise KeyboardInterrupt
            writes, seed_s = summary.writes, summary.elapsed
        else:
            proc = SeedProcess(settings, orders=orders, seed=seed, threads=threads, out=Path(tmp) / "seed.log")
            try:
                writes, seed_s = proc.wait()
            except BaseException:
                proc.kill()
                poller.stop()
                raise
            generator = proc.usage
    complete = True
    deadline = time.monotonic() + timeout_s
    while runner_out(settings) < baseline_out + writes:
        if time.monotonic() > deadline or any(service.running(settings, n) is None for n in service.RUNNERS):
            complete = False
            break
        time.sleep(0.1)
    poller.stop()
    after = cpu_snapshot(pids, bench)
    if generator is not None:
        after[GENERATOR] = generator
    wall = time.time() - began
    reads_after = runner_reads(settings)
    reads = {name: reads_per_shard_s(reads_before[name], reads_after[name], wall) for name in service.RUNNERS}
    rows = lake_events(Clients(settings), bucket, sorted(poller.seen))
    timed, unmatched = timelines(rows, poller.seen, poller.stored, clients.written if in_process else None)
    ids = {row["event_id"] for _, row in rows}
    breakdown = freshness_breakdown(timed, buffer_interval_s)
    seconds = end_to_end_s(timed, max(poller.stored.values(), default=began), began)
    return {
        "orders": orders, "writes": writes, "events_in_lake": len(ids), "rows_in_lake": len(rows),
        "unmatched_rows": unmatched, "complete": complete and len(ids) >= writes,
        "objects": len(poller.seen), "seed_s": round(seed_s, 2), "write_rate": rate(writes, seed_s),
        "generator": "in the bench process (per-write bookkeeping)" if in_process else "make seed, its own process",
        "end_to_end_s": round(seconds, 2), "events_per_s": rate(len(ids), seconds),
        "freshness_s": percentiles([t.freshness for t in timed]), "freshness_breakdown": breakdown,
        "poll_s": poll_s, "listings": poller.lists,
        "processes": cpu_shares(before, after, wall), "wall_s": round(wall, 2),
        "reads_per_shard_s": reads,  # each runner's GetRecords calls/s on its busiest shard, over the run
        "firehose_ms": phase_ms(phases_before, firehose_phases(settings)),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # machine load before / after
    }


def stage_alone(clients: Clients, settings: Settings, records: int, profile: bool) -> dict[str, Any]:
    """Each runner in this process over the records already in its source, from the start, capped.

    The pipe re-puts into its (no longer read) Kinesis stream; the firehose writes under
    bench-profile/ in the lake: nothing the figures above read. Runners must be stopped.
    """
    with tempfile.TemporaryDirectory(prefix="bench-stage-") as tmp:
        return _stages(clients, settings, records, profile, Path(tmp))


def _stages(clients: Clients, settings: Settings, records: int, profile: bool, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"records": records}

    def pipe_pass(limit: int, tag: str) -> int:
        runner = PipeRunner(clients, service.load_spec(settings, "pipe"), work / f"pipe-{tag}.json")
        moved = 0
        while moved < limit:
            runner.run_once()
            if runner.stats.records_out == moved:
                break
            moved = runner.stats.records_out
        return moved

    def firehose_pass(limit: int, tag: str) -> int:
        config = parse_config(service.load_spec(settings, "firehose"), settings.max_active_partitions)
        config = replace(config, prefix=f"bench-profile/{tag}/" + config.prefix,
                         error_prefix=f"bench-profile/{tag}-errors/" + config.error_prefix)
        runner = FirehoseRunner(clients, config, work / f"firehose-{tag}.json")
        idle = 0
        while runner.stats.records_in < limit and idle < 3:
            idle = idle + 1 if runner.run_once() else 0
        runner.close()
        return runner.stats.records_out

    for name, step in (("pipe", pipe_pass), ("firehose", firehose_pass)):
        start = time.perf_counter()
        moved = step(records, "plain")
        seconds = time.perf_counter() - start
        out[name] = {"records": moved, "seconds": round(seconds, 2), "records_per_s": rate(moved, seconds)}
        if profile:
            _, text = profile_call(lambda s=step: s(max(records // 2, 1), "profiled"), top=20)
            out[name]["profile"] = text
    return out


@contextlib.contextmanager
def running_pipeline(base: Settings, tag: str, buffer_interval_s: int) -> Iterator[Settings]:
    """A whole pipeline of its own, bootstrapped, with its runners started; they are stopped after."""
    settings = pipeline_settings(base, tag, buffer_interval_s=buffer_interval_s)
    clients = Clients(settings)
    apply(clients, build_plan(clients, settings), Console(quiet=True))
    try:
        service.start(settings)
        wait_for_runners(settings)
        yield settings
    finally:
        service.stop(settings)


def emulator_profile_text(run: dict[str, Any], *, orders: int, buffer_interval_s: int, seed: int, poll_s: float,
                          timeout_s: float) -> str:
    """The ceiling that `run` (unprofiled) implies, and where a profiled MiniStack spends its CPU."""
    events = max(run["events_in_lake"], 1)
    emulator_ms = 1000 * run["processes"]["emulator"]["cpu_s"] / events
    all_ms = 1000 * sum(p["cpu_s"] for p in run["processes"].values()) / events
    with tempfile.TemporaryDirectory(prefix="bench-emu-profile-") as tmp:
        with (emulator_profile.profiled_emulator(Path(tmp)) as (base, emulator_pid, out),
              running_pipeline(base, "prof", buffer_interval_s) as settings):
            profiled = seed_and_follow(settings, emulator_pid, orders=orders, seed=seed + 500, rate_=None,
                                       config=None, poll_s=poll_s, timeout_s=timeout_s,
                                       buffer_interval_s=buffer_interval_s)
        if not out.exists():  # MiniStack was killed, not stopped: cProfile never wrote its file
            return f"the profiled emulator left no profile at {out}"
        funcs = emulator_profile.load(out)
    return emulator_profile.summarize(funcs, profiled["events_in_lake"], emulator_ms, all_ms,
                                      run["write_rate"] or 0.0, os.cpu_count() or 1)


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def projected_rss_mb(rss_now_mb: float, previous: dict[str, Any] | None, orders: int) -> float | None:
    """Pure: the emulator's RSS after `orders` more orders, from the previous run's growth per event.

    MiniStack keeps every table item in memory (and, without the record_spill patch, every stream and
    Kinesis record: docs/emulator-patches.md section 4), so memory grows with events; None when there is
    no previous run to learn from.
    """
    if not previous or not previous.get("events_in_lake") or previous.get("emulator_before") is None:
        return None
    grown = max(previous["emulator_after"]["rss_mb"] - previous["emulator_before"]["rss_mb"], 0.0)
    per_event = grown / previous["events_in_lake"]
    events = orders * previous["events_in_lake"] / previous["orders"]
    return rss_now_mb + per_event * events


def growth_table(runs: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[list[Any]]]:
    """Pure: how cost grows with volume, one column per run (label, run) -> (columns, rows)."""
    columns = ["", *[label for label, _ in runs]]

    def row(name: str, value: Callable[[dict[str, Any]], Any]) -> list[Any]:
        return [name, *[value(r) for _, r in runs]]

    def fmt(x: float | None, spec: str = ",.0f") -> str:
        return "-" if x is None else format(x, spec)

    rows = [
        row("change events", lambda r: f"{r['events_in_lake']:,}"),
        row("end to end (s)", lambda r: fmt(r["end_to_end_s"], ".1f")),
        row("events/s end to end", lambda r: fmt(r["events_per_s"])),
        row("generator writes/s", lambda r: fmt(r["write_rate"])),
        row("freshness p50 / p95 / p99 (s)", lambda r: " / ".join(fmt(r["freshness_s"][p], ".2f")
                                                                 for p in ("p50", "p95", "p99"))),
        row("lake objects", lambda r: f"{r['objects']:,}"),
        row("GetRecords/s per shard: pipe / firehose", lambda r: " / ".join(
            fmt((r.get("reads_per_shard_s") or {}).get(name), ".1f") for name in ("pipe", "firehose"))),
        row("emulator RSS after (MB)", lambda r: fmt((r.get("emulator_after") or {}).get("rss_mb"))),
        row("emulator full GCs: count, s (share of its CPU)", lambda r: "-" if not r.get("emulator_gc") else (
            f"{r['emulator_gc']['full_collections']}, {r['emulator_gc']['full_s']:.1f} "
            f"({100 * (r['emulator_gc']['full_share_of_cpu'] or 0):.1f}%)")),
    ]
    names = list(dict.fromkeys(n for _, r in runs for n in r["processes"]))
    for name in names:
        rows.append(row(f"{name}: CPU ms/event (cores)", lambda r, n=name: "-" if n not in r["processes"] else (
            f"{1000 * r['processes'][n]['cpu_s'] / max(r['events_in_lake'], 1):.2f} "
            f"({r['processes'][n]['cores']:.2f})")))
    for name in names:
        rows.append(row(f"{name}: peak RSS (MB)", lambda r, n=name: fmt(r["processes"][n]["peak_rss_mb"])
                        if n in r["processes"] else "-"))
    return columns, rows


def one_trip_note(run: dict[str, Any]) -> str:
    """Pure: the ceiling that one trip through the pipeline (its median freshness) sets on a run this short:
    the seed's seconds over the seed's plus that trip."""
    trip = (run.get("freshness_s") or {}).get("p50")
    if not trip or not run.get("seed_s"):
        return ""
    return (f"; one trip through the pipeline ({trip:.2f}s, the freshness p50) caps a {run['seed_s']:.1f}s seed "
            f"at {run['seed_s'] / (run['seed_s'] + trip):.2f}x")


def rate_missed(run: dict[str, Any]) -> bool:
    """Did this run's end-to-end rate miss its target (vs the generator's rate in the same run)?"""
    return RATE_TARGET.met(run["events_per_s"], ratio(run["events_per_s"], run["write_rate"])) is False


def ms_per_event(run: dict[str, Any], name: str) -> float:
    return 1000 * run["processes"][name]["cpu_s"] / max(run["events_in_lake"], 1)


def size_figures(run: dict[str, Any]) -> list[Figure]:
    """Pure: CPU per event (the project's processes vs the emulator) and memory, for one run."""
    orders, procs = run["orders"], run["processes"]
    project = [n for n in PROJECT if n in procs]
    per_process = "; ".join(f"{n} {ms_per_event(run, n):.2f}" for n in procs)
    runners = {n: procs[n]["peak_rss_mb"] for n in procs if n not in ("emulator", BENCH, BENCH_POLLER, GENERATOR)}
    emulator_mb = procs["emulator"]["peak_rss_mb"] if "emulator" in procs else None
    return [
        Figure(f"cpu_per_event_{orders}", f"CPU per event, project vs emulator ({orders:,})",
               sum(ms_per_event(run, n) for n in project), "ms", ms_per_event(run, "emulator"),
               "the emulator's CPU per event (ms)", CPU_TARGET, notes=f"ms per event: {per_process}"),
        Figure(f"emulator_rss_{orders}", f"emulator peak RSS ({orders:,})", emulator_mb, "MB", None, "",
               EMULATOR_RSS_TARGET if orders >= RSS_TARGET_ORDERS else None,
               notes="" if orders >= RSS_TARGET_ORDERS else f"the 2 GB target is set at {RSS_TARGET_ORDERS:,} orders"),
        Figure(f"runners_rss_{orders}", f"runners' peak RSS, largest ({orders:,})", max(runners.values(), default=None),
               "MB", None, "", None, notes="; ".join(f"{n} {mb:,.0f} MB" for n, mb in runners.items())
               + (f"; the generator (make seed, its own process) {procs[GENERATOR]['peak_rss_mb']:,.0f} MB"
                  if GENERATOR in procs else "")
               + (f"; the generator (with the bench's per-write bookkeeping) {procs[BENCH]['peak_rss_mb']:,.0f} MB"
                  if BENCH in procs else "")),
    ]


def measure(emulator: EmulatorFactory, sizes: list[int], *, buffer_interval_s: int, seed: int,
            poll_s: float, fresh_rate: float, fresh_orders: int, timeout_s: float, stage_records: int,
            profile: bool, console: Console,
            memory_budget_mb: float = math.inf,
            threads: int = DEFAULT_THREADS) -> tuple[list[Figure], dict[str, Any], dict[str, str]]:
    """One fresh emulator per size, so each size's cost is its own (MiniStack keeps every stream
    record, even of deleted tables, for 24 h: a shared emulator would carry the earlier sizes).
    The paced freshness run and the stages alone follow the first size on its emulator. A size
    whose projected emulator memory exceeds the budget (or 80% of what is free) is skipped."""
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    fresh: dict[str, Any] | None = None
    stages: dict[str, Any] = {}
    profiles: dict[str, str] = {}
    for n, orders in enumerate(sizes):
        projected = projected_rss_mb(runs[-1]["emulator_before"]["rss_mb"] if runs else 0.0,
                                     runs[-1] if runs else None, orders)
        budget = min(memory_budget_mb, 0.8 * available_mb())
        if projected is not None and projected > budget:
            console.warn(f"pipeline: {orders:,} orders skipped: the emulator would grow to ~{projected / 1024:.1f} GB, "
                         f"over the budget of {budget / 1024:.1f} GB (--memory-budget-gb, or free memory)")
            skipped.append({"orders": orders, "projected_emulator_mb": round(projected), "budget_mb": round(budget)})
            continue
        with (tempfile.TemporaryDirectory(prefix="bench-emu-gc-") as gc_work,
              emulator_profile.gc_timed_emulator(emulator, Path(gc_work)) as (base, emulator_pid, gc_file),
              running_pipeline(base, f"p{n}", buffer_interval_s) as settings):
            clients = Clients(settings)
            console.step(f"pipeline: {orders:,} orders as fast as the generator writes")
            before, gc_before = tree_usage(emulator_pid).as_dict(), emulator_profile.read_gc(gc_file)
            run = seed_and_follow(settings, emulator_pid, orders=orders, seed=seed + n, rate_=None, config=None,
                                  poll_s=max(poll_s, FULL_SPEED_POLL_S), timeout_s=timeout_s,
                                  buffer_interval_s=buffer_interval_s, threads=threads)
            run["emulator_before"], run["emulator_after"] = before, tree_usage(emulator_pid).as_dict()
            run["emulator_gc"] = emulator_profile.gc_between(gc_before, emulator_profile.read_gc(gc_file),
                                                             run["processes"]["emulator"]["cpu_s"])
            run["projected_emulator_mb"] = None if projected is None else round(projected)
            runs.append(run)
            console.info(f"  {run['events_in_lake']:,} events in {run['end_to_end_s']}s "
                         f"({run['events_per_s'] or 0:,.0f}/s end to end; generator {run['write_rate']:,.0f}/s; "
                         f"emulator {run['emulator_after']['rss_mb']:,.0f} MB)")
            if n == 0 and fresh_orders:
                console.step(f"pipeline: freshness at {fresh_rate:g} orders/s ({fresh_orders:,} orders)")
                fresh = seed_and_follow(settings, emulator_pid, orders=fresh_orders, seed=seed + 100,
                                        rate_=fresh_rate, config=SHORT_LIFECYCLE, poll_s=poll_s,
                                        timeout_s=timeout_s, buffer_interval_s=buffer_interval_s)
            service.stop(settings)  # the stages run alone, in process
            if n == 0 and stage_records:
                missed = rate_missed(run)
                console.step(f"pipeline: each runner stage alone over {stage_records:,} records"
                             + (" (with cProfile)" if profile or missed else ""))
                stages = stage_alone(clients, settings, min(stage_records, run["events_in_lake"]),
                                     profile or missed)
                for name in ("pipe", "firehose"):
                    if "profile" in stages.get(name, {}):
                        profiles[f"{name} runner"] = stages[name].pop("profile")
    if runs and (profile or rate_missed(runs[0])):
        console.step(f"pipeline: {min(sizes[0], PROFILED_ORDERS):,} orders again with the emulator under cProfile")
        profiles["emulator (cProfile)"] = emulator_profile_text(
            runs[0], orders=min(sizes[0], PROFILED_ORDERS), buffer_interval_s=buffer_interval_s, seed=seed,
            poll_s=poll_s, timeout_s=timeout_s)
    figures = []
    for run in runs:
        figures.append(Figure(
            f"pipeline_{run['orders']}", f"end to end, {run['orders']:,} orders", run["events_per_s"], "events/s",
            run["write_rate"], "the generator's own write rate in that run (writes/s), the ceiling", RATE_TARGET,
            notes=f"{run['events_in_lake']:,} events, {run['objects']:,} objects, {run['end_to_end_s']}s"
                  + ("" if run["complete"] else " INCOMPLETE") + one_trip_note(run),
        ))
    if runs and (runs[-1].get("reads_per_shard_s") or {}).get("firehose") is not None:
        reads = runs[-1]["reads_per_shard_s"]
        figures.append(Figure(
            f"kinesis_reads_{runs[-1]['orders']}", f"Kinesis GetRecords per shard ({runs[-1]['orders']:,})",
            reads["firehose"], "calls/s", KINESIS_READS_PER_SHARD_S, "AWS's limit per shard (calls/s)", READS_TARGET,
            notes=f"the firehose runner, over the run; the pipe read DynamoDB Streams at {fmt_rate(reads.get('pipe'))}"
                  f"/s per shard (limit {STREAMS_READS_PER_SHARD_S:g})"))
    if len(runs) > 1:
        figures.append(Figure(
            "scaling", f"end to end, {runs[-1]['orders']:,} vs {runs[0]['orders']:,} orders", runs[-1]["events_per_s"],
            "events/s", runs[0]["events_per_s"], f"the rate at {runs[0]['orders']:,} orders (events/s)",
            SCALING_TARGET))
    floor = freshness_floor(STREAMS_READS_PER_SHARD_S, KINESIS_READS_PER_SHARD_S, buffer_interval_s)
    aws_floor = freshness_floor(STREAMS_READS_PER_SHARD_S, KINESIS_IDLE_READS_PER_SHARD_S, buffer_interval_s)
    floor_note = (f"; AWS's own floor (no processing time): p95 {floor['p95']:.2f}s reading Kinesis "
                  f"{KINESIS_READS_PER_SHARD_S:g}/s per shard as the runner does, {aws_floor['p95']:.2f}s at "
                  f"Firehose's documented {KINESIS_IDLE_READS_PER_SHARD_S:g}/s (DynamoDB Streams "
                  f"{STREAMS_READS_PER_SHARD_S:g}/s; freshness_floor)")
    if runs:
        figures += size_figures(runs[-1])
        p95 = runs[-1]["freshness_s"]["p95"]
        figures.append(Figure(f"freshness_full_speed_{runs[-1]['orders']}",
                              f"freshness p95, full speed ({runs[-1]['orders']:,})", p95, "s",
                              float(buffer_interval_s), "the buffer interval (s)", FRESHNESS_TARGET,
                              notes=f"p50 {runs[-1]['freshness_s']['p50']:.2f}s; stream record -> object stored "
                                    "(make seed in its own process); includes the backlog when writes outpace the "
                                    "pipeline" + floor_note))
    if fresh:
        figures.append(Figure("freshness", f"freshness p95, paced ({fresh['write_rate']:,.0f} writes/s)",
                              fresh["freshness_s"]["p95"], "s", float(buffer_interval_s), "the buffer interval (s)",
                              FRESHNESS_TARGET, notes=f"p50 {fresh['freshness_s']['p50']:.2f}s, "
                              f"p99 {fresh['freshness_s']['p99']:.2f}s; write ack -> object stored (LastModified)"
                              + floor_note))
    section = {"buffer_interval_s": buffer_interval_s, "processor_interval_s": 0, "runs": runs, "paced": fresh,
               "freshness_floor_s": {"runner_read_rates": floor, "firehose_documented_read_rate": aws_floor},
               "skipped": skipped,
               "stages_alone": stages, "measured_at": datetime.now(UTC).isoformat()}
    return figures, section, profiles
