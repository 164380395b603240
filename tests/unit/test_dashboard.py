"""The KPI report's formatting and the dashboard's HTML, on small hand-made KPI results."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from rich.console import Console as RichConsole

from analytics.dashboard import _nice_ceiling, render_dashboard, write_dashboard
from analytics.kpis import KpiResult as Kpi
from analytics.report import (
    MISSING,
    column_kind,
    format_duration_ms,
    format_value,
    kpi_table,
    print_report,
)

STAMP = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def sample() -> list[Kpi]:
    return [
        Kpi(
            "daily_revenue",
            "Revenue by day",
            ["day", "orders", "revenue", "avg_order_value"],
            [
                (date(2024, 5, 1), 10, Decimal("150.00"), Decimal("15.00")),
                (date(2024, 5, 2), 5, Decimal("75.00"), Decimal("15.00")),
                (date(2024, 5, 3), 0, None, None),
            ],
        ),
        Kpi(
            "avg_order_value",
            "Average order value",
            ["orders", "revenue", "avg_order_value"],
            [(1234, Decimal("124271.14"), Decimal("100.7059"))],
        ),
        Kpi(
            "revenue_by_category",
            "Revenue by category",
            ["category", "orders", "revenue"],
            [("Books <new> & \"more\"", 3, Decimal("200")), ("Toys", 1, Decimal("100"))],
        ),
        Kpi("revenue_by_region", "Revenue by region", ["customer_region", "orders", "revenue"], [("EU", 2, 10.5)]),
        Kpi(
            "top_products",
            "Top products",
            ["product_name", "units", "revenue"],
            [("Widget", 9, Decimal("90")), ("Gadget", 3, Decimal("30")), ("Gizmo", 1, Decimal("0"))],
        ),
        Kpi("top_customers", "Top customers", ["customer_name", "orders", "revenue"], []),
        Kpi(
            "status_funnel",
            "Order status funnel",
            ["stage", "orders"],
            [("PLACED", 100), ("PAID", 80), ("SHIPPED", 50), ("DELIVERED", 40)],
        ),
        Kpi(
            "cancellation_return_rates",
            "Cancellations and returns",
            ["orders", "cancelled", "returned", "cancellation_rate", "return_rate"],
            [(1234, 62, 37, 0.04998, Decimal("0.125"))],
        ),
        Kpi("cdc_freshness", "CDC freshness", ["events", "p50_ms", "p95_ms", "max_ms"], [(5000, 850, 2345.6, 61234)]),
        Kpi("mystery_<kpi>", "Something <b>new</b>", ["a", "b"], [("x", 1), ("y", None)]),
    ]


def page() -> str:
    return render_dashboard(sample(), title="Orders <dash>", generated_at=STAMP, source_note="test lake")


def svg_of(html_text: str, name: str) -> str:
    match = re.search(rf'<svg class="chart[^"]*" data-kpi="{re.escape(name)}".*?</svg>', html_text, re.S)
    assert match, f"no chart svg for {name}"
    return match.group(0)


def attr(svg: str, name: str) -> list[str]:
    return re.findall(rf'<rect [^>]*\b{name}="([^"]*)"', svg)


def tile(html_text: str, kpi: str, column: str) -> str:
    group = re.search(rf'<section class="tile-group" data-kpi="{kpi}">.*?</section>', html_text, re.S)
    assert group, f"no tiles for {kpi}"
    value = re.search(
        rf'data-column="{column}"><div class="tile-label">[^<]*</div><div class="tile-value">([^<]*)<',
        group.group(0),
    )
    assert value, f"no tile {column} in {kpi}"
    return value.group(1)


# --- report formatting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("revenue", Decimal("1234567.891"), "1,234,567.89"),
        ("revenue", 10.5, "10.50"),
        ("avg_order_value", Decimal("100.7059"), "100.71"),
        ("net_revenue", 7, "7.00"),
        ("cancellation_rate", 0.04998, "5.0%"),
        ("return_rate", Decimal("0.125"), "12.5%"),
        ("orders", 1234567, "1,234,567"),
        ("p95_ms", 2345.6, "2,346"),
        ("ratio", 3.14159, "3.14"),
        ("day", date(2024, 5, 1), "2024-05-01"),
        ("ts", datetime(2024, 5, 1, 12, 30, 5, 123000), "2024-05-01 12:30:05"),
        ("status", "PAID", "PAID"),
        ("flag", True, "yes"),
        ("revenue", None, MISSING),
        ("revenue", float("nan"), MISSING),
        ("revenue", Decimal("NaN"), MISSING),
    ],
)
def test_format_value(column: str, value: object, expected: str) -> None:
    assert format_value(column, value) == expected


@pytest.mark.parametrize(
    ("column", "kind"),
    [("revenue", "money"), ("gross_revenue", "money"), ("return_rate", "rate"), ("max_ms", "ms"),
     ("orders", "plain"), ("category", "plain")],
)
def test_column_kind(column: str, kind: str) -> None:
    assert column_kind(column) == kind


@pytest.mark.parametrize(
    ("ms", "expected"), [(0, "0 ms"), (850, "850 ms"), (2345.6, "2.3 s"), (61234, "1.0 min"), (None, MISSING)]
)
def test_format_duration_ms(ms: object, expected: str) -> None:
    assert format_duration_ms(ms) == expected


def test_kpi_table_formats_cells_and_right_aligns_numbers() -> None:
    table = kpi_table(sample()[2])
    assert [str(c.header) for c in table.columns] == ["Category", "Orders", "Revenue"]
    assert [c.justify for c in table.columns] == ["left", "right", "right"]
    assert [str(cell) for cell in table.columns[2].cells] == ["200.00", "100.00"]
    assert str(table.title) == "Revenue by category"


def test_kpi_table_prints_markup_literally_and_marks_empty_results() -> None:
    out = io.StringIO()
    rich = RichConsole(file=out, width=100, color_system=None)
    rich.print(kpi_table(Kpi("top_products", "Top [b]products[/b]", ["product_name", "revenue"],
                             [("[red]Widget[/red]", Decimal("5"))])))
    text = out.getvalue()
    assert "[red]Widget[/red]" in text
    assert "Top [b]products[/b]" in text
    assert kpi_table(Kpi("top_products", "Top", ["product_name", "revenue"], [])).caption == "no rows"


def test_print_report_sends_one_table_per_kpi_in_order() -> None:
    class Sink:
        def __init__(self) -> None:
            self.tables: list[object] = []

        def table(self, table: object) -> None:
            self.tables.append(table)

    sink = Sink()
    print_report(sample(), sink)
    assert [str(t.title) for t in sink.tables] == [k.title for k in sample()]  # type: ignore[attr-defined]


# --- dashboard HTML ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 1.0), (1, 1.0), (1.01, 2.0), (2.1, 2.5), (3, 5.0), (7, 10.0), (150, 200.0), (0.03, 0.05)],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert _nice_ceiling(value) == pytest.approx(expected)


def test_one_rect_per_row_in_every_chart() -> None:
    html_text = page()
    expected = {"daily_revenue": 3, "revenue_by_category": 2, "revenue_by_region": 1, "top_products": 3,
                "status_funnel": 4}
    for name, rows in expected.items():
        assert svg_of(html_text, name).count("<rect ") == rows, name
    # An empty KPI gets a note instead of an empty chart.
    assert 'data-kpi="top_customers" viewBox' not in html_text
    assert '<p class="empty" data-kpi="top_customers">No data yet.</p>' in html_text


def test_bar_sizes_are_proportional_to_values() -> None:
    html_text = page()
    # Horizontal bars: 290 px of bar area (560 - 170 label - 100 value) for the largest value.
    assert attr(svg_of(html_text, "revenue_by_category"), "width") == ["290", "145"]
    # A zero value draws a zero-length bar; a tiny one would still get 2 px.
    assert attr(svg_of(html_text, "top_products"), "width") == ["290", "96.67", "0"]
    # Columns: axis top is the nice ceiling of 150 (200) over a 244 px plot; None is 0.
    assert attr(svg_of(html_text, "daily_revenue"), "height") == ["183", "91.5", "0"]
    # Funnel: widths relative to the first stage, centred in 310 px (560 - 110 - 140).
    funnel = svg_of(html_text, "status_funnel")
    assert attr(funnel, "width") == ["310", "248", "155", "124"]
    assert attr(funnel, "x") == ["110", "141", "187.5", "203"]
    assert ">80 · 80.0%</text>" in funnel


def test_text_is_escaped_everywhere() -> None:
    html_text = page()
    assert "Books &lt;new&gt; &amp; &quot;more&quot;" in html_text
    assert "<new>" not in html_text
    assert "<title>Orders &lt;dash&gt;</title>" in html_text
    assert "<h2>Something &lt;b&gt;new&lt;/b&gt;</h2>" in html_text
    assert 'data-kpi="mystery_&lt;kpi&gt;"' in html_text


def test_page_is_self_contained() -> None:
    html_text = page().lower()
    for needle in ("http://", "https://", "src=", "href=", "@import", "url(", "<script", "<link", "@font-face"):
        assert needle not in html_text, needle


def test_tiles_show_formatted_values() -> None:
    html_text = page()
    assert tile(html_text, "avg_order_value", "avg_order_value") == "100.71"
    assert tile(html_text, "avg_order_value", "revenue") == "124,271.14"
    assert tile(html_text, "avg_order_value", "orders") == "1,234"
    assert tile(html_text, "cancellation_return_rates", "cancellation_rate") == "5.0%"
    assert tile(html_text, "cancellation_return_rates", "return_rate") == "12.5%"
    assert tile(html_text, "cdc_freshness", "p50_ms") == "850 ms"
    assert tile(html_text, "cdc_freshness", "p95_ms") == "2.3 s"
    assert tile(html_text, "cdc_freshness", "max_ms") == "1.0 min"
    assert tile(html_text, "cdc_freshness", "events") == "5,000"
    assert '<div class="tile" data-column="p95_ms"><div class="tile-label">P95</div>' in html_text
    # Tiled KPIs get no separate card.
    assert 'id="kpi-cdc_freshness"' not in html_text


def test_empty_tile_kpi_shows_dashes() -> None:
    html_text = render_dashboard(
        [Kpi("cdc_freshness", "CDC freshness", ["events", "p50_ms"], [])], generated_at=STAMP
    )
    assert tile(html_text, "cdc_freshness", "events") == MISSING
    assert tile(html_text, "cdc_freshness", "p50_ms") == MISSING


def test_tables_use_report_formatting() -> None:
    html_text = page()
    table = re.search(r'<table class="kpi-table" data-kpi="daily_revenue">.*?</table>', html_text, re.S)
    assert table
    assert (
        '<tr><td>2024-05-01</td><td class="num">10</td><td class="num">150.00</td><td class="num">15.00</td></tr>'
        in table.group(0)
    )
    assert f'<td class="num">{MISSING}</td>' in table.group(0)


def test_unknown_kpi_is_a_table_card_without_chart() -> None:
    html_text = page()
    card = re.search(r'<section class="card" id="kpi-mystery_&lt;kpi&gt;".*?</section>', html_text, re.S)
    assert card
    assert "<svg" not in card.group(0)
    assert '<tr><td>y</td><td class="num">—</td></tr>' in card.group(0)


def test_known_kpi_with_unexpected_columns_falls_back_to_a_table() -> None:
    html_text = render_dashboard([Kpi("daily_revenue", "Revenue", ["d", "x"], [(1, 2)])], generated_at=STAMP)
    assert "<svg" not in html_text
    assert '<table class="kpi-table" data-kpi="daily_revenue">' in html_text


def test_header_and_determinism() -> None:
    html_text = page()
    assert '<p class="meta">Generated 2024-06-01 12:00:00 UTC · test lake</p>' in html_text
    assert page() == html_text
    assert html_text.startswith("<!doctype html>\n")


def test_write_dashboard_creates_parents(tmp_path) -> None:
    path = write_dashboard(sample(), tmp_path / "out" / "dashboard.html", title="Orders <dash>",
                           generated_at=STAMP, source_note="test lake")
    assert path == tmp_path / "out" / "dashboard.html"
    assert path.read_text(encoding="utf-8") == page()
