"""The dashboard as a person sees it: headless Chromium opens the file, dumps the DOM, screenshots it.

Skipped when no Chromium binary is found (CI installs Debian's `chromium`). The page must render with
no network at all: every run sends the browser's traffic to a proxy of the test's own on 127.0.0.1
(loopback included, `<-loopback>`), which records each request and refuses it, and the test asserts it
recorded none (a control page with one remote image proves the proxy sees what a page asks for).
Plotly draws the charts in the browser, so the DOM Chromium dumps after load holds each chart's SVG;
its numbers are checked against the inputs: the runner status files and the verify result the health
section was gathered from. The screenshot is decoded with the standard library (zlib + PNG filters)
to check that the bars were painted.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.dashboard import BAR, FUNNEL, MIX, WARN, write_dashboard
from analytics.health import (
    S3Object,
    compute_health,
    events_table,
    load_verify_result,
    read_runner_statuses,
    save_verify_result,
)
from analytics.kpis import KpiResult as Kpi
from analytics.verify import Reconciliation

WINDOW = (1280, 2000)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
]
STAMP = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def sample() -> list[Kpi]:
    return [
        Kpi("avg_order_value", "Average order value", ["orders", "revenue", "avg_order_value"],
            [(1234, Decimal("124271.14"), Decimal("100.71"))]),
        Kpi("cancellation_return_rates", "Cancellations and returns",
            ["orders", "cancelled", "returned", "cancellation_rate", "return_rate"], [(1234, 62, 37, 0.05, 0.03)]),
        Kpi("cdc_freshness", "CDC freshness", ["events", "p50_ms", "p95_ms", "max_ms"], [(5000, 850, 2345, 9000)]),
        Kpi("daily_revenue", "Revenue and orders per day", ["day", "orders", "revenue", "avg_order_value"],
            [(date(2024, 5, d), 10 + d, Decimal(1000 + 150 * d), Decimal("90")) for d in range(1, 6)]),
        Kpi("revenue_by_category", "Revenue by category", ["category", "orders", "revenue"],
            [("Electronics", 9, Decimal("900")), ("Home <& Garden>", 7, Decimal("700")), ("Toys", 3, Decimal("300"))]),
        Kpi("revenue_by_region", "Revenue by region", ["customer_region", "orders", "revenue"],
            [("EU", 12, Decimal("1200")), ("NA", 10, Decimal("1000")), ("APAC", 6, Decimal("600"))]),
        Kpi("top_products", "Top products", ["product_name", "units", "revenue"],
            [(f"Product {i}", 50 - i, Decimal(500 - 40 * i)) for i in range(4)]),
        Kpi("top_customers", "Top customers", ["customer_name", "orders", "revenue"],
            [(f"Customer {i}", 9 - i, Decimal(900 - 100 * i)) for i in range(3)]),
        Kpi("status_funnel", "Order status funnel", ["stage", "orders"],
            [("PLACED", 100), ("PAID", 80), ("SHIPPED", 50), ("DELIVERED", 40)]),
    ]


QUERIES = [
    Kpi("by_channel", "Orders by channel", ["channel", "orders"], [("web", 10), ("app", 4)]),
    Kpi("broken", "A broken query", [], [], error="not valid Athena SQL: Invalid expression"),
]
# Points drawn per chart: one per bar or funnel stage; the revenue chart adds a marker per day for orders.
CHART_POINTS = {"daily_revenue": 10, "revenue_by_category": 3, "revenue_by_region": 3, "top_products": 4,
                "top_customers": 3, "status_funnel": 4}
STATUSES = {
    "pipe": {"records_in": 12345, "records_out": 12344, "objects_out": 0, "errors": 1, "pending": 17,
             "lag_ms": 2345, "dead_letters": 1, "updated": STAMP.timestamp() - 4, "last_error": ""},
    "firehose": {"records_in": 12344, "records_out": 12350, "objects_out": 87, "errors": 3, "pending": 0,
                 "lag_ms": 0, "dead_letters": 0, "updated": STAMP.timestamp() - 2, "last_error": ""},
}


def health_inputs(state: Path):
    """A state dir as the runners and `make verify` leave it, read back the way `make analyze` reads it."""
    runners = state / "runners"
    runners.mkdir(parents=True)
    for name, status in STATUSES.items():
        (runners / f"{name}.status.json").write_text(json.dumps(status))
    save_verify_result(state, Reconciliation(lake_orders=1943, table_orders=1943), at=STAMP - timedelta(minutes=5))
    t0 = datetime(2024, 6, 1, 11, 0)
    day = "orders/year=2024/month=06/day=01/"
    rows = [dict(event_id=f"e{i}", event_type=("INSERT", "MODIFY", "MODIFY", "REMOVE")[i % 4],
                 event_ts=t0 + timedelta(seconds=i), arrival_ts=t0 + timedelta(seconds=i, milliseconds=400),
                 key=f"{day}fh-{i // 10}.parquet") for i in range(60)]
    objects = [S3Object(f"{day}fh-{n}.parquet", 5000 + n, (t0 + timedelta(seconds=10 * n + 12)).replace(tzinfo=UTC))
               for n in range(6)]
    objects += [S3Object(f"orders/year=2024/month=05/day=31/fh-{n}.parquet", 900, t0.replace(tzinfo=UTC))
                for n in range(14)]
    objects += [S3Object("errors/processing-failed/2024/06/01/11/x.gz", 10, t0.replace(tzinfo=UTC)),
                S3Object("errors/pipe-dead-letter/2024/06/01/11/y.json", 10, t0.replace(tzinfo=UTC))]
    return compute_health(events_table(rows), objects, read_runner_statuses(runners), load_verify_result(state),
                          lake_prefix="orders/", error_prefix="errors/", generated_at=STAMP)


HEALTH_POINTS = {"health_freshness": 24, "health_mix": 3, "health_partitions": 4, "health_errors": 2}


def chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


class DevTools:
    """Headless Chromium driven over its DevTools protocol on --remote-debugging-pipe (fds 3 and 4, NUL-separated
    JSON), with the standard library only. Every request the page makes is paused (Fetch) and recorded: the
    page itself (file://) goes on, anything else is failed, so nothing leaves the page; Network records what
    was asked for, whatever stage it reached. Chromium's own background requests (component updates, time
    queries) go to a proxy on 127.0.0.1's discard port, which refuses them: nothing leaves the machine."""

    def __init__(self, binary: str, profile: Path, width: int, height: int) -> None:
        to_chrome, self.writer = os.pipe()
        self.reader, from_chrome = os.pipe()
        high_in, high_out = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 10)
        os.close(to_chrome)
        os.close(from_chrome)
        self.log = (profile.parent / f"{profile.name}.log").open("wb")
        script = f'exec "$0" "$@" 3<&{high_in} 4>&{high_out} {high_in}<&- {high_out}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "about:blank"],
            pass_fds=(high_in, high_out), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        os.close(high_in)
        os.close(high_out)
        self.buffer, self.ids, self.events = b"", 0, []
        self.requested: list[str] = []  # every URL the page asked for (Network.requestWillBeSent)
        self.refused: list[str] = []  # the ones Fetch failed
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, self.session)
        self.call("Network.enable", {}, self.session)
        self.call("Page.enable", {}, self.session)
        self.resize(width, height)

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, self.session)

    def _send(self, method: str, params: dict, session: str | None) -> int:
        self.ids += 1
        message = {"id": self.ids, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.writer, json.dumps(message).encode() + b"\0")
        return self.ids

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.reader], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.reader, 1 << 20)
            if not chunk:
                raise EOFError(f"Chromium exited ({self.proc.poll()})")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(raw)
        if message.get("method") == "Fetch.requestPaused":
            self._decide(message["params"])
        elif message.get("method") == "Network.requestWillBeSent":
            self.requested.append(message["params"]["request"]["url"])
        return message

    def _decide(self, paused: dict) -> None:
        url = paused["request"]["url"]
        if url.startswith("file:"):
            self._send("Fetch.continueRequest", {"requestId": paused["requestId"]}, self.session)
        else:
            self.refused.append(url)
            self._send("Fetch.failRequest", {"requestId": paused["requestId"], "errorReason": "BlockedByClient"},
                       self.session)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        wanted, deadline = self._send(method, params or {}, session), time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                assert "error" not in message, message
                return message["result"]
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.events):
                if message["method"] == event:
                    return self.events.pop(i)
            message = self._receive(deadline)
            if "method" in message:
                self.events.append(message)

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (the page's scripts, Plotly's drawing included, have run)."""
        self.call("Page.navigate", {"url": url}, self.session)
        self.wait_for("Page.loadEventFired")

    def dom(self) -> str:
        result = self.call("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                                "returnByValue": True}, self.session)
        return "<!doctype html>\n" + result["result"]["value"]

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, self.session)["data"])

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        os.close(self.writer)
        os.close(self.reader)
        self.log.close()


@pytest.fixture()
def chrome(browser: str, tmp_path: Path) -> Iterator[DevTools]:
    tools = DevTools(browser, tmp_path / "profile", *WINDOW)
    try:
        yield tools
    finally:
        tools.close()


def chart_segment(dom: str, name: str) -> str:
    """A chart's rendered DOM: from its placeholder div to the figure's script that follows it."""
    start = dom.index(f'id="chart-{name}"')
    return dom[start:dom.index('class="chart-spec"', start)]


def cell(dom: str, runner: str, column: str) -> str:
    (found,) = re.findall(rf'data-runner="{runner}" data-column="{column}">(?:<div class="tile-label">[^<]*</div>'
                          rf'<div class="tile-value">)?([^<]*)<', dom)
    return found


def png_pixels(data: bytes) -> tuple[int, int, Counter[bytes]]:
    """Width, height and a colour histogram of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour in (2, 6), f"unexpected PNG format {depth=} {colour=}"
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp
    m7, m8 = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
    prev, histogram = bytes(stride), Counter[bytes]()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        if kind == 0:
            row = bytes(line)
        elif kind == 2:  # Up: bytewise add of two rows, done at once on big integers
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            row = (((a & m7) + (b & m7)) ^ ((a ^ b) & m8)).to_bytes(stride, "big")
        else:
            out = bytearray(line)
            for i in range(stride):
                left = out[i - bpp] if i >= bpp else 0
                if kind == 1:
                    out[i] = (out[i] + left) & 0xFF
                elif kind == 3:
                    out[i] = (out[i] + ((left + prev[i]) >> 1)) & 0xFF
                else:  # Paeth
                    up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    out[i] = (out[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
            row = bytes(out)
        histogram.update(row[i : i + 3] for i in range(0, stride, bpp))
        prev = row
    return width, height, histogram


def rgb(hex_colour: str) -> bytes:
    return bytes.fromhex(hex_colour.lstrip("#"))


@pytest.fixture(scope="module")
def browser() -> str:
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary found (apt-get install -y chromium, or set CHROMIUM=/path/to/chrome)")
    return binary


def test_a_request_of_the_page_is_seen_and_refused(chrome: DevTools, tmp_path: Path) -> None:
    """The control: a page that fetches something is caught, so an empty record below means no request."""
    page = tmp_path / "fetches.html"
    page.write_text('<!doctype html><img src="http://dashboard-test.invalid/pixel.png">')
    chrome.open(page.as_uri())
    assert chrome.refused == ["http://dashboard-test.invalid/pixel.png"]
    assert "http://dashboard-test.invalid/pixel.png" in chrome.requested


def test_charts_render_offline_with_the_inputs_numbers(chrome: DevTools, tmp_path: Path) -> None:
    health = health_inputs(tmp_path / "state")
    page = write_dashboard(sample(), tmp_path / "dashboard.html", generated_at=STAMP, source_note="browser test",
                           health=health, queries=QUERIES)
    chrome.open(page.as_uri())
    dom = chrome.dom()
    assert chrome.requested == [page.as_uri()] and chrome.refused == []  # the page, and nothing else

    assert "<h1>Sales orders · CDC dashboard</h1>" in dom
    assert "Home &lt;&amp; Garden&gt;" in dom
    for name, points in {**CHART_POINTS, **HEALTH_POINTS}.items():
        segment = chart_segment(dom, name)
        assert 'class="main-svg"' in segment, f"chart {name} was not drawn"
        assert segment.count('class="point"') == points, name
    assert len(re.findall(r'class="trace scatter ', chart_segment(dom, "health_flow"))) == 2  # changes in, out
    revenue = chart_segment(dom, "daily_revenue")
    assert ">Revenue<" in revenue and ">Orders<" in revenue  # the legend and the second axis name both

    # The numbers shown are the status files' and the verify result's, formatted as make status prints them.
    for name, status in STATUSES.items():
        assert cell(dom, name, "lag_ms") == f"{status['lag_ms']:,} ms"
        for column in ("records_in", "records_out", "objects_out", "pending", "errors", "dead_letters"):
            assert cell(dom, name, column) == f"{status[column]:,}", (name, column)
    verify = re.search(r'<section class="tile-group" data-health="verify">.*?</section>', dom, re.S)
    assert verify
    assert '<div class="tile-value">agree</div>' in verify.group(0)
    assert verify.group(0).count('<div class="tile-value">1,943</div>') == 2  # lake orders, table orders
    assert "<li>lake and table agree: 1943 orders, every attribute equal</li>" in verify.group(0)
    assert "2024-06-01 11:55:00 UTC" in verify.group(0)
    # The user's queries: a table, and a failure as its one line.
    assert '<p class="query-error" data-query="broken">error: not valid Athena SQL: Invalid expression</p>' in dom


def test_screenshot_shows_the_bars(chrome: DevTools, tmp_path: Path) -> None:
    page = write_dashboard(sample(), tmp_path / "dashboard.html", generated_at=STAMP, source_note="browser test",
                           health=health_inputs(tmp_path / "state"))
    chrome.resize(WINDOW[0], 3000)  # the whole health section
    chrome.open(page.as_uri())
    width, height, histogram = png_pixels(chrome.screenshot())
    assert (width, height) == (WINDOW[0], 3000)
    # Pixels painted in each colour here: ~15k, ~127k, ~72k; the bounds leave room for font metrics.
    assert histogram[rgb(MIX["INSERT"])] > 5_000  # the change mix's INSERT bar
    assert histogram[rgb(WARN)] > 20_000  # the day make compact would rewrite, the max line, the error output
    assert histogram[rgb(BAR)] > 20_000  # the other day, the MODIFY bar, the p50 line
    assert len(histogram) > 50  # text anti-aliasing, tiles, grid lines: not a flat page
    chrome.resize(*WINDOW)

    sales = write_dashboard(sample(), tmp_path / "sales.html", generated_at=STAMP)
    chrome.open(sales.as_uri())
    sales_histogram = png_pixels(chrome.screenshot())[2]
    assert sales_histogram[rgb(BAR)] > 40_000  # revenue per day and the bar charts: ~322k pixels here
    assert sales_histogram[rgb(FUNNEL[0])] > 2_000  # the first funnel stage: ~15k

    # The same check on a page with no data finds no bar colour at all: it can fail.
    empty = write_dashboard([Kpi(k.name, k.title, k.columns, []) for k in sample()], tmp_path / "empty.html",
                            generated_at="now")
    chrome.open(empty.as_uri())
    assert png_pixels(chrome.screenshot())[2][rgb(BAR)] == 0
    assert chrome.refused == []
