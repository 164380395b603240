"""The KPI report's formatting, the dashboard's HTML and chart figures, and the queries/ folder, on small
hand-made inputs (no server, no browser: tests/browser draws the same pages in Chromium)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs, get_plotlyjs_version
from rich.console import Console as RichConsole

from analytics.dashboard import count_axis, render_dashboard, write_dashboard
from analytics.engine import open_local_engine
from analytics.health import S3Object, VerifyResult, compute_health, events_table
from analytics.kpis import QUERIES_DIR, run_kpi, run_queries
from analytics.kpis import KpiResult as Kpi
from analytics.report import (
    MISSING,
    column_kind,
    format_duration_ms,
    format_value,
    kpi_table,
    print_report,
)
from common.errors import TerminalError

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



def specs(html_text: str) -> dict[str, dict]:
    """Every chart's figure, by chart name, as the page carries it (JSON inside its script element)."""
    found = re.findall(r'<script type="application/json" class="chart-spec" data-chart="([^"]+)">(.*?)</script>',
                       html_text, re.S)
    return {name: json.loads(text) for name, text in found}


def without_scripts(html_text: str) -> str:
    return re.sub(r"<script\b[^>]*>.*?</script>", "", html_text, flags=re.S)


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


def test_kpi_table_shows_a_failed_query_and_a_truncated_one() -> None:
    failed = kpi_table(Kpi("mine", "My query", [], [], error="not valid Athena SQL: boom"))
    assert str(failed.caption) == "error: not valid Athena SQL: boom" and str(failed.title) == "My query"
    cut = kpi_table(Kpi("mine", "My query", ["n"], [(1,), (2,)], truncated=True))
    assert cut.caption == "the first 2 rows; the query returned more"


# --- dashboard: KPI charts ----------------------------------------------------------------------


def test_revenue_per_day_shows_revenue_bars_and_an_orders_line() -> None:
    fig = specs(page())["daily_revenue"]
    bars, line = fig["data"]
    assert (bars["type"], bars["name"], bars["x"], bars["y"]) == (
        "bar", "Revenue", ["2024-05-01", "2024-05-02", "2024-05-03"], [150.0, 75.0, None])
    assert (line["type"], line["name"], line["x"], line["y"], line["yaxis"]) == (
        "scatter", "Orders", ["2024-05-01", "2024-05-02", "2024-05-03"], [10, 5, 0], "y2")
    assert fig["layout"]["yaxis2"]["overlaying"] == "y" and fig["layout"]["yaxis2"]["title"]["text"] == "Orders"
    assert fig["layout"]["showlegend"] is True


def test_bar_and_funnel_charts_carry_one_value_per_row() -> None:
    figures = specs(page())
    category = figures["revenue_by_category"]["data"][0]
    assert (category["orientation"], category["x"], category["y"], category["text"]) == (
        "h", [200.0, 100.0], ['Books &lt;new&gt; &amp; "more"', "Toys"], ["200.00", "100.00"])  # shown as typed
    assert figures["revenue_by_region"]["data"][0]["x"] == [10.5]
    assert figures["top_products"]["data"][0]["x"] == [90.0, 30.0, 0.0]
    assert figures["top_products"]["layout"]["yaxis"]["autorange"] == "reversed"  # first row on top
    funnel = figures["status_funnel"]["data"][0]
    assert (funnel["type"], funnel["x"], funnel["y"], funnel["textinfo"]) == (
        "funnel", [100, 80, 50, 40], ["PLACED", "PAID", "SHIPPED", "DELIVERED"], "value+percent initial")
    assert set(figures) == {"daily_revenue", "revenue_by_category", "revenue_by_region", "top_products",
                            "status_funnel"}
    for name in figures:  # each figure sits right after its placeholder
        assert f'<div class="chart" id="chart-{name}" data-chart="{name}"' in page()


def test_names_are_shown_as_typed_not_read_as_plotly_markup() -> None:
    """Plotly reads <b>, <br> and entities in text as markup: a name must be escaped to be shown as typed."""
    kpi = Kpi("top_customers", "Top customers", ["customer_id", "customer_name", "orders", "revenue"],
              [("C-1", "<b>Bold</b> Ltd", 1, Decimal("3.00")), ("C-2", "A<br>B", 1, Decimal("2.00")),
               ("C-3", "Tom &amp; Jerry", 1, Decimal("1.00"))])
    labels = specs(render_dashboard([kpi], generated_at=STAMP))["top_customers"]["data"][0]["y"]
    assert labels == ["&lt;b&gt;Bold&lt;/b&gt; Ltd", "A&lt;br&gt;B", "Tom &amp;amp; Jerry"]


def test_rows_that_share_a_name_keep_a_bar_each() -> None:
    """A category axis draws one bar per distinct label: two customers named alike were one bar, the second
    hidden behind the first, while the table below listed both."""
    kpi = Kpi("top_customers", "Top customers", ["customer_id", "customer_name", "orders", "revenue"],
              [("C-1", "Jessica Smith", 3, Decimal("900.00")), ("C-3", "Jessica Smith", 2, Decimal("400.00")),
               ("C-2", "Ann Lee", 1, Decimal("10.00"))])
    bars = specs(render_dashboard([kpi], generated_at=STAMP))["top_customers"]["data"][0]
    assert bars["y"] == ["Jessica Smith (C-1)", "Jessica Smith (C-3)", "Ann Lee"]
    assert bars["x"] == [900.0, 400.0, 10.0]


def test_a_day_without_orders_keeps_its_place_on_the_revenue_axis() -> None:
    """Days with no orders have no row; on a category axis 03-01, 03-02, 03-04 stood evenly spaced."""
    kpi = Kpi("daily_revenue", "Revenue by day", ["day", "orders", "revenue", "avg_order_value"],
              [(date(2024, 3, d), 1, Decimal("5.00"), Decimal("5.00")) for d in (1, 2, 4)])
    fig = specs(render_dashboard([kpi], generated_at=STAMP))["daily_revenue"]
    assert fig["layout"]["xaxis"]["type"] == "date"
    assert fig["data"][0]["x"] == ["2024-03-01", "2024-03-02", "2024-03-04"]


def test_a_funnel_of_zeros_is_a_note_not_a_chart() -> None:
    """On an empty lake the funnel has its four stages at 0 orders (the other KPIs have no rows): it was drawn."""
    kpi = Kpi("status_funnel", "Order status funnel", ["step", "stage", "orders", "reached_rate"],
              [(1, "PLACED", 0, None), (2, "PAID", 0, None), (3, "SHIPPED", 0, None), (4, "DELIVERED", 0, None)])
    html_text = render_dashboard([kpi], generated_at=STAMP)
    assert "status_funnel" not in specs(html_text)
    assert '<p class="empty" data-kpi="status_funnel">No data yet.</p>' in html_text


def test_an_empty_kpi_gets_a_note_and_no_chart() -> None:
    html_text = page()
    assert '<p class="empty" data-kpi="top_customers">No data yet.</p>' in html_text
    assert 'data-chart="top_customers"' not in html_text


@pytest.mark.parametrize(("values", "axis"), [([0, 3], {"dtick": 1}), ([7], {"dtick": 2}), ([11, 2], {}),
                                              ([], {"dtick": 1})])
def test_count_axis_has_whole_ticks(values: list[int], axis: dict) -> None:
    assert count_axis(values) == {"tickformat": ",d", "rangemode": "tozero", **axis}


def test_text_is_escaped_everywhere() -> None:
    html_text = page()
    visible = without_scripts(html_text)
    assert "Books &lt;new&gt; &amp; &quot;more&quot;" in visible
    assert "<new>" not in visible
    assert "<title>Orders &lt;dash&gt;</title>" in html_text
    assert "<h3>Something &lt;b&gt;new&lt;/b&gt;</h3>" in html_text
    assert 'data-kpi="mystery_&lt;kpi&gt;"' in html_text


def test_a_label_cannot_close_the_script_that_carries_its_chart() -> None:
    evil = "</script><script>alert(1)</script>"
    html_text = render_dashboard([Kpi("top_products", "Top", ["product_name", "revenue"], [(evil, 1)])],
                                 generated_at=STAMP)
    assert specs(html_text)["top_products"]["data"][0]["y"] == ["&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert "alert(1)</script>" not in html_text


def test_page_is_self_contained() -> None:
    html_text = page()
    lowered = html_text.lower()
    for needle in ("<link", "@import", "@font-face", "<iframe", "<img"):
        assert needle not in lowered, needle
    scripts = re.findall(r"<script\b([^>]*)>", html_text)
    assert scripts and all("src" not in attrs for attrs in scripts)  # every script is inline
    visible = without_scripts(lowered)
    for needle in ("http://", "https://", "src=", "href=", "url("):
        assert needle not in visible, needle
    assert "Plotly.newPlot" in html_text
    assert f"charts by plotly.js {get_plotlyjs_version()} (inlined)" in html_text
    assert get_plotlyjs()[:2000] in html_text
    assert len(html_text) > 3_000_000  # plotly.min.js is inside the page, not fetched


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
    assert 'class="chart"' not in card.group(0)
    assert '<tr><td>y</td><td class="num">—</td></tr>' in card.group(0)


def test_known_kpi_with_unexpected_columns_falls_back_to_a_table() -> None:
    html_text = render_dashboard([Kpi("daily_revenue", "Revenue", ["d", "x"], [(1, 2)])], generated_at=STAMP)
    assert specs(html_text) == {}
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


# --- dashboard: pipeline health -----------------------------------------------------------------

T0 = datetime(2024, 6, 1, 11, 0, 0)
DAY1, DAY2 = "orders/year=2024/month=06/day=01/", "orders/year=2024/month=05/day=31/"
STATUSES = {
    "pipe": {"records_in": 12345, "records_out": 12345, "objects_out": 0, "errors": 0, "pending": 7,
             "lag_ms": 1234, "dead_letters": 2, "updated": STAMP.timestamp() - 3, "last_error": "throttled <x>"},
    "firehose": {"records_in": 12345, "records_out": 12346, "objects_out": 321, "errors": 1, "pending": 0,
                 "lag_ms": None, "dead_letters": 0, "updated": STAMP.timestamp() - 1},
}
VERIFY = VerifyResult(False, 1942, 1943, "2024-06-01T11:59:00Z",
                      ("lake current state: 1942 orders; DynamoDB table: 1943 orders", "missing in lake (1): o7"))


def a_health(verify: VerifyResult | None = VERIFY):
    rows = [dict(event_id=f"e{i}", event_type=("INSERT", "MODIFY", "MODIFY", "REMOVE")[i % 4],
                 event_ts=T0 + timedelta(seconds=i), arrival_ts=T0 + timedelta(seconds=i, milliseconds=300),
                 key=(DAY1 + "fh-a.parquet") if i < 4 else (DAY1 + "fh-b.parquet")) for i in range(6)]
    objects = [S3Object(DAY1 + "fh-a.parquet", 2048, (T0 + timedelta(seconds=5)).replace(tzinfo=UTC)),
               S3Object(DAY1 + "fh-b.parquet", 4096, (T0 + timedelta(seconds=9)).replace(tzinfo=UTC)),
               *[S3Object(f"{DAY2}fh-{i}.parquet", 100, T0.replace(tzinfo=UTC)) for i in range(3)],
               S3Object("errors/processing-failed/2024/06/01/11/x.gz", 10, T0.replace(tzinfo=UTC)),
               S3Object("errors/pipe-dead-letter/2024/06/01/11/y.json", 10, T0.replace(tzinfo=UTC)),
               S3Object("errors/pipe-dead-letter/2024/06/01/11/z.json", 10, T0.replace(tzinfo=UTC))]
    return compute_health(events_table(rows), objects, STATUSES, verify, lake_prefix="orders/",
                          error_prefix="errors/", generated_at=STAMP, compact_more_than=2)


def health_page(**kw) -> str:
    return render_dashboard(sample(), generated_at=STAMP, health=a_health(**kw))


def runner_cell(html_text: str, runner: str, column: str) -> str:
    found = re.findall(rf'data-runner="{runner}" data-column="{column}">(?:<div class="tile-label">[^<]*</div>'
                       rf'<div class="tile-value">)?([^<]*)<', html_text)
    assert len(found) == 1, (runner, column, found)
    return found[0]


def test_health_comes_first_and_only_when_given() -> None:
    html_text = health_page()
    assert html_text.index('<section class="section" id="health">') < html_text.index('id="sales"')
    assert 'id="health"' not in page()


def test_runner_numbers_are_the_status_files_as_make_status_prints_them() -> None:
    html_text = health_page()
    assert runner_cell(html_text, "pipe", "lag_ms") == "1,234 ms"
    assert runner_cell(html_text, "firehose", "lag_ms") == MISSING
    for name, status in STATUSES.items():
        for column in ("records_in", "records_out", "objects_out", "pending", "errors", "dead_letters"):
            assert runner_cell(html_text, name, column) == f"{status[column]:,}", (name, column)
    assert runner_cell(html_text, "pipe", "updated") == "3 s ago"
    assert "<li>pipe: last error: throttled &lt;x&gt;</li>" in html_text


def test_the_last_verify_result_is_shown_with_its_lines() -> None:
    html_text = health_page()
    group = re.search(r'<section class="tile-group" data-health="verify">.*?</section>', html_text, re.S)
    assert group
    text = group.group(0)
    assert '<div class="tile bad" data-column="ok"><div class="tile-label">Result</div>' \
           '<div class="tile-value">differ</div>' in text
    assert '<div class="tile-value">1,942</div>' in text and '<div class="tile-value">1,943</div>' in text
    assert "<li>missing in lake (1): o7</li>" in text
    assert "2024-06-01 11:59:00 UTC" in text
    none = health_page(verify=None)
    assert "No result yet: run <code>make verify</code>." in none


def test_health_charts_carry_the_computed_figures() -> None:
    health = a_health()
    figures = specs(render_dashboard([], generated_at=STAMP, health=health))
    assert set(figures) == {"health_freshness", "health_flow", "health_mix", "health_partitions", "health_errors"}
    p50, p95, top, firehose = figures["health_freshness"]["data"]
    # Object a (written +5 s) holds e0..e3 (5000, 4000, 3000, 2000 ms), b (+9 s) holds e4, e5 (5000, 4000 ms).
    assert p50["y"] == [3.0, 4.0] and p95["y"] == [5.0, 5.0] and top["y"] == [5.0, 5.0]
    assert firehose["y"] == [0.3, 0.3] and p50["name"] == "p50 change → S3"
    assert p50["x"] == ["2024-06-01 11:00:05", "2024-06-01 11:00:09"]
    flow_in, flow_out = figures["health_flow"]["data"]
    assert sum(flow_in["y"]) == 6 * 60 and sum(flow_out["y"]) == 6 * 60  # 1 s buckets, as rates per minute
    mix = figures["health_mix"]["data"][0]
    assert (mix["x"], mix["y"]) == (["INSERT", "MODIFY", "REMOVE"], [2, 3, 1])
    objects, size = figures["health_partitions"]["data"]
    assert (objects["x"], objects["y"]) == (["2024-05-31", "2024-06-01"], [3, 2])
    assert objects["marker"]["color"][0] != objects["marker"]["color"][1]  # 3 small objects > 2: compact it
    assert size["y"] == [0.1, 3.0] and size["yaxis"] == "y2"
    assert figures["health_partitions"]["layout"]["shapes"][0]["y0"] == 2
    errors = figures["health_errors"]["data"][0]
    assert (errors["y"], errors["x"]) == (["pipe-dead-letter", "processing-failed"], [2, 1])


def test_health_tables_and_tiles() -> None:
    html_text = health_page()
    fresh = re.search(r'<section class="tile-group" data-health="freshness">.*?</section>', html_text, re.S)
    assert fresh and '<div class="tile-value">5.0 s</div>' in fresh.group(0)  # p95 change -> S3
    assert '<div class="tile" data-column="firehose_p95_ms"><div class="tile-label">p95 to Firehose</div>' \
           '<div class="tile-value">300 ms</div>' in fresh.group(0)
    table = re.search(r'<table class="kpi-table" data-kpi="health_partitions">.*?</table>', html_text, re.S)
    assert table and '<tr><td>2024-05-31</td><td class="num">3</td><td class="num">3</td><td class="num">300</td>' \
                     '<td class="num">100.00</td><td>yes</td></tr>' in table.group(0)
    assert "1 partition(s) hold more than 2 small objects: <code>make compact</code> rewrites them" in html_text


def test_an_empty_health_has_notes_instead_of_charts() -> None:
    empty = compute_health(events_table([]), [], {}, None, lake_prefix="orders/", error_prefix="errors/",
                           generated_at=STAMP)
    html_text = render_dashboard([], generated_at=STAMP, health=empty)
    assert specs(html_text) == {}
    assert "No error output: nothing failed." in html_text
    assert "No runner status files" in html_text


# --- the queries/ folder ------------------------------------------------------------------------


def test_query_cards_show_rows_or_the_error_in_place() -> None:
    ok = Kpi("by_channel", "By channel", ["channel", "revenue"], [("web", Decimal("10"))])
    bad = Kpi("broken", "Broken <q>", [], [], error="column x <y> not found")
    many = Kpi("many", "Many", ["n"], [(1,)], truncated=True)
    html_text = render_dashboard(sample()[:1], generated_at=STAMP, queries=[ok, bad, many])
    section = html_text[html_text.index('<section class="section" id="queries">'):]
    assert '<p class="source">queries/by_channel.sql</p>' in section
    assert '<tr><td>web</td><td class="num">10.00</td></tr>' in section
    assert '<p class="query-error" data-query="broken">error: column x &lt;y&gt; not found</p>' in section
    assert "Table · 1 rows (the first ones; the query returned more)" in section
    assert "1 KPIs · 3 queries" in html_text
    assert 'id="queries"' not in page()


@pytest.fixture()
def engine(tmp_path: Path):
    from tests.fixtures.lake import write_local_lake

    write_local_lake(tmp_path / "lake")
    with open_local_engine(tmp_path / "lake") as opened:
        yield opened


def test_the_sample_query_runs_over_the_views(engine) -> None:
    (result,) = run_queries(engine.conn)  # the repository's queries/ folder
    assert result.name == "orders_by_channel_last_7_days" and not result.error
    assert result.title == "Orders and revenue by channel, last 7 days of data"
    assert result.columns == ["channel", "orders", "valid_orders", "revenue", "first_day", "last_day"]
    # Current orders (tests/fixtures/lake.py): web o1 DELIVERED 20.00, o3 RETURNED, o5 PAID 199.98;
    # app o2 CANCELLED, o6 PLACED 5.50 (o4 is deleted).
    assert result.rows == [("web", 3, 2, Decimal("219.98"), date(2024, 3, 1), date(2024, 3, 2)),
                           ("app", 2, 1, Decimal("5.50"), date(2024, 3, 1), date(2024, 3, 3))]
    assert sorted(p.name for p in QUERIES_DIR.glob("*.sql")) == ["orders_by_channel_last_7_days.sql"]


def test_a_failing_query_is_one_line_in_its_place_and_the_others_run(engine, tmp_path: Path) -> None:
    folder = tmp_path / "queries"
    folder.mkdir()
    (folder / "a_count.sql").write_text("-- title: Current orders\nSELECT count(*) AS orders FROM sales_orders_current")
    (folder / "b_parse.sql").write_text("SELECT FROM WHERE")
    (folder / "c_column.sql").write_text("SELECT no_such_column FROM sales_orders_current")
    (folder / "d_ddl.sql").write_text("DROP VIEW sales_daily")
    (folder / "e_empty.sql").write_text("-- nothing here\n")
    (folder / "f_binary.sql").write_bytes(b"SELECT '\xff'")
    (folder / "g_trino.sql").write_text("SELECT date_diff('day', DATE '2024-03-01', DATE '2024-03-08') AS days")
    (folder / "notes.txt").write_text("not a query")
    results = run_queries(engine.conn, folder)
    assert [r.name for r in results] == ["a_count", "b_parse", "c_column", "d_ddl", "e_empty", "f_binary", "g_trino"]
    by = {r.name: r for r in results}
    assert (by["a_count"].title, by["a_count"].rows, by["a_count"].error) == ("Current orders", [(5,)], "")
    assert by["g_trino"].rows == [(7,)]  # a Trino function, through the KPIs' transpiler
    for name in ("b_parse", "c_column", "d_ddl", "e_empty", "f_binary"):
        assert by[name].error and "\n" not in by[name].error and by[name].rows == [], name
    assert "no_such_column" in by["c_column"].error
    assert by["d_ddl"].error.startswith("DROP at line 1, column 1") and "runs queries only" in by["d_ddl"].error
    assert by["e_empty"].error.startswith("expected exactly one SQL statement, found 0")
    assert "utf-8" in by["f_binary"].error
    assert engine.query("SELECT count(*) FROM sales_daily") == [(3,)]  # the refused DROP changed nothing


def test_a_query_file_runs_as_athena_runs_it_through_the_one_query_core(engine, tmp_path: Path) -> None:
    """Integer division truncates, an unnamed column is _col0 and a function Trino lacks is refused, as
    `make query` and Athena itself do: the report and the dashboard must not answer otherwise."""
    (tmp_path / "a_half.sql").write_text("SELECT count(*) / 2 AS half, count(*) FROM sales_orders_current")
    (tmp_path / "b_duckdb_only.sql").write_text("SELECT strftime(DATE '2024-03-01', '%Y') AS y")
    half, duckdb_only = run_queries(engine.conn, tmp_path)
    assert (half.columns, half.rows, half.error) == (["half", "_col1"], [(2, 5)], "")
    assert duckdb_only.rows == [] and duckdb_only.error.startswith("strftime at line 1, column 8: Athena would reject")


def test_a_kpi_runs_as_athena_runs_it(engine) -> None:
    assert run_kpi(engine.conn, "SELECT 7 / 2 AS half").rows == [(3,)]
    with pytest.raises(TerminalError, match=r"^KPI k failed on DuckDB: strftime at line 1"):
        run_kpi(engine.conn, "SELECT strftime(DATE '2024-03-01', '%Y') AS y", "k")


def test_a_query_keeps_at_most_max_rows(engine, tmp_path: Path) -> None:
    (tmp_path / "all.sql").write_text("SELECT event_id FROM sales_orders_cdc ORDER BY event_id")
    (result,) = run_queries(engine.conn, tmp_path, max_rows=5)
    assert len(result.rows) == 5 and result.truncated
    (exact,) = run_queries(engine.conn, tmp_path, max_rows=18)
    assert len(exact.rows) == 18 and not exact.truncated
