"""Figure 2: DynamoDB writes/s of `make seed` as a user runs it vs a bare boto3 BatchWriteItem loop.

The generator side is generator.seed.run_seed called exactly as `make seed` calls it with its
defaults (make_seed_kwargs: ORDERS=2000, SEED=42, DAYS=14, two writer threads, no RATE, no
DURATION, the start that ends the history now); a unit test pins those arguments to what the CLI
passes. Before, the figure ran a 200 ms simulated gap between orders, a path no user takes: at
DAYS=14 orders arrive ~10 simulated minutes apart, each order's steps come one after another,
and the writer then cut its batches at every repeated key (~1.9 requests per batch, ~0.2x).

The reference writes the very same operations (same seed and history) into its own fresh table
with a stream (NEW_AND_OLD_IMAGES, as the pipeline's table), with the same number of threads and
the same key sharding and batches. Its operations are simulated and cut into batches before its
clock starts (it only turns items into requests and sends them); the generator's clock also
covers simulating the shop, batching, queueing to its writer threads and the expected-state fold:
that is its overhead, and the target is >= 0.8x the bare loop. The reference is boto3 as it comes; the
generator sends BatchWriteItem as JSON through Clients.raw_json (generator/writer.py RawBatchWrites:
no botocore serialization, about 100 us per item), which more than pays for that overhead: the
figure's note says so. Runs alternate ABBA and each side's
rates are averaged: the emulator slows down as it accumulates stream records (it keeps those of
deleted tables for 24 h), a drift that ABBA means cancel and best-of would not.
"""

from __future__ import annotations

import contextlib
import cProfile
import functools
import os
import pstats
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any
from unittest import mock

from bench.procs import tree_usage, usage
from bench.profiling import stats_text_of
from bench.report import Figure, Target
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from generator.defaults import DEFAULT_DAYS, DEFAULT_ORDERS, DEFAULT_SEED, DEFAULT_THREADS
from generator.lifecycle import Operation, simulate
from generator.model import build_catalog
from generator.seed import default_start, history_config, run_seed
from generator.writer import plan_batches, write_request

TARGET = Target("ratio", ">=", 0.8)


def make_seed_kwargs(orders: int = DEFAULT_ORDERS, threads: int = DEFAULT_THREADS) -> dict[str, Any]:
    """run_seed's arguments (but clients, settings and console) as `make seed ORDERS=<orders>` passes them."""
    return {"orders": orders, "rate": None, "duration": None, "seed": DEFAULT_SEED, "threads": threads,
            "config": history_config(DEFAULT_DAYS, orders)}


def create_table(clients: Clients, name: str) -> None:
    ddb = clients.dynamodb
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def drop_table(clients: Clients, name: str) -> None:
    with contextlib.suppress(Exception):  # already gone: nothing to free
        clients.dynamodb.delete_table(TableName=name)


def shard_batches(ops: list[Operation], threads: int) -> list[list[list[Operation]]]:
    """Per thread, its keys' batches (crc32 sharding, as the generator's writer)."""
    shards: list[list[Operation]] = [[] for _ in range(threads)]
    for op in ops:
        shards[zlib.crc32(op.order_id.encode()) % threads].append(op)
    return [list(plan_batches(shard)) for shard in shards]


def bare_loop(client: Any, table: str, batches: list[list[Operation]]) -> int:
    """Items to requests, BatchWriteItem, UnprocessedItems resent at once: the least a writer can do."""
    written = 0
    for batch in batches:
        requests = [write_request(op) for op in batch]
        pending = requests
        while pending:
            resp = client.batch_write_item(RequestItems={table: pending})
            pending = resp.get("UnprocessedItems", {}).get(table, [])
        written += len(requests)
    return written


def run_reference(clients: Clients, table: str, per_thread: list[list[list[Operation]]]) -> tuple[int, float]:
    counts = [0] * len(per_thread)

    def work(i: int) -> None:
        counts[i] = bare_loop(clients.dynamodb, table, per_thread[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(per_thread))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - start


def cpu(emulator_pid: int | None) -> tuple[float, float]:
    """(this process, the emulator and its children) CPU seconds so far."""
    return usage(os.getpid()).cpu_s, tree_usage(emulator_pid).cpu_s if emulator_pid else 0.0


def profile_all_threads(fn: Callable[[], Any], top: int = 25) -> str:
    """cProfile of run_seed's own thread AND its writer threads (each batch write is profiled in the
    thread that sends it, then all are merged): where the generator's CPU goes, end to end."""
    import generator.writer as writer_module

    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()
    real = writer_module.write_batch

    def profiled_write_batch(*args: Any, **kwargs: Any) -> int:
        profiler = cProfile.Profile()
        with lock:
            profilers.append(profiler)
        return profiler.runcall(real, *args, **kwargs)

    main = cProfile.Profile()
    with mock.patch.object(writer_module, "write_batch", profiled_write_batch):
        main.runcall(fn)
    for profiler in profilers:
        profiler.create_stats()
    stats = pstats.Stats(main)
    for profiler in profilers:
        stats.add(profiler)
    return "all threads, merged (waits on the writer queue appear as lock acquires)\n" + stats_text_of(stats, top)


def measure(settings: Settings, orders: int = DEFAULT_ORDERS, threads: int = DEFAULT_THREADS, repeats: int = 2,
            emulator_pid: int | None = None, profile: bool = False) -> tuple[Figure, dict[str, Any], str]:
    """Returns the figure, the runs (with each side's client and emulator CPU seconds and batch sizes) and,
    on a miss or when asked, a cProfile of the same run_seed call, its writer threads included."""
    clients = Clients(settings)
    kwargs = make_seed_kwargs(orders, threads)
    config, seed = kwargs["config"], kwargs["seed"]
    # run_seed picks its start when called (the history ends now); the same seed gives the same
    # orders, keys and steps from any start, so the reference's batches are the generator's.
    ops = list(simulate(seed, orders, default_start(orders, config, seed=seed), config, build_catalog(seed)))
    per_thread = shard_batches(ops, threads)
    ref_batches = sum(len(batches) for batches in per_thread)
    runs: dict[str, list[dict[str, float]]] = {"reference": [], "generator": []}
    for i in range(max(repeats, 1)):
        ref_table, gen_table = f"bench_bare_{i}_{seed}", f"bench_seed_{i}_{seed}"
        for name in (ref_table, gen_table):
            create_table(clients, name)
        sides = {
            "reference": functools.partial(run_reference, clients, ref_table, per_thread),
            "generator": functools.partial(run_seed, clients, with_overrides(settings, table_name=gen_table),
                                           console=Console(quiet=True), **kwargs),
        }
        try:
            for side in ("reference", "generator") if i % 2 == 0 else ("generator", "reference"):
                me, emu = cpu(emulator_pid)
                result = sides[side]()
                me2, emu2 = cpu(emulator_pid)
                if side == "generator" and result.interrupted:  # run_seed stopped cleanly on Ctrl-C / SIGTERM
                    raise KeyboardInterrupt
                writes, seconds = result if side == "reference" else (result.writes, result.elapsed)
                batches = ref_batches if side == "reference" else result.batches
                runs[side].append({"writes": writes, "seconds": seconds, "rate": writes / seconds,
                                   "batches": batches, "per_batch": round(writes / max(batches, 1), 2),
                                   "client_cpu_s": round(me2 - me, 2), "emulator_cpu_s": round(emu2 - emu, 2)})
        finally:
            for name in (ref_table, gen_table):
                drop_table(clients, name)
    mean_gen = sum(r["rate"] for r in runs["generator"]) / len(runs["generator"])
    mean_ref = sum(r["rate"] for r in runs["reference"]) / len(runs["reference"])
    what = "defaults" if orders == DEFAULT_ORDERS else f"ORDERS={orders}"
    per_batch = runs["generator"][-1]["per_batch"]
    figure = Figure("generator", f"make seed writes ({what})", mean_gen, "writes/s", mean_ref,
                    "a bare boto3 BatchWriteItem loop of the same items (writes/s)",
                    TARGET, notes=f"{orders:,} orders = {len(ops):,} writes over DAYS={DEFAULT_DAYS:g} (SEED="
                                  f"{seed}, no RATE), {threads} threads, {per_batch:.1f} writes per batch, "
                                  f"mean of {len(runs['generator'])} runs per side, ABBA; the generator sends its "
                                  "batches as raw JSON (no botocore serialization), the reference through boto3")
    text = ""
    if profile or figure.met is False:
        table = f"bench_prof_{seed}"
        create_table(clients, table)
        try:
            text = profile_all_threads(lambda: run_seed(
                clients, with_overrides(settings, table_name=table), console=Console(quiet=True), **kwargs))
        finally:
            drop_table(clients, table)
    return figure, {"orders": orders, "writes": len(ops), "threads": threads, "days": DEFAULT_DAYS, "seed": seed,
                    "runs": runs}, text
