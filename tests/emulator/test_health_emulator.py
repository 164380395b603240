"""The dashboard's pipeline health on a real seeded pipeline (embedded emulator, the local runners).

Seeds orders through DynamoDB -> pipe runner -> Kinesis -> firehose runner -> S3, puts one poison
record on the stream (error output), drains, stops the runners (so their status files hold still),
crawls, verifies (saving <state>/verify.json), and gathers the health: its numbers must equal what
the runners' status files, the seed, the S3 listing and a DynamoDB scan say. The page is written
with the KPIs and the queries/ folder, and checked to hold those numbers.

`DASHBOARD_SCREENSHOT=docs/dashboard.png` also screenshots the page in headless Chromium (the README's
picture, from this real run); HEALTH_ORDERS and HEALTH_RATE (orders placed per second) size the seed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from analytics.dashboard import write_dashboard
from analytics.engine import open_engine
from analytics.health import (
    ErrorOutput,
    gather_health,
    list_objects,
    load_verify_result,
    save_verify_result,
)
from analytics.kpis import run_kpis, run_queries
from analytics.verify import reconcile, scan_table
from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from generator.lifecycle import LifecycleConfig
from generator.seed import SeedSummary, run_seed
from runners import service
from runners.crawler import crawl, spec_from_settings
from runners.loop import read_status
from tests.fixtures.stack import named_stack


@pytest.fixture(scope="module")
def seeded(emulator_settings: Settings,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, SeedSummary]]:
    settings = named_stack(emulator_settings, "health", tmp_path_factory.mktemp("health-state"),
                           buffer_interval_s=1, processor_interval_s=0)
    clients = Clients(settings)
    apply(clients, build_plan(clients, settings), Console(capture=True))
    service.start(settings)
    try:
        rate, orders = os.environ.get("HEALTH_RATE"), int(os.environ.get("HEALTH_ORDERS", "600"))
        summary = run_seed(clients, settings, orders=orders, rate=float(rate) if rate else None, duration=None,
                           seed=14, console=Console(capture=True),
                           config=LifecycleConfig(mean_gap_ms=14 * 86_400_000 / orders))  # `make seed DAYS=14`
        clients.kinesis.put_record(StreamName=settings.stream_name, Data=b"not json at all", PartitionKey="poison")
        service.wait_drained(settings, timeout=180)
    finally:
        service.stop(settings)
    yield settings, summary


def test_health_numbers_equal_the_status_files_the_listing_and_a_scan(seeded: tuple[Settings, SeedSummary],
                                                                       tmp_path: Path) -> None:
    settings, summary = seeded
    clients = Clients(settings)
    crawl(clients, settings, Console(capture=True), spec=spec_from_settings(settings, clients.account_id))
    with open_engine(clients, settings, footers=True) as engine:
        reconciliation = reconcile(clients, settings, engine.conn)
        save_verify_result(settings.state_dir, reconciliation)  # what `make verify` does
        health = gather_health(clients, settings, engine)
        kpis = run_kpis(engine.conn)
        queries = run_queries(engine.conn)
    assert gather_health(clients, settings, generated_at=health.generated_at) == health  # ENGINE=athena: its own
    scan = scan_table(clients, settings)
    pipe, firehose = (read_status(settings.runner_dir, name) for name in ("pipe", "firehose"))
    assert pipe and firehose

    # The last verify result: the lake agrees with a DynamoDB scan.
    assert health.verify == load_verify_result(settings.state_dir)
    assert health.verify is not None and health.verify.ok
    assert health.verify.table_orders == health.verify.lake_orders == len(scan) == len(summary.items_in_table_expected)

    # Runners: exactly the status files' numbers.
    by_name = {r.name: r for r in health.runners}
    assert list(by_name) == ["pipe", "firehose"]
    for runner, status in ((by_name["pipe"], pipe), (by_name["firehose"], firehose)):
        assert (runner.lag_ms, runner.pending, runner.records_in, runner.records_out, runner.objects_out,
                runner.errors, runner.dead_letters) == (
            status["lag_ms"], status["pending"], status["records_in"], status["records_out"], status["objects_out"],
            status["errors"], status["dead_letters"])

    # The lake: every change the seed made, once per event; every row the firehose wrote.
    assert health.lake_events == summary.writes == pipe["records_in"]
    assert health.lake_rows == firehose["records_out"]
    mix = dict(health.mix)
    assert mix["INSERT"] == summary.placed
    assert mix["INSERT"] - mix["REMOVE"] == len(scan)  # every order inserted once; the removed ones are gone
    assert sum(mix.values()) == summary.writes
    assert sum(p.changes_in for p in health.flow) == health.lake_events
    assert sum(p.changes_out for p in health.flow) == health.lake_rows == health.freshness.rows

    # The listing: data objects per partition plus the error output are what the firehose wrote.
    listing = list_objects(clients.s3, settings.lake_bucket_for(clients.account_id))
    data = [o for o in listing if o.key.startswith(settings.lake_prefix)]
    assert sum(p.objects for p in health.partitions) == len(data)
    assert sum(p.bytes for p in health.partitions) == sum(o.size for o in data)
    assert health.errors == (ErrorOutput("processing-failed", 1, health.errors[0].bytes),)
    assert len(data) + health.error_objects == firehose["objects_out"]
    assert health.errors[0].objects == firehose["errors"]  # the poison record, alone in its object

    # Freshness change -> S3 is at least change -> Firehose's order of magnitude, and ordered.
    f = health.freshness
    assert f.p50_ms is not None and 0 <= f.p50_ms <= f.p95_ms <= f.max_ms  # type: ignore[operator]
    assert f.max_ms < 180_000  # everything landed within the drain's timeout
    assert f.firehose_p95_ms is not None and f.firehose_p95_ms >= 0

    # The page carries the same numbers.
    page = write_dashboard(kpis, tmp_path / "index.html", generated_at=datetime.now(UTC),
                           source_note=f"DuckDB over the Glue table, target {settings.target}", health=health,
                           queries=queries)
    html_text = page.read_text(encoding="utf-8")
    assert f'data-runner="pipe" data-column="records_in">{pipe["records_in"]:,}<' in html_text
    assert f'data-runner="firehose" data-column="objects_out">{firehose["objects_out"]:,}<' in html_text
    assert f"<li>lake and table agree: {len(scan)} orders" in html_text
    assert re.search(r'<p class="query-error"', html_text) is None  # the sample query runs on the real lake
    assert not queries[0].error and queries[0].rows

    if target := os.environ.get("DASHBOARD_SCREENSHOT"):
        screenshot(page, Path(target), tmp_path)


def screenshot(page: Path, target: Path, tmp_path: Path) -> None:
    """The README's picture of the page: 1280 px wide, the health section down to revenue and orders per day."""
    from tests.browser.test_dashboard_browser import DevTools, chromium

    binary = chromium()
    if binary is None:
        pytest.skip("DASHBOARD_SCREENSHOT needs Chromium (apt-get install -y chromium)")
    tools = DevTools(binary, tmp_path / "profile", 1280, 3400)
    try:
        tools.open(page.as_uri())
        assert tools.refused == []
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tools.screenshot())
    finally:
        tools.close()
