"""`python -m bench [--quick] [flags]`: run the figures, print them, write results/bench.json.

Sections, in order: transform (no emulator), then on the benchmark's own emulator: generator,
pipeline, analytics (which ends with compaction), then startup (`make up` and `make demo` as a user
runs them, each on a state dir and port of its own). `--only` picks some. Sizes default to the
full ones (200,000 orders end to end, a 5-million-event lake); `--quick` uses small ones (a few
minutes). Misses print the profile that explains them (`--profile` prints every profile). The
exit code says whether the benchmark ran, never whether a target was met: no timing is ever asserted.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import biglake, lake_queries, pipeline_rate, startup, transform_rate, write_rate
from bench.procs import tree_usage
from bench.report import Figure, document, figures_table, legend, rows_table, write
from bench.stack import own_emulator, sigterm_as_interrupt
from common.config import ROOT
from common.console import Console
from generator.defaults import DEFAULT_ORDERS, DEFAULT_THREADS

# startup first: a user starts `make up` on a machine at rest, not after half an hour of both cores busy.
# (The 9-11 s that the full runs measured last had two causes of `make up`'s own, both fixed: its plan's
# GetWorkGroup could build the Athena endpoint's query engine, analytics/athena_api/workgroups.py, and a
# fresh clone's virtualenvs had no bytecode, so every process compiled its libraries at each start, Makefile
# `sync_venv`.)
SECTIONS = ("startup", "transform", "generator", "pipeline", "analytics")


@dataclass(frozen=True)
class Sizes:
    transform_records: int
    gen_orders: int
    orders: tuple[int, ...]
    fresh_orders: int
    fresh_rate: float
    stage_records: int
    lake_events: int
    lake_days: int
    objects_per_day: int
    small_files: int
    small_rows: int
    target_rows: int
    gen_repeats: int = 2  # ABBA runs per side of the generator figure


# The generator figure runs `make seed` as a user does: its default ORDERS in both modes.
FULL = Sizes(200_000, DEFAULT_ORDERS, (20_000, 200_000), 3_000, 100, 20_000, 5_000_000, 30, 40, 1_000, 100,
             1_000_000, gen_repeats=4)
QUICK = Sizes(20_000, DEFAULT_ORDERS, (2_000, 8_000), 600, 100, 5_000, 200_000, 10, 40, 200, 100, 1_000_000)


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--orders takes comma-separated whole numbers, got {text!r}") from None
    if not sizes or any(n <= 0 for n in sizes):
        raise argparse.ArgumentTypeError(f"--orders takes positive numbers, e.g. 20000,200000, got {text!r}")
    return sizes


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a few minutes end to end")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run ({', '.join(SECTIONS)})")
    p.add_argument("--transform-records", type=positive(int), help="records through the transform (200000)")
    p.add_argument("--gen-orders", type=positive(int),
                   help=f"orders of the generator figure's `make seed ORDERS=` ({DEFAULT_ORDERS}, make seed's default)")
    p.add_argument("--orders", type=parse_sizes, help="pipeline sizes in orders, comma-separated (20000,200000)")
    p.add_argument("--fresh-orders", type=int, help="orders of the paced freshness run, 0 to skip (3000)")
    p.add_argument("--fresh-rate", type=positive(float), help="orders/s of the paced freshness run (100)")
    p.add_argument("--stage-records", type=int, help="records per runner stage run alone, 0 to skip (20000)")
    p.add_argument("--buffer-interval", type=int, default=1, help="Firehose BUFFER_INTERVAL_S for the pipeline (1)")
    p.add_argument("--memory-budget-gb", type=positive(float),
                   help="skip a pipeline size whose projected emulator memory exceeds this (always: 80%% of "
                        "the memory free when it starts)")
    p.add_argument("--poll", type=positive(float), default=0.2,
                   help="lake listing interval in s (0.2; the full-speed runs list every 2 s at most)")
    p.add_argument("--timeout", type=positive(float), default=3600, help="max seconds to drain one pipeline run")
    p.add_argument("--lake-events", type=positive(int), help="change events in the analytics lake (5000000)")
    p.add_argument("--lake-days", type=positive(int), help="days the lake spans (30)")
    p.add_argument("--objects-per-day", type=positive(int), help="objects per day in the lake (40)")
    p.add_argument("--small-files", type=positive(int), help="objects of the many-small-files day (1000)")
    p.add_argument("--target-rows", type=positive(int), help="compaction's rows per output file (1000000)")
    p.add_argument("--repeats", type=positive(int), default=3, help="transform runs per side; best kept (3)")
    p.add_argument("--query-repeats", type=positive(int), default=1, help="runs per query and engine (1)")
    p.add_argument("--threads", type=positive(int), default=DEFAULT_THREADS,
                   help=f"generator writer threads ({DEFAULT_THREADS}, make seed's default)")
    p.add_argument("--profile", action="store_true", help="print every profile, not only those of misses")
    p.add_argument("--output", type=Path, default=ROOT / "results" / "bench.json", help="JSON results file")
    return p


def resolve_sizes(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    return Sizes(
        transform_records=args.transform_records or base.transform_records,
        gen_orders=args.gen_orders or base.gen_orders,
        orders=args.orders or base.orders,
        fresh_orders=base.fresh_orders if args.fresh_orders is None else max(args.fresh_orders, 0),
        fresh_rate=args.fresh_rate or base.fresh_rate,
        stage_records=base.stage_records if args.stage_records is None else max(args.stage_records, 0),
        lake_events=args.lake_events or base.lake_events,
        lake_days=args.lake_days or base.lake_days,
        objects_per_day=args.objects_per_day or base.objects_per_day,
        small_files=args.small_files or base.small_files,
        small_rows=base.small_rows,
        target_rows=args.target_rows or base.target_rows,
        gen_repeats=base.gen_repeats,
    )


def chosen_sections(text: str) -> list[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"error: --only {unknown[0]!r} is not a section; use some of {', '.join(SECTIONS)}")
    return wanted


class Run:
    """Collects figures, sections, profiles and emulator readings as the sections finish."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.figures: list[Figure] = []
        self.sections: dict[str, Any] = {}
        self.profiles: dict[str, str] = {}
        self.emulator: dict[str, Any] = {"phases": []}
        self.failed = False

    def section(self, name: str, fn: Callable[[], tuple[list[Figure], dict[str, Any], dict[str, str]]]) -> None:
        self.console.step(f"[bold]{name}[/]")
        started = time.perf_counter()
        try:
            figures, details, profiles = fn()
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one broken section must not lose the others' figures
            self.failed = True
            self.sections[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            self.console.warn(f"{name} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return
        details["elapsed_s"] = round(time.perf_counter() - started, 1)
        self.figures += figures
        self.sections[name] = details
        self.profiles.update({f"{name}: {k}" if not k.startswith(name) else k: v for k, v in profiles.items()})
        self.console.ok(f"{name} done in {details['elapsed_s']:.0f}s")

    def reading(self, phase: str, pid: int) -> None:
        self.emulator["phases"].append({"after": phase, **tree_usage(pid).as_dict()})


def run_all(args: argparse.Namespace, sizes: Sizes, sections: list[str], run: Run, work: Path) -> None:
    """The chosen sections, in SECTIONS' order, each on a fresh emulator of its own (each pipeline size too): no
    section pays for another's leftovers, since MiniStack keeps stream records, even of deleted tables, for 24 h."""
    console = run.console

    def startup_section() -> None:
        run.section("startup", lambda: startup.measure(warm_up=not args.quick))

    def transform_section() -> None:
        run.section("transform", lambda: _one(transform_rate.measure(
            sizes.transform_records, repeats=args.repeats, profile=args.profile), "transform handler (cProfile)"))

    def generator_section() -> None:
        with own_emulator() as (settings, pid):
            run.section("generator", lambda: _one(write_rate.measure(
                settings, sizes.gen_orders, threads=args.threads, repeats=sizes.gen_repeats, emulator_pid=pid,
                profile=args.profile), "generator make seed, all threads (cProfile)"))
            run.reading("generator", pid)

    def pipeline_section() -> None:
        run.section("pipeline", lambda: pipeline_rate.measure(
            own_emulator, list(sizes.orders), buffer_interval_s=args.buffer_interval, seed=31, poll_s=args.poll,
            fresh_rate=sizes.fresh_rate, fresh_orders=sizes.fresh_orders, timeout_s=args.timeout,
            stage_records=sizes.stage_records, profile=args.profile, console=console,
            memory_budget_mb=1024 * args.memory_budget_gb if args.memory_budget_gb else math.inf,
            threads=args.threads))
        for r in run.sections.get("pipeline", {}).get("runs", []):
            run.emulator["phases"].append({"after": f"pipeline {r['orders']:,} orders", **r["emulator_after"]})

    def analytics_section() -> None:
        with own_emulator() as (settings, pid):
            spec = biglake.LakeSpec(sizes.lake_events, sizes.lake_days, sizes.objects_per_day, sizes.small_files,
                                    sizes.small_rows)
            run.section("analytics", lambda: lake_queries.measure(
                settings, pid, spec, work, repeats=args.query_repeats, target_rows=sizes.target_rows,
                console=console))
            run.reading("analytics", pid)

    steps = {"startup": startup_section, "transform": transform_section, "generator": generator_section,
             "pipeline": pipeline_section, "analytics": analytics_section}
    for name in SECTIONS:
        if name in sections:
            steps[name]()


def _one(result: tuple[Figure, dict[str, Any], str],
         label: str) -> tuple[list[Figure], dict[str, Any], dict[str, str]]:
    figure, details, profile = result
    return [figure], details, ({label: profile} if profile else {})


def show(run: Run, elapsed_s: float, interrupted: bool) -> None:
    console = run.console
    console.table(figures_table(run.figures, title="benchmark: value vs a reference measured in the same run"))
    for line in legend(run.figures):
        console.info(f"  [dim]{line}[/]")
    pipeline = run.sections.get("pipeline", {})
    runs = [(f"{r['orders']:,} orders", r) for r in pipeline.get("runs", [])]
    runs += [(f"paced {pipeline['paced']['orders']:,}", pipeline["paced"])] if pipeline.get("paced") else []
    if runs:
        columns, rows = pipeline_rate.growth_table(runs)
        console.table(rows_table("pipeline: cost as volume grows (cores = CPU s / wall s)", columns, rows))
        columns, rows = pipeline_rate.breakdown_table(runs)
        if len(columns) > 1:
            console.table(rows_table("pipeline: where freshness goes, per stage (s)", columns, rows))
    stages = pipeline.get("stages_alone") or {}
    if stages.get("pipe"):
        console.table(rows_table("each runner stage alone (in process, same records)", ["stage", "records", "s",
                                                                                          "records/s"],
                                 [(n, stages[n]["records"], stages[n]["seconds"], stages[n]["records_per_s"])
                                  for n in ("pipe", "firehose") if n in stages]))
    missed = {f.key for f in run.figures if f.met is False}
    for name, text in run.profiles.items():
        console.info(f"[bold]profile: {name}[/]")
        plain(console, text)
    if run.emulator["phases"]:
        console.info("emulator memory: " + ", ".join(
            f"after {p['after']} {p['rss_mb']:,.0f} MB (peak {p['peak_rss_mb']:,.0f})" for p in run.emulator["phases"]))
    verdict = f"{sum(f.met is True for f in run.figures)} met, {len(missed)} missed"
    console.info(f"elapsed {elapsed_s / 60:.1f} min; {verdict}" + (" [INTERRUPTED]" if interrupted else ""))


def plain(console: Console, text: str) -> None:
    """Profile text as it is: no markup, no wrapping (pstats lines are wide)."""
    if console.capture:
        console.lines.extend(text.splitlines())
    elif not console.quiet:
        console.rich.print(text, markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sizes = resolve_sizes(args)
    sections = chosen_sections(args.only)
    console = Console()
    run = Run(console)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-work-"))
    interrupted = False
    console.info(f"bench ({'quick' if args.quick else 'full'}): {', '.join(sections)}; sizes {sizes}")
    try:
        with sigterm_as_interrupt():
            run_all(args, sizes, sections, run, work)
    except KeyboardInterrupt:
        interrupted = True
        console.warn("interrupted: the emulator and runners were stopped; writing what was measured")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    if not args.profile:  # only the profiles that explain a miss
        run.profiles = {k: v for k, v in run.profiles.items() if _explains_miss(k, run.figures)}
    show(run, elapsed, interrupted)
    doc = document(run.figures, mode="quick" if args.quick else "full", sizes=sizes.__dict__, started_at=started_at,
                   elapsed_s=elapsed, sections=run.sections, profiles=run.profiles, emulator=run.emulator)
    doc["interrupted"] = interrupted
    path = write(doc, args.output)
    console.ok(f"results written to {path}")
    return 130 if interrupted else (1 if run.failed else 0)


def _explains_miss(profile: str, figures: list[Figure]) -> bool:
    missed = [f.key for f in figures if f.met is False]
    if profile.startswith("transform"):
        return "transform" in missed
    if profile.startswith("pipeline"):
        return any(k.startswith(("pipeline_", "freshness", "scaling", "cpu_per_event")) for k in missed)
    if profile.startswith("generator"):
        return "generator" in missed
    if profile.startswith("analytics"):
        return any(k.startswith("kpi_") for k in missed)
    return True
