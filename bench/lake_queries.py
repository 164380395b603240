"""Figures 4 and 5: KPI queries through S3 vs the same Parquet files on local disk, partition
pruning, and a many-small-files day before and after `compact`.

The lake is written once (bench/biglake.py) to a local directory and uploaded to a bucket of the
benchmark's emulator, object for object, so both engines read identical files: DuckDB over an
Arrow dataset (analytics.engine.open_engine with the Arrow S3 path, the default on emulated
targets) vs open_local_engine. Every KPI runs on both, alternately; the ratio S3/local is
judged (<= 3x). Both engines are opened as `make analyze` opens its own (footers read once per
engine), and that opening is a figure of its own, so no cost is left out of the totals.
Objects opened per query are counted in a second, untimed run through a counting wrapper of
Arrow's S3 filesystem (the wrapper opens objects by path, which costs a HEAD each); the
emulator's and this process's CPU seconds per query say where the S3 time goes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from analytics.catalog import local_table_info
from analytics.counting import CountingHandler
from analytics.engine import Engine, open_engine, open_local_engine, s3_filesystem
from analytics.kpis import run_kpi
from analytics.views import kpi_queries
from bench import biglake
from bench.procs import tree_usage, usage
from bench.report import Figure, Target, rows_match
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from lake.compact import compact_all, compact_partition

KPI_TARGET = Target("ratio", "<=", 3.0)  # each KPI via S3 vs local disk, on the raw lake
KPI_COMPACTED_TARGET = Target("ratio", "<=", 1.5)  # and after `make compact`
BUCKET = "bench-analytics-lake"
PREFIX = "orders/"


def one_day_sql(day: str) -> str:
    """Athena SQL over the raw change log, restricted by the partition columns (strings)."""
    year, month, dd = day.split("-")
    return ("SELECT count(*) AS events, count(DISTINCT order_id) AS orders, sum(order_total) AS amount\n"
            f"FROM sales_orders_cdc WHERE year = '{year}' AND month = '{month}' AND day = '{dd}'")


class Timed:
    """Run one query on an engine: seconds, rows, emulator and client CPU seconds, and (when a
    counting engine is given) the objects that query opens, counted in an untimed second run."""

    def __init__(self, engine: Engine, emulator_pid: int, counting: tuple[Engine, CountingHandler] | None = None
                 ) -> None:
        self.engine, self.emulator_pid, self.counting = engine, emulator_pid, counting

    def __call__(self, sql: str, name: str) -> dict[str, Any]:
        with CpuClock(self.emulator_pid) as clock:
            result = run_kpi(self.engine.conn, sql, name)
        return {"seconds": clock.seconds, "rows": result.rows, "opened": self.opened(sql, name), **clock.cpu}

    def opened(self, sql: str, name: str) -> int | None:
        if self.counting is None:
            return None
        engine, counter = self.counting
        counter.opened.clear()
        run_kpi(engine.conn, sql, name)
        return len(counter.opened)


class CpuClock:
    """Wall seconds, and the emulator's and this process's CPU seconds, of a `with` block."""

    def __init__(self, emulator_pid: int) -> None:
        self.emulator_pid = emulator_pid
        self.seconds = 0.0
        self.cpu: dict[str, float] = {}

    def __enter__(self) -> CpuClock:
        self._emu, self._me = tree_usage(self.emulator_pid).cpu_s, usage(_self_pid()).cpu_s
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu = {"emulator_cpu_s": round(tree_usage(self.emulator_pid).cpu_s - self._emu, 2),
                    "client_cpu_s": round(usage(_self_pid()).cpu_s - self._me, 2)}


def _self_pid() -> int:
    import os

    return os.getpid()


def best(run: Callable[[], dict[str, Any]], repeats: int) -> dict[str, Any]:
    runs = [run() for _ in range(max(repeats, 1))]
    fastest = min(runs, key=lambda r: r["seconds"])
    return {**fastest, "all_s": [round(r["seconds"], 3) for r in runs]}


def measure(settings: Settings, emulator_pid: int, spec: biglake.LakeSpec, work: Path, *, repeats: int,
            target_rows: int, console: Console) -> tuple[list[Figure], dict[str, Any], dict[str, str]]:
    clients = Clients(settings)
    lake_settings = with_overrides(settings, lake_bucket=BUCKET, lake_prefix=PREFIX)
    root = work / "lake"
    console.step(f"analytics: writing {spec.events:,} change events over {spec.days} days "
                 f"({spec.objects_per_day} objects a day) + a day of {spec.small_files} small objects")
    started = time.perf_counter()
    written = biglake.build(root, spec)
    built_s = time.perf_counter() - started
    clients.s3.create_bucket(Bucket=BUCKET)
    started = time.perf_counter()
    uploaded = biglake.upload(clients.s3, BUCKET, PREFIX, root)
    upload_s = time.perf_counter() - started
    console.info(f"  {written['rows']:,} rows in {written['objects']:,} objects ({written['bytes'] / 1e6:,.0f} MB)"
                 f" built in {built_s:.1f}s, uploaded in {upload_s:.1f}s")

    counter = CountingHandler(s3_filesystem(settings))
    table = local_table_info(f"s3://{BUCKET}/{PREFIX}")
    days = sorted(written["days"])
    regular_day = days[len(days) // 2 - 1] if len(days) > 2 else days[0]
    small_day = f"{spec.small_day:%Y-%m-%d}"

    def s3_engine(counting: bool = False, footers: bool = False) -> Engine:
        return open_engine(clients, settings, table=table, access="arrow", footers=footers,
                           filesystem=pafs.PyFileSystem(counter) if counting else None)

    def one_off(local_root: Path, sql: str, name: str) -> tuple[dict[str, Any], dict[str, Any], int | None]:
        """A query as a new session runs it (fresh engines, no footers read ahead): local, S3, fragments."""
        with open_local_engine(local_root) as local, s3_engine() as remote, s3_engine(counting=True) as counting:
            loc = best(lambda: Timed(local, emulator_pid)(sql, name), repeats)
            rem = best(lambda: Timed(remote, emulator_pid, (counting, counter))(sql, name), repeats)
            return loc, rem, _fragments(remote, regular_day)

    kpis, opening = kpi_round(root, s3_engine, counter, emulator_pid, repeats, console)
    figures = [Figure(f"kpi_{k['name']}", f"KPI {k['name']}", k["s3"]["seconds"], "s", k["local"]["seconds"],
                      "the same query on local disk (s); value: via S3", KPI_TARGET,
                      notes=f"{k['s3']['opened']} objects opened" + ("" if k["same_rows"] else "; RESULTS DIFFER"))
               for k in kpis]
    figures.append(Figure("kpi_open", "opening the engine (list + read every footer)", opening["s3"]["seconds"],
                          "s", opening["local"]["seconds"], "the same on local disk (s); value: via S3", None,
                          notes=f"{opening['footers']:,} footers, read once for all the KPIs (as make analyze does)"))
    figures.append(_total("kpis_total", "all KPIs (sum, with the opening)", kpis, opening,
                          f"{len(kpis)} KPIs over {written['rows']:,} rows in {uploaded:,} objects"))

    console.info(f"  one-day query on {regular_day}")
    loc, rem, fragments = one_off(root, one_day_sql(regular_day), "one_day")
    in_day = written["days"][regular_day]["objects"]
    pruning = {"day": regular_day, "objects_in_day": in_day, "objects_in_lake": uploaded,
               "fragments_after_filter": fragments, "local": loc, "s3": rem,
               "same_rows": loc.pop("rows") == rem.pop("rows")}
    figures.append(Figure("pruning", "one-day query, objects read", rem["opened"],
                          "objects", float(uploaded), "objects in the lake", Target("value", "<=", in_day),
                          notes=f"{regular_day}: {in_day} objects in that day; {rem['seconds']:.2f}s via S3, "
                                f"{loc['seconds']:.2f}s local"))

    console.step(f"compaction: {small_day}, {written['days'][small_day]['objects']} small objects")
    small_sql = one_day_sql(small_day)
    ids_sql = ("SELECT event_id, count(*) AS n FROM sales_orders_cdc WHERE year = '{}' AND month = '{}' "
               "AND day = '{}' GROUP BY event_id ORDER BY event_id").format(*small_day.split("-"))
    with s3_engine() as engine:  # A new engine each side: Arrow lists the objects when it opens, as a new query would.
        before = best(lambda: Timed(engine, emulator_pid, None)(small_sql, "small_day"), repeats)
        ids_before = engine.query(ids_sql)
    year, month, dd = small_day.split("-")
    started = time.perf_counter()
    result = compact_partition(clients, lake_settings, year=year, month=month, day=dd, console=Console(quiet=True),
                               target_rows=target_rows)
    compact_s = time.perf_counter() - started
    with s3_engine() as engine:
        after = best(lambda: Timed(engine, emulator_pid, None)(small_sql, "small_day"), repeats)
        ids_after = engine.query(ids_sql)
    same = before.pop("rows") == after.pop("rows") and ids_before == ids_after
    compaction = {"day": small_day, "objects_before": result.inputs + result.kept, "outputs": len(result.outputs),
                  "rows": result.rows, "compact_s": round(compact_s, 2),
                  "duplicate_window_s": round(result.duplicate_window_s, 3), "before": before, "after": after,
                  "same_rows_and_event_ids": same, "target_rows": target_rows}
    figures.append(Figure("compaction", "small-files day after compact", after["seconds"], "s", before["seconds"],
                          f"the same one-day query before compact (s), {result.inputs + result.kept} -> "
                          f"{len(result.outputs) + result.kept} objects", None,
                          notes=f"speed-up {before['seconds'] / after['seconds']:.1f}x; compacting took "
                                f"{compact_s:.1f}s" + ("" if same else "; ROWS DIFFER")))

    console.step("compaction: every day of the lake (compact_all), then every KPI again")
    started = time.perf_counter()
    everything = compact_all(clients, lake_settings, console=Console(quiet=True), more_than=1, target_rows=target_rows)
    compact_all_s = time.perf_counter() - started
    objects_after = sum(len(r.outputs) + r.kept for r in everything if not r.skipped)
    compacted_root = local_copy_compacted(root, work / "lake-compacted", target_rows)
    kpis_after, opening_after = kpi_round(compacted_root, s3_engine, counter, emulator_pid, repeats, console)
    opened_after = max((k["s3"]["opened"] or 0) for k in kpis_after) if kpis_after else 0
    figures += [Figure(f"kpi_{k['name']}_compacted", f"KPI {k['name']} after compact", k["s3"]["seconds"], "s",
                       k["local"]["seconds"], "the same query on local disk, compacted alike (s); value: via S3",
                       KPI_COMPACTED_TARGET, notes=f"{k['s3']['opened']} objects opened"
                       + ("" if k["same_rows"] else "; RESULTS DIFFER"))
                for k in kpis_after]
    figures.append(_total(
        "kpis_total_compacted", "all KPIs (sum, with the opening) after compact", kpis_after, opening_after,
        f"compact_all: {sum(r.inputs for r in everything):,} objects -> {objects_after:,} in "
        f"{compact_all_s:.0f}s; each KPI now opens {opened_after} objects", KPI_COMPACTED_TARGET))
    compaction["all"] = {"partitions": len(everything), "inputs": sum(r.inputs for r in everything),
                         "objects_after": objects_after, "seconds": round(compact_all_s, 1),
                         "kpis_after": kpis_after, "opening_after": opening_after}
    section = {"lake": {k: v for k, v in written.items() if k != "days"}, "days": len(written["days"]),
               "built_s": round(built_s, 1), "upload_s": round(upload_s, 1), "kpis": kpis, "opening": opening,
               "pruning": pruning,
               "compaction": compaction, "emulator_after": tree_usage(emulator_pid).as_dict()}
    profiles = {}
    missed = [f for f in figures if f.key.startswith("kpi") and f.met is False]
    if missed:
        lines = ["KPI via S3: where the time goes (per query: wall s, emulator CPU s, client CPU s, objects, "
                 "ms per object)"]
        for k in kpis:
            s3 = k["s3"]
            per_object = 1000 * s3["seconds"] / s3["opened"] if s3["opened"] else 0
            lines.append(f"  {k['name']:<28} {s3['seconds']:7.2f} {s3['emulator_cpu_s']:7.2f} "
                         f"{s3['client_cpu_s']:7.2f} {s3['opened']:6d} {per_object:7.1f}  "
                         f"(local {k['local']['seconds']:.2f}s)")
        profiles["analytics"] = "\n".join(lines)
    return figures, section, profiles


def kpi_round(local_root: Path, s3_engine: Callable[..., Engine], counter: CountingHandler, emulator_pid: int,
              repeats: int, console: Console) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every KPI on a local and an S3 engine opened as `make analyze` opens one (footers read once),
    the openings timed too; objects per query are counted on a third, counting engine."""
    kpis = []
    with contextlib.ExitStack() as stack:
        with CpuClock(emulator_pid) as local_clock:
            local = stack.enter_context(open_local_engine(local_root, footers=True))
        with CpuClock(emulator_pid) as s3_clock:
            remote = stack.enter_context(s3_engine(footers=True))
        counting = stack.enter_context(s3_engine(counting=True))
        footers = sum(1 for _ in remote.dataset.get_fragments()) if remote.dataset is not None else 0
        opening = {"local": {"seconds": local_clock.seconds, **local_clock.cpu},
                   "s3": {"seconds": s3_clock.seconds, **s3_clock.cpu}, "footers": footers}
        on_local, on_s3 = Timed(local, emulator_pid), Timed(remote, emulator_pid, (counting, counter))
        for query in kpi_queries():
            console.info(f"  KPI {query.name}")
            loc = best(lambda q=query: on_local(q.sql, q.name), repeats)
            rem = best(lambda q=query: on_s3(q.sql, q.name), repeats)
            same = rows_match(loc.pop("rows"), rem.pop("rows"))
            kpis.append({"name": query.name, "local": loc, "s3": rem, "same_rows": same})
    return kpis, opening


def _total(key: str, title: str, kpis: list[dict[str, Any]], opening: dict[str, Any], notes: str,
           target: Target = KPI_TARGET) -> Figure:
    return Figure(key, title, opening["s3"]["seconds"] + sum(k["s3"]["seconds"] for k in kpis), "s",
                  opening["local"]["seconds"] + sum(k["local"]["seconds"] for k in kpis),
                  "the same on local disk (s); value: via S3", target, notes=notes)


def local_copy_compacted(root: Path, target: Path, target_rows: int) -> Path:
    """The local reference after compaction: each day's files rewritten as lake.compact would."""
    import pyarrow.parquet as pq

    from lake.compact import RowBatcher, sort_rows

    for day_dir in sorted({p.parent for p in root.rglob("*.parquet")}):
        batcher = RowBatcher(target_rows)
        tables = [t for path in sorted(day_dir.glob("*.parquet")) for t in batcher.add(pq.read_table(path))]
        out = target / day_dir.relative_to(root)
        out.mkdir(parents=True, exist_ok=True)
        for i, table in enumerate([*tables, *batcher.finish()]):
            pq.write_table(sort_rows(table), out / f"compacted-{i:04d}.parquet", compression="snappy")
    return target


def _fragments(engine: Engine, day: str) -> int | None:
    """Fragments the dataset keeps for a one-day filter (no object is opened to count them)."""
    import pyarrow.dataset as ds

    if engine.dataset is None:
        return None
    year, month, dd = day.split("-")
    expression = (ds.field("year") == year) & (ds.field("month") == month) & (ds.field("day") == dd)
    return sum(1 for _ in engine.dataset.get_fragments(filter=expression))
