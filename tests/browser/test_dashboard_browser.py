"""The dashboard as a person sees it: headless Chromium opens the file, dumps the DOM, screenshots it.

Skipped when no Chromium binary is found (CI installs Debian's `chromium`). The page must
render with no network, so the browser runs with networking features off. The screenshot is
decoded with the standard library (zlib + PNG filters) to check that the bars were painted.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.dashboard import BAR, FUNNEL, write_dashboard
from analytics.kpis import KpiResult as Kpi

pytestmark = pytest.mark.browser

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




def sample() -> list[Kpi]:
    return [
        Kpi("avg_order_value", "Average order value", ["orders", "revenue", "avg_order_value"],
            [(1234, Decimal("124271.14"), Decimal("100.71"))]),
        Kpi("cancellation_return_rates", "Cancellations and returns",
            ["orders", "cancelled", "returned", "cancellation_rate", "return_rate"], [(1234, 62, 37, 0.05, 0.03)]),
        Kpi("cdc_freshness", "CDC freshness", ["events", "p50_ms", "p95_ms", "max_ms"], [(5000, 850, 2345, 9000)]),
        Kpi("daily_revenue", "Revenue by day", ["day", "orders", "revenue", "avg_order_value"],
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


CHART_ROWS = {"daily_revenue": 5, "revenue_by_category": 3, "revenue_by_region": 3, "top_products": 4,
              "top_customers": 3, "status_funnel": 4}


def chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


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


def test_charts_are_in_the_rendered_dom(browser: str, tmp_path: Path) -> None:
    page = write_dashboard(sample(), tmp_path / "dashboard.html", generated_at=datetime(2024, 6, 1, tzinfo=UTC),
                           source_note="browser test")
    dom = run_chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert "<h1>Sales orders · CDC dashboard</h1>" in dom
    assert "Home &lt;&amp; Garden&gt;" in dom
    for name, rows in CHART_ROWS.items():
        svg = re.search(rf'<svg class="chart[^"]*" data-kpi="{name}".*?</svg>', dom, re.S)
        assert svg, f"chart {name} missing from the DOM"
        rects = re.findall(r'<rect [^>]*width="([\d.]+)" height="([\d.]+)"', svg.group(0))
        assert len(rects) == rows, name
        assert all(float(w) > 0 and float(h) > 0 for w, h in rects), (name, rects)


def test_screenshot_shows_the_bars(browser: str, tmp_path: Path) -> None:
    page = write_dashboard(sample(), tmp_path / "dashboard.html", generated_at=datetime(2024, 6, 1, tzinfo=UTC),
                           source_note="browser test")
    shot = tmp_path / "dashboard.png"
    run_chromium(browser, tmp_path / "profile", f"--screenshot={shot}", page.as_uri())
    if target := os.environ.get("DASHBOARD_SCREENSHOT"):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)

    width, height, histogram = png_pixels(shot.read_bytes())
    assert (width, height) == WINDOW
    # 18 bars and 5 columns paint ~125k pixels of the bar colour here; 40k leaves room for font metrics.
    assert histogram[rgb(BAR)] > 40_000
    assert histogram[rgb(FUNNEL[0])] > 2_000  # the first funnel stage: ~9.9k pixels here
    assert len(histogram) > 50  # text anti-aliasing, tiles, grid lines: not a flat page

    # The same check on a page with no data finds no bar colour at all: it can fail.
    empty = write_dashboard([Kpi(k.name, k.title, k.columns, []) for k in sample()], tmp_path / "empty.html",
                            generated_at="now")
    blank = tmp_path / "empty.png"
    run_chromium(browser, tmp_path / "profile", f"--screenshot={blank}", empty.as_uri())
    assert png_pixels(blank.read_bytes())[2][rgb(BAR)] == 0
