"""The command line behind the Makefile: each command parses its flags, calls the stage that decides, and prints.

One error boundary: a known error prints one red line with its fix and exits 1
(set DEBUG=1 for the traceback). Settings are loaded once here and passed down.
"""

# The pipeline's stages are imported inside the commands that use them, never here: each one pulls in boto3,
# pyarrow, DuckDB or Faker (0.3 to 3 s), which --help, --version, completion and a mistyped flag do not need
# (tests/unit/test_cli.py checks that importing this module loads none of them).

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError
from rich.console import Console as RichConsole
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from analytics.report import print_report
from common.config import Settings, load_settings, parse_option, writable_state_dir
from common.console import Console
from common.errors import PipelineError
from common.process import UP_WHAT
from common.process import up_lock as state_up_lock
from common.state_dir import sql_history_file
from generator.defaults import DEFAULT_DAYS, DEFAULT_ORDERS, DEFAULT_SEED, DEFAULT_THREADS, MAX_ORDERS

if TYPE_CHECKING:
    from bootstrap.plan import Plan
    from common.aws import Clients

app = typer.Typer(no_args_is_help=True, help="Local-first CDC pipeline for sales orders.")
ENGINES = ("duckdb", "athena")
TargetOpt = Annotated[str | None, typer.Option("--target", help="embedded | compose | aws (default: $TARGET)")]


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"sales-orders-cdc {version('sales-orders-cdc')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("sales-orders-cdc (not installed: run `make install`)")
        raise typer.Exit()


@app.callback()
def options(
    debug: Annotated[bool, typer.Option("--debug", help="tracebacks and internal notes (same as DEBUG=1)")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Local-first CDC pipeline for sales orders."""
    if debug:
        os.environ["DEBUG"] = "1"  # the one switch: the error boundary and every Console read it


def boundary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one line and exit code 1 (Ctrl-C: one line, 130)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            if os.environ.get("DEBUG"):
                raise
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", code=130)
        except Exception as exc:
            if os.environ.get("DEBUG") or not lost_endpoint(exc):
                raise
            fail(f"the AWS endpoint stopped answering ({exc}); "
                 "if the emulator was stopped (`make down`), `make up` starts it again")

    return wrapper


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: <message>` as exactly one line on stderr and exit with `code`."""
    line = " ".join(message.split())
    RichConsole(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(line)}")
    raise typer.Exit(code)


def lost_endpoint(exc: BaseException) -> bool:
    """A connection that failed or closed under a call: the emulator went away (e.g. `make down` mid-seed)."""
    return isinstance(exc, BotoConnectionError | HTTPClientError)


def settings_for(target: str | None) -> Settings:
    return load_settings(target=target)


def writable_output(flag: str, path: Path) -> Path:
    """`path`'s directory created and writable, checked before the work whose result goes there; one line if not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "a directory")
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise PipelineError(f"{flag} {path} cannot be written ({exc.strerror or exc}); "
                            "give a path in a directory you can write") from None
    return path


def local_runner_settings(target: str | None, command: str) -> Settings:
    """Settings for a command about the local runners (drain, status), which have no meaning on aws."""
    settings = settings_for(target)
    if not settings.emulated:
        raise PipelineError(f"{command}; on TARGET=aws the managed Pipe and Firehose run, and CloudWatch shows them")
    return settings


def foreground_settings(target: str | None) -> Settings:
    """Settings for running local runners in this process: never on aws, and the state dir must be writable."""
    settings = settings_for(target)
    if not settings.emulated:
        raise PipelineError("on TARGET=aws the managed Pipe and Firehose run; the local runners never start")
    writable_state_dir(settings)
    return settings


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise PipelineError(f"--engine {engine!r} is unknown; use duckdb or athena")


def up_lock(settings: Settings, console: Console) -> contextlib.AbstractContextManager[None]:
    """`<state>/up.lock` for a whole `up` or `down`; says so (one line) when another one holds it."""

    def waiting(pid: int | None) -> None:
        console.warn(f"waiting for {UP_WHAT} (pid {pid or '?'}) to finish")

    return state_up_lock(settings.state_dir, on_wait=waiting)


def clients_for(settings: Settings) -> Clients:
    from common.aws import Clients

    clients = Clients(settings)
    clients.ensure_reachable()
    return clients


def print_plan(plan: Plan, console: Console) -> None:
    table = Table(title=f"plan for target {plan.target} (account {plan.account}, {plan.region})")
    for col in ("action", "kind", "name", "details"):
        table.add_column(col)
    colours = {"create": "green", "update": "yellow", "no change": "dim"}
    for change in plan.changes:
        details = change.served_by or (", ".join(change.fields) if change.action == "update" else "")
        table.add_row(f"[{colours[change.action]}]{change.action}[/]", change.resource.kind,
                      change.resource.name, details)
    console.table(table)
    for warning in plan.warnings:
        console.warn(f"local only: {warning}")
    for note in plan.notes:
        console.warn(note)
    console.info(plan.summary())


class Phases:
    """When each phase of `make up` ended, written as JSON to $UP_TIMINGS if set (bench/startup.py reads it
    to say where the time went); wall-clock seconds, so a reader can place them against its own clock."""

    def __init__(self) -> None:
        self.path = os.environ.get("UP_TIMINGS")
        self.marks: list[tuple[str, float]] = []

    def mark(self, phase: str) -> None:
        if self.path:
            self.marks.append((phase, time.time()))

    def write(self) -> None:
        if self.path:
            Path(self.path).write_text(json.dumps({"marks": self.marks}) + "\n")


def ask_account_early(clients: Clients, emu_launch: Any) -> None:
    """The account id from STS, asked while `up` imports the bootstrap: an emulator answers a service's first
    call slowest (it loads the service then), and the plan begins with this one. Best effort: the plan asks
    again if this failed, and reports the error itself."""
    from bootstrap import emulator as emu

    with contextlib.suppress(Exception):
        if emu_launch is not None and emu_launch.proc is not None:
            emu.wait_healthy(clients.settings, 30.0, emu_launch.proc)
        clients.account_id  # noqa: B018 (cached for the plan)


@app.command()
@boundary
def up(
    target: TargetOpt = None,
    emulator: Annotated[bool, typer.Option(help="start the embedded emulator")] = True,
    runners: Annotated[bool, typer.Option(help="start the local runners")] = True,
) -> None:
    """Start the emulator (embedded target), apply the bootstrap, start the local runners."""
    # Every process is launched early and waited for last, so their start-ups (about a second of CPU each:
    # imports, service models) overlap each other's and the bootstrap's. The emulator goes first and the
    # runners and the Athena endpoint once this process has its imports and clients: on 2 cores, four start-ups
    # at once had slowed this one's, which leads to the plan (make up 3.2-3.6 s -> 2.6-3.2 s). The runners
    # read nothing before `runner_launch.go()`, which keeps the firehose-before-pipe order.
    # No garbage collection in this short process: the service models it loads are some 10^5 objects that the
    # collector would walk again and again (a fifth of its CPU), and at exit (over a second): they are frozen.
    gc.disable()
    try:
        _up(target, emulator, runners)
    finally:
        gc.freeze()


def _up(target: str | None, emulator: bool, runners: bool) -> None:
    from bootstrap import emulator as emu
    from runners import service

    phases = Phases()
    phases.mark("cli imported")
    settings, console = settings_for(target), Console()
    if not settings.emulated:  # no confirmation here: the real account is deploy-aws's, which asks
        raise PipelineError("make up starts the local stack; on TARGET=aws, make deploy-aws plans the pipeline, "
                            "asks, then applies it")
    writable_state_dir(settings)
    embedded = settings.target == "embedded" and emulator
    with up_lock(settings, console):  # a concurrent `make up`/`make down` waits here, then finds all up
        emu_launch = athena_launch = runner_launch = None
        try:
            emu_launch = emu.launch(settings) if embedded else None
            phases.mark("emulator launched")
            from common.aws import Clients

            clients = Clients(settings)
            early = threading.Thread(target=ask_account_early, args=(clients, emu_launch), daemon=True)
            early.start()
            from bootstrap.plan import PRELOADED_SERVICES, apply, build_plan

            clients.preload(*PRELOADED_SERVICES)  # the service models load while the emulator starts
            runner_launch = service.launch(settings) if settings.emulated and runners else None
            if embedded:
                from analytics.athena_api import process as athena  # light: boto3 loads only with a client

                athena_launch = athena.launch(settings)
            phases.mark("bootstrap imported, clients built, runners launched")
            if emu_launch is not None:
                pid = emu_launch.wait()
                console.ok(f"emulator up at {settings.endpoint_url} (pid {pid}, log {emu.log_file(settings)})")
                phases.mark("emulator healthy")
            early.join()  # never long: it waited for the same emulator, then made one call
            clients.ensure_reachable()
            plan = build_plan(clients, settings)
            print_plan(plan, console)
            phases.mark("plan")
            apply(clients, plan, console)
            phases.mark("apply")
            if runner_launch is not None:
                pids = runner_launch.go()
                console.ok("runners up: " + ", ".join(f"{n} (pid {p})" for n, p in pids.items()))
                phases.mark("runners healthy")
        except BaseException:
            for launched in (runner_launch, athena_launch, emu_launch):
                if launched is not None:
                    launched.abandon()
            raise
        if athena_launch is not None:
            from analytics.athena_api import endpoint_url

            pid = athena_launch.wait()
            console.ok(f"Athena endpoint up at {endpoint_url(settings)} (pid {pid}): any Athena client runs Trino SQL")
            phases.mark("Athena endpoint healthy")
    phases.write()


@app.command()
@boundary
def down(target: TargetOpt = None) -> None:
    """Stop the local runners and the embedded emulator that `up` started."""
    from bootstrap import emulator as emu
    from runners import service

    settings, console = settings_for(target), Console()
    writable_state_dir(settings)
    with up_lock(settings, console):
        stopped = service.stop(settings)
        console.ok(f"runners stopped: {', '.join(stopped) or 'none were running'}")
        if settings.target == "embedded":
            from analytics.athena_api import process as athena

            if athena.stop(settings):
                console.ok("Athena endpoint stopped")
            console.ok("emulator stopped" if emu.stop(settings) else "emulator was not running")


@app.command()
@boundary
def plan(target: TargetOpt = None) -> None:
    """Print what apply would create, change or leave alone."""
    from bootstrap.plan import build_plan

    settings, console = settings_for(target), Console()
    print_plan(build_plan(clients_for(settings), settings), console)


@app.command(name="apply")
@boundary
def apply_cmd(
    target: TargetOpt = None,
    yes: Annotated[bool, typer.Option("--yes", envvar="AUTO_APPROVE", help="skip the confirmation on aws")] = False,
) -> None:
    """Apply the bootstrap plan (idempotent)."""
    from bootstrap.plan import apply, build_plan

    settings, console = settings_for(target), Console()
    if settings.emulated:
        writable_state_dir(settings)  # the runner specs go there
    clients = clients_for(settings)
    plan = build_plan(clients, settings)
    print_plan(plan, console)
    if plan.pending and not settings.emulated and not yes:
        typer.confirm(f"apply {len(plan.pending)} changes to AWS account {plan.account}?", abort=True)
    apply(clients, plan, console)


@app.command()
@boundary
def destroy(
    target: TargetOpt = None,
    empty_buckets: Annotated[bool, typer.Option("--empty-buckets", help="delete the buckets' objects too")] = False,
    yes: Annotated[bool, typer.Option("--yes", envvar="AUTO_APPROVE")] = False,
) -> None:
    """Delete every resource the plan manages (buckets only if empty, or with --empty-buckets)."""
    from bootstrap.plan import destroy as destroy_all
    from runners import service

    settings, console = settings_for(target), Console()
    if settings.emulated:
        writable_state_dir(settings)
    clients = clients_for(settings)
    if not settings.emulated and not yes:
        typer.confirm(f"destroy the pipeline in AWS account {clients.account_id}?", abort=True)
    if settings.emulated:
        service.stop(settings)
    destroy_all(clients, settings, console, empty_buckets=empty_buckets)


@app.command(name="deploy-aws")
@boundary
def deploy_aws(
    yes: Annotated[bool, typer.Option("--yes", envvar="AUTO_APPROVE", help="skip the confirmation")] = False,
) -> None:
    """Plan, confirm and apply the pipeline on real AWS (the managed Pipe, Firehose, Glue crawler, Athena)."""
    from bootstrap.deploy import deploy

    settings, console = settings_for("aws"), Console()
    deploy(clients_for(settings), settings, console, confirm=lambda q: typer.confirm(q, default=False),
           auto_approve=yes, show_plan=lambda plan: print_plan(plan, console))


@app.command(name="destroy-aws")
@boundary
def destroy_aws(
    empty_buckets: Annotated[bool, typer.Option("--empty-buckets", help="delete the buckets' objects too")] = False,
    yes: Annotated[bool, typer.Option("--yes", envvar="AUTO_APPROVE", help="skip the confirmation")] = False,
) -> None:
    """Delete every AWS resource that carries this project's tags (buckets only if empty, or --empty-buckets)."""
    from bootstrap.deploy import teardown

    settings, console = settings_for("aws"), Console()
    teardown(clients_for(settings), settings, console, confirm=lambda q: typer.confirm(q, default=False),
             auto_approve=yes, empty_buckets=empty_buckets)


@app.command()
@boundary
def runner(name: str, target: TargetOpt = None) -> None:
    """Run one local runner in the foreground (pipe | firehose); `up` starts them in the background."""
    from runners import service

    service.check_name(name)
    service.run(name, foreground_settings(target))


@app.command()
@boundary
def seed(
    target: TargetOpt = None,
    orders: Annotated[str, typer.Option(metavar="INTEGER", help=f"orders to place, 1 to {MAX_ORDERS:,} "
                                        "(their lifecycles follow)")] = str(DEFAULT_ORDERS),
    rate: Annotated[str | None, typer.Option(metavar="FLOAT", help="orders per second "
                                             "(default: as fast as possible)")] = None,
    duration: Annotated[str | None, typer.Option(metavar="FLOAT", help="stop after this many seconds")] = None,
    seed: Annotated[str, typer.Option("--seed", metavar="INTEGER",
                                      help="the same seed gives the same orders")] = str(DEFAULT_SEED),
    threads: Annotated[str, typer.Option(metavar="INTEGER", help="writer threads, 1 to 16")] = str(DEFAULT_THREADS),
    days: Annotated[str, typer.Option(metavar="FLOAT", help="the orders' simulated history (order_ts) spans "
                                      "this many days")] = f"{DEFAULT_DAYS:g}",
) -> None:
    """Stream orders and their later changes (updates, cancellations, deletes) into DynamoDB."""
    from generator.seed import run_seed
    from generator.seed_options import parse_seed_options

    options = parse_seed_options(orders=orders, rate=rate, duration=duration, seed=seed, threads=threads, days=days)
    settings, console = settings_for(target), Console()
    run_seed(clients_for(settings), settings, console=console,
             **options.run_seed_kwargs())  # it says what it wrote, in one line


@app.command(name="runners")
@boundary
def runners_cmd(target: TargetOpt = None) -> None:
    """Run every local runner in the foreground until SIGTERM (the compose runner container's command)."""
    from runners import service

    service.run_all(foreground_settings(target))


@app.command()
@boundary
def drain(
    target: TargetOpt = None,
    timeout: Annotated[str, typer.Option(metavar="FLOAT", help="seconds to wait, at most 86,400")] = "180",
) -> None:
    """Wait until the runners have moved everything written so far into the lake."""
    from runners import service
    from runners.status_view import drain_progress

    wait_s = parse_option("--timeout", timeout, float, 0, 86_400, above=True, unit="seconds")
    settings, console = local_runner_settings(target, "drain waits for the local runners"), Console()
    with console.rich.status("waiting for the runners to drain") as spinner:
        service.wait_drained(settings, timeout=wait_s,
                             on_poll=lambda statuses: spinner.update(drain_progress(statuses)))
    console.ok("drained: every change written so far is in the lake")


@app.command()
@boundary
def errors(target: TargetOpt = None) -> None:
    """List every error record (processing-failed, format-conversion-failed, activePartitionExceeded, pipe
    dead letters), each with its reason from the Lambda's log group."""
    from runners.error_output import list_errors, summarize

    settings, console = settings_for(target), Console()
    records = list_errors(clients_for(settings), settings)
    for record in records:
        console.info(escape(record.line()))
    console.ok(summarize(records))


@app.command()
@boundary
def redrive(target: TargetOpt = None) -> None:
    """Replay the error output (processing-failed, format-conversion-failed, activePartitionExceeded, the pipe's
    dead letters) through the pipeline after a fix; a second run finds nothing to replay."""
    from bootstrap.spec import desired_resources
    from runners import service
    from runners.firehose_config import parse_config
    from runners.redrive import Redriver

    settings, console = settings_for(target), Console()
    clients = clients_for(settings)
    specs = {r.kind: r.params for r in desired_resources(settings, clients.account_id)}
    config = parse_config(specs["delivery_stream"], settings.max_active_partitions)
    result = Redriver(clients, specs["pipe"], config).run()
    for line in result.left:
        console.warn(f"left in place: {line}")
    console.ok(result.summary())
    if settings.emulated and result.objects and all(service.running(settings, n) for n in service.RUNNERS):
        service.wait_drained(settings)
        console.ok("drained: the replayed records are through the pipeline; `make verify` checks the result")


@app.command()
@boundary
def status(
    target: TargetOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="refresh in place every second until Ctrl-C")] = False,
) -> None:
    """Per runner: running?, position, lag, records in/out, objects out, errors."""
    from runners.status_view import COLUMNS, LEFT_ALIGNED, read_view

    settings, console = local_runner_settings(target, "status shows the local runners"), Console()

    def view() -> tuple[Table, tuple[str, ...]]:
        status_view = read_view(settings)
        table = Table(title="local runners")
        for col in COLUMNS:
            table.add_column(col, justify="left" if col in LEFT_ALIGNED else "right")
        for row in status_view.rows:
            table.add_row(*row.cells, style="red" if row.stopped else None)
        return table, status_view.problems

    if not watch:
        table, problems = view()
        console.table(table)
        for line in problems:
            console.warn(line)
        return
    with Live(console=console.rich, auto_refresh=False) as live:
        try:
            while True:
                table, problems = view()
                live.update(Group(table, *(Text(f"! {p}", style="yellow") for p in problems)), refresh=True)
                time.sleep(1.0)
        except KeyboardInterrupt:
            return


def crawl_lake(clients: Clients, settings: Settings, console: Console) -> None:
    """`make crawl`, and the crawl that `make analyze` and `make verify` run first."""
    from runners.glue_crawl import crawl_target

    console.ok(crawl_target(clients, settings, console))


@app.command()
@boundary
def crawl(target: TargetOpt = None) -> None:
    """Catalog the lake: create or update the Glue table and its partitions."""
    settings, console = settings_for(target), Console()
    crawl_lake(clients_for(settings), settings, console)


@app.command()
@boundary
def analyze(
    target: TargetOpt = None,
    engine: Annotated[str, typer.Option(help="duckdb (local mirror) | athena (the Athena API)")] = "duckdb",
    out: Annotated[str, typer.Option(help="where the dashboard page goes")] = "dashboard/index.html",
    crawl_first: Annotated[bool, typer.Option("--crawl/--no-crawl", help="run the crawler first")] = True,
) -> None:
    """Query the lake like Athena does, print the KPIs and write the dashboard page."""
    from analytics.dashboard import write_dashboard
    from analytics.engine import open_engine
    from analytics.health import gather_health
    from analytics.kpis import run_kpis, run_queries

    check_engine(engine)
    out_path = writable_output("--out", Path(out))
    settings, console = settings_for(target), Console()
    clients = clients_for(settings)
    if crawl_first:
        crawl_lake(clients, settings, console)
    with open_engine(clients, settings, console, footers=True) as eng:  # many full scans: footers once
        if engine == "athena":
            from analytics.athena import run_athena

            results = run_athena(clients, settings, console)
            source = f"Athena API ({settings.target})"
        else:
            results = run_kpis(eng.conn)
            source = f"DuckDB over the Glue table ({eng.access})"
        queries = run_queries(eng.conn)  # the team's own questions (queries/*.sql); a bad one shows its error
        health = gather_health(clients, settings, eng)
    print_report([*results, *queries], console)
    page = write_dashboard(results, out_path, generated_at=datetime.now(UTC),
                           source_note=f"{source}, target {settings.target}", health=health, queries=queries)
    console.ok(f"dashboard written to {page.resolve()}")


@app.command()
@boundary
def query(
    sql: Annotated[str | None, typer.Argument(help="Athena (Trino) SQL; or use --file")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="a .sql file to run")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (local mirror) | athena (the Athena API)")] = "duckdb",
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    target: TargetOpt = None,
) -> None:
    """Run your own Athena SQL on the lake's tables and views (ENGINE=athena: through the Athena API)."""
    from analytics.query import RESULT_FORMATS, format_result, query_lake, result_table

    if sql is not None and not sql.strip():  # `make query` without SQL= or FILE= sends an empty one
        sql = None
    if (sql is None) == (file is None):
        raise PipelineError("give the SQL (SQL=...) or a file (FILE=path.sql), one of the two")
    check_engine(engine)
    if fmt not in RESULT_FORMATS:
        raise PipelineError(f"--format {fmt!r} is unknown; use {', '.join(RESULT_FORMATS)}")
    if file is not None and not file.is_file():
        raise PipelineError(f"--file {file} does not exist; give the path of a .sql file")
    try:
        text = file.read_text(encoding="utf-8") if file is not None else str(sql)
    except UnicodeDecodeError:
        raise PipelineError(f"--file {file} is not UTF-8 text; save it as UTF-8") from None
    settings, console = settings_for(target), Console()
    clients = clients_for(settings)
    if engine == "athena":
        from analytics.athena import query_athena

        result = query_athena(clients, settings, text)
    else:
        result = query_lake(clients, settings, text)
    if fmt == "table":
        console.table(result_table(result))
    else:
        typer.echo(format_result(result, fmt), nl=False)


@app.command()
@boundary
def sql(target: TargetOpt = None) -> None:
    """An interactive Athena SQL prompt over the lake (history and completion; Ctrl-D to leave)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    from analytics.query import open_mirror, result_table

    settings, console = settings_for(target), Console()
    writable_state_dir(settings)  # its history file lives there
    with open_mirror(clients_for(settings), settings, console) as mirror:
        session: PromptSession[str] = PromptSession(
            history=FileHistory(str(sql_history_file(settings.state_dir))),
            completer=WordCompleter(mirror.completions(), ignore_case=True))
        console.info("Athena SQL over the lake's tables and views: Enter runs it, Tab completes, Ctrl-D leaves")
        while True:
            try:
                text = session.prompt("athena> ", multiline=False)
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
            if not text.strip():
                continue
            try:
                console.table(result_table(mirror.run(text.rstrip().rstrip(";"))))
            except PipelineError as exc:
                console.warn(f"error: {exc}")


@app.command()
@boundary
def compact(
    target: TargetOpt = None,
    day: Annotated[str | None, typer.Option(help="YYYY-MM-DD: one day's partition (default: every busy one)")] = None,
    more_than: Annotated[str, typer.Option(metavar="INTEGER",
                                           help="compact partitions holding more small objects than this")] = "10",
    grace: Annotated[str, typer.Option(metavar="FLOAT",
                                       help="seconds between writing the new files and deleting the old: longer "
                                            "than your longest query, so none meets a deleted file")] = "0",
    target_rows: Annotated[str | None, typer.Option(metavar="INTEGER",
                                                    help="rows per compacted file [default: 1,000,000]")] = None,
) -> None:
    """Rewrite many small lake objects into few large Parquet files (readers never lose a row)."""
    from lake.compact import DEFAULT_TARGET_ROWS, compact_all, compact_partition, parse_day, validate_compact_args

    # Typed strictly here; a value that is not a number reaches validate_compact_args as text, which it refuses
    # with the flag's own range.
    more_than = number_or_text(more_than, int)
    grace = number_or_text(grace, float)
    target_rows = DEFAULT_TARGET_ROWS if target_rows is None else number_or_text(target_rows, int)
    validate_compact_args(more_than=more_than, grace_s=grace, target_rows=target_rows)
    part = parse_day(day) if day is not None else None  # bad flags fail before anything is touched ("" too)
    settings, console = settings_for(target), Console()
    clients = clients_for(settings)
    if part:
        results = [compact_partition(clients, settings, year=part.year, month=part.month, day=part.day,
                                     console=console, grace_s=grace, target_rows=target_rows)]
    else:
        results = compact_all(clients, settings, console=console, more_than=more_than, grace_s=grace,
                              target_rows=target_rows)
    done = [r for r in results if r.outputs]
    console.ok(f"compacted {len(done)} partition(s): "
               + (", ".join(f"{r.partition} {r.inputs}->{len(r.outputs)} objects" for r in done) or "nothing to do"))


@app.command()
@boundary
def backfill(
    target: TargetOpt = None,
    since: Annotated[str | None, typer.Option(help="ISO-8601 UTC: fill the gap since then (aws: incremental export)")]
    = None,
    segments: Annotated[str | None, typer.Option(metavar="INTEGER",
                                                 help="parallel Scan segments [default: BACKFILL_SEGMENTS]")] = None,
    policy: Annotated[bool, typer.Option("--policy", help="print the IAM policy the identity running it needs on "
                                                          "aws, and do nothing else")] = False,
) -> None:
    """Bring the table's existing items into the lake as snapshot rows (resumable; docs/backfill.md)."""
    from backfill import run_backfill
    from backfill.core import parse_time

    moment = parse_time("SINCE", since) if since is not None else None  # "" is refused, not "the whole table"
    count = parse_option("SEGMENTS", segments, int, 1, 1000) if segments is not None else None
    settings, console = settings_for(target), Console()
    clients = clients_for(settings)
    if policy:
        from bootstrap.iam import backfill_policy_for

        typer.echo(json.dumps(backfill_policy_for(settings, clients.account_id), indent=2))
        return
    run_backfill(clients, settings, console, since=moment, segments=count)


def number_or_text(raw: str, kind: type) -> Any:
    """`raw` as a number of `kind` if it is one, written plainly (no 1e3, nan, 2_0), else `raw` itself."""
    try:
        return parse_option("", raw, kind, -math.inf, math.inf)
    except PipelineError:
        return raw


@app.command()
@boundary
def verify(target: TargetOpt = None, crawl_first: Annotated[bool, typer.Option("--crawl/--no-crawl")] = True) -> None:
    """Reconcile: the lake's current state must equal a DynamoDB scan (exit 1 with a diff otherwise)."""
    from analytics.engine import open_engine
    from analytics.health import save_verify_result
    from analytics.verify import reconcile

    settings, console = settings_for(target), Console()
    clients = clients_for(settings)
    if crawl_first:
        crawl_lake(clients, settings, console)
    with open_engine(clients, settings, console) as eng:
        result = reconcile(clients, settings, eng.conn)
    save_verify_result(settings.state_dir, result)  # the dashboard's health section shows the last verdict
    unmapped = set(result.unmapped_lines())
    for line in result.report_lines():
        (console.ok if result.ok and line not in unmapped else console.warn)(line)
    if not result.ok:
        raise typer.Exit(1)


def shell_lines(settings: Settings) -> list[str]:
    """`make env`'s lines: bootstrap/shell_env.py decides them; the Athena endpoint's address is analytics'."""
    from analytics.athena_api import endpoint_url
    from bootstrap import shell_env

    return shell_env.shell_lines(settings, athena_url=endpoint_url(settings))


@app.command()
@boundary
def env(target: TargetOpt = None) -> None:
    """Print shell exports for the target: `eval "$(make -s env)"`, then aws / awslocal / boto3 just work."""
    for line in shell_lines(settings_for(target)):
        typer.echo(line)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        sys.exit(exc.code)


if __name__ == "__main__":
    main()

