"""The dashboard: one self-contained HTML page, charts drawn by Plotly with plotly.js inlined.

Why Plotly: the page must open from file:// on a laptop with no network, so nothing may come from a
CDN. The `plotly` Python package ships the exact plotly.min.js it targets (`plotly.offline.get_plotlyjs`),
so the library is written into the page itself (about 4.8 MB); the figures are built and validated
with `plotly.graph_objects` here and serialised as JSON. It is a well-kept (MIT, released monthly),
widely used library with hover, zoom and a second y axis out of the box, and its Python package depends
only on `narwhals` and `packaging` (no numpy, no server, no kaleido).

Page layout: the pipeline's health (analytics/health.py) first, then the sales KPIs (tiles for the
one-row ones, a card per KPI with its chart and table), then one card per `queries/*.sql` file.
Every chart is `<div class="chart" data-chart="<name>">` followed by its figure as
`<script type="application/json" class="chart-spec" data-chart="<name>">`, drawn by one small inline
script at the end, so tests (and people reading the page source) can read each chart's numbers.
`render_dashboard` is pure: the same inputs give the same bytes; `write_dashboard` writes the file.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs_version

from analytics.health import Health, RunnerHealth
from analytics.report import (
    MISSING,
    KpiLike,
    column_kind,
    column_label,
    format_duration_ms,
    format_value,
    is_numeric_column,
)

DEFAULT_TITLE = "Sales orders · CDC dashboard"
BAR = "#2f6fde"
LINE = "#e8590c"  # the second series of a chart (orders beside revenue, changes out beside in)
WARN = "#d9480f"  # partitions `make compact` would rewrite
GREY = "#8795a8"
FUNNEL = ("#1e4fa8", "#2f6fde", "#4f8af0", "#7aa9f5", "#a9c8f9", "#d0e1fc")
MIX = {"INSERT": "#2f9e44", "MODIFY": "#2f6fde", "REMOVE": "#c92a2a"}
FONT = 'system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif'
OPEN_TABLE_ROWS = 12  # longer tables start folded (<details>), so the charts stay in view
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}  # drag zooms, double-click resets


@dataclass(frozen=True)
class ChartSpec:
    """How one known KPI is drawn: the kind of chart, its label column and its value column(s)."""

    kind: str  # "combo" (bars + line on a second axis) | "hbars" | "funnel"
    label: str
    value: str
    second: str = ""  # combo: the line's column
    key: str = ""  # the column that tells apart rows whose labels are the same (two customers named alike)


CHARTS = MappingProxyType(
    {
        "daily_revenue": ChartSpec("combo", "day", "revenue", "orders"),
        "revenue_by_category": ChartSpec("hbars", "category", "revenue"),
        "revenue_by_region": ChartSpec("hbars", "customer_region", "revenue"),
        "top_products": ChartSpec("hbars", "product_name", "revenue", key="product_id"),
        "top_customers": ChartSpec("hbars", "customer_name", "revenue", key="customer_id"),
        "status_funnel": ChartSpec("funnel", "stage", "orders"),
    }
)
# One-row KPIs shown as tiles at the top of the sales section, in this order.
TILE_KPIS = ("avg_order_value", "cancellation_return_rates", "cdc_freshness")


@dataclass(frozen=True)
class Rows:
    """A small table for the page (satisfies KpiLike), e.g. a health chart's numbers."""

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _plain(value: object) -> Any:
    """A cell as JSON for a chart: Decimal -> float, dates -> ISO text, NaN -> null."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _label_text(column: str, value: object) -> str:
    return "(none)" if value is None else format_value(column, value)


# --- figures -----------------------------------------------------------------------------------


def _layout(height: int, **extra: Any) -> dict[str, Any]:
    axis = {"gridcolor": "#e3e8ef", "linecolor": "#aab4c2", "zeroline": False, "automargin": True}
    layout: dict[str, Any] = {
        "template": "none",
        "height": height,
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "font": {"family": FONT, "size": 12, "color": "#1b2430"},
        "xaxis": dict(axis),
        "yaxis": {**axis, "rangemode": "tozero"},
        "showlegend": False,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "hoverlabel": {"font": {"family": FONT}},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def count_axis(values: Iterable[Any]) -> dict[str, Any]:
    """Axis settings for whole counts: integer ticks, a step of 1 or 2 when the counts are small."""
    top = max((float(v) for v in values if isinstance(v, int | float | Decimal) and not isinstance(v, bool)),
              default=0.0)
    axis: dict[str, Any] = {"tickformat": ",d", "rangemode": "tozero"}
    if top <= 10:
        axis["dtick"] = 1 if top <= 5 else 2
    return axis


def figure_json(figure: go.Figure) -> str:
    """The figure as JSON safe inside a <script> element (no '</' can close it)."""
    return pio.to_json(figure, validate=True, pretty=False).replace("</", "<\\/")


def chart_div(name: str, figure: go.Figure, title: str) -> str:
    """The chart's placeholder and its figure; the page's script draws it with Plotly.newPlot."""
    height = int(figure.layout.height or 300)
    return (
        f'<div class="chart" id="chart-{_e(name)}" data-chart="{_e(name)}" role="img" aria-label="{_e(title)}" '
        f'style="height:{height}px"></div>'
        f'<script type="application/json" class="chart-spec" data-chart="{_e(name)}">{figure_json(figure)}</script>'
    )


def _column(result: KpiLike, name: str) -> list[Any]:
    index = list(result.columns).index(name)
    return [row[index] if index < len(row) else None for row in result.rows]


def chart_labels(result: KpiLike, spec: ChartSpec) -> list[str]:
    """Each row's label as the chart shows it, one per row.

    Escaped, because Plotly reads <b>, <br> and entities in text as markup; and where two rows share a label,
    followed by their `spec.key` (a customer id), because a category axis draws one bar per distinct label.
    """
    labels = [_label_text(spec.label, v) for v in _column(result, spec.label)]
    if spec.key in result.columns and len(set(labels)) < len(labels):
        shared = {label for label in labels if labels.count(label) > 1}
        keys = _column(result, spec.key)
        labels = [f"{label} ({_label_text(spec.key, key)})" if label in shared else label
                  for label, key in zip(labels, keys, strict=True)]
    return [html.escape(label, quote=False) for label in labels]


def combo_figure(result: KpiLike, spec: ChartSpec) -> go.Figure:
    """Bars of `value` per label (e.g. revenue per day) and a line of `second` (orders) on a right axis.

    Days are placed on a date axis, so a day without orders (no row) leaves its gap."""
    labels = chart_labels(result, spec)
    dated = all(isinstance(v, date) for v in _column(result, spec.label))
    values, seconds = _column(result, spec.value), _column(result, spec.second)
    return go.Figure(
        data=[
            go.Bar(x=labels, y=[_plain(v) for v in values], name=column_label(spec.value), marker_color=BAR,
                   hovertext=[format_value(spec.value, v) for v in values], hoverinfo="x+name+text"),
            go.Scatter(x=labels, y=[_plain(v) for v in seconds], name=column_label(spec.second), yaxis="y2",
                       mode="lines+markers", line={"color": LINE, "width": 2}, marker={"size": 6},
                       hovertext=[format_value(spec.second, v) for v in seconds], hoverinfo="x+name+text"),
        ],
        layout=_layout(
            320, showlegend=True, hovermode="x unified",
            xaxis={"type": "date" if dated else "category", "nticks": 12},
            yaxis={"title": {"text": column_label(spec.value)}},
            yaxis2={"title": {"text": column_label(spec.second)}, "overlaying": "y", "side": "right",
                    "tickmode": "auto", "showgrid": False, "zeroline": False, "automargin": True,
                    **count_axis(seconds)},
        ),
    )


def hbar_figure(result: KpiLike, spec: ChartSpec) -> go.Figure:
    """Horizontal bars, one per row in row order, each with its formatted value."""
    labels = chart_labels(result, spec)
    values = _column(result, spec.value)
    shown = [format_value(spec.value, v) for v in values]
    return go.Figure(
        data=[go.Bar(x=[_plain(v) for v in values], y=labels, orientation="h", marker_color=BAR, text=shown,
                     textposition="outside", cliponaxis=False, hovertext=shown, hoverinfo="y+text")],
        layout=_layout(max(160, 34 * len(labels) + 40), xaxis={"showticklabels": False, "showgrid": False},
                       yaxis={"autorange": "reversed", "type": "category", "rangemode": None},
                       margin={"r": 90}),
    )


def funnel_figure(result: KpiLike, spec: ChartSpec) -> go.Figure:
    """Stages narrowing in row order, each with its count and its share of the first stage."""
    labels = chart_labels(result, spec)
    values = _column(result, spec.value)
    colours = [FUNNEL[min(i, len(FUNNEL) - 1)] for i in range(len(labels))]
    return go.Figure(
        data=[go.Funnel(y=labels, x=[_plain(v) for v in values], textinfo="value+percent initial",
                        marker={"color": colours}, connector={"fillcolor": "#eef2f8"})],
        layout=_layout(max(180, 44 * len(labels) + 30), yaxis={"rangemode": None}),
    )


_FIGURES = MappingProxyType({"combo": combo_figure, "hbars": hbar_figure, "funnel": funnel_figure})


def kpi_figure(result: KpiLike) -> go.Figure | None:
    """The figure of a known KPI whose columns are the expected ones, else None."""
    spec = CHARTS.get(result.name)
    needed = [c for c in (spec.label, spec.value, spec.second) if c] if spec else []
    if spec is None or not all(c in result.columns for c in needed) or nothing_to_draw(result, spec):
        return None
    return _FIGURES[spec.kind](result, spec)


def nothing_to_draw(result: KpiLike, spec: ChartSpec) -> bool:
    """No rows, or rows whose values are all 0 or none (the funnel's stages on an empty lake)."""
    drawn = [spec.value, *([spec.second] if spec.second in result.columns else [])]
    return not any(_plain(v) for name in drawn for v in _column(result, name))


# --- tables and tiles --------------------------------------------------------------------------


def table_html(result: KpiLike, *, limit_note: str = "") -> str:
    """The rows as an HTML table, formatted exactly like the terminal report."""
    rows = list(result.rows)
    columns = list(result.columns)
    numeric = [is_numeric_column(i, rows) for i in range(len(columns))]
    cls = [' class="num"' if n else "" for n in numeric]
    head = "".join(
        f'<th{cls[i]} scope="col">{_e(column_label(c))}</th>' for i, c in enumerate(columns)
    )
    body = []
    for row in rows:
        cells = "".join(
            f"<td{cls[i]}>{_e(format_value(c, row[i] if i < len(row) else None))}</td>"
            for i, c in enumerate(columns)
        )
        body.append(f"<tr>{cells}</tr>")
    if not rows:
        body.append(f'<tr><td class="empty" colspan="{max(len(columns), 1)}">No rows</td></tr>')
    table = (
        f'<table class="kpi-table" data-kpi="{_e(result.name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    opened = " open" if len(rows) <= OPEN_TABLE_ROWS else ""
    summary = f"Table · {len(rows):,} rows{limit_note}"
    return f'<details class="table"{opened}><summary>{_e(summary)}</summary>{table}</details>'


def tile_value(column: str, value: object) -> str:
    """A tile's big number: latencies read better as '1.2 s' than '1,234'."""
    if column_kind(column) == "ms":
        return format_duration_ms(value)
    return format_value(column, value)


def tile_label(column: str) -> str:
    """'p95_ms' -> 'p95': the tile's value already carries its unit."""
    if column_kind(column) == "ms":
        column = column[: -len("_ms")]
    return column_label(column)


def _tile(key: str, label: str, value: str, extra: str = "") -> str:
    return (f'<div class="tile{extra}" data-column="{_e(key)}"><div class="tile-label">{_e(label)}</div>'
            f'<div class="tile-value">{_e(value)}</div></div>')


def tiles_html(result: KpiLike) -> str:
    """A one-row KPI as a group of tiles, one per column ('—' for each when there is no row)."""
    row = list(result.rows[0]) if result.rows else []
    tiles = [_tile(c, tile_label(c), tile_value(c, row[i] if i < len(row) else None))
             for i, c in enumerate(result.columns)]
    return (
        f'<section class="tile-group" data-kpi="{_e(result.name)}"><h3>{_e(result.title)}</h3>'
        f'<div class="tiles">{"".join(tiles)}</div></section>'
    )


def card_html(result: KpiLike) -> str:
    spec = CHARTS.get(result.name)
    wide = " wide" if spec is not None and spec.kind == "combo" else ""
    figure = kpi_figure(result)
    if figure is not None:
        chart = chart_div(result.name, figure, result.title)
    elif spec is not None and spec.value in result.columns and nothing_to_draw(result, spec):
        chart = f'<p class="empty" data-kpi="{_e(result.name)}">No data yet.</p>'
    else:
        chart = ""
    return (
        f'<section class="card{wide}" id="kpi-{_e(result.name)}" data-kpi="{_e(result.name)}">'
        f"<h3>{_e(result.title)}</h3>{chart}{table_html(result)}</section>"
    )


# --- user queries (queries/*.sql) ---------------------------------------------------------------


def query_card_html(result: KpiLike) -> str:
    """A `queries/` file's result as a table card, or its one-line error in its place."""
    error = str(getattr(result, "error", "") or "")
    source = f"queries/{result.name}.sql"
    if error:
        body = f'<p class="query-error" data-query="{_e(result.name)}">error: {_e(error)}</p>'
    else:
        more = bool(getattr(result, "truncated", False))
        body = table_html(result, limit_note=" (the first ones; the query returned more)" if more else "")
    return (
        f'<section class="card query" id="query-{_e(result.name)}" data-query="{_e(result.name)}">'
        f'<h3>{_e(result.title)}</h3><p class="source">{_e(source)}</p>{body}</section>'
    )


# --- pipeline health ----------------------------------------------------------------------------


def _count(value: int) -> str:
    return f"{value:,}"


def _lag(value: int | None) -> str:
    """A runner's lag exactly as `make status` prints it."""
    return MISSING if value is None else f"{value:,} ms"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    if seconds < 90:
        return f"{seconds:,.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:,.0f} min ago"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:,.1f} h ago"
    return f"{seconds / 86400:,.1f} days ago"


def _bytes(value: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:,.0f} B"


RUNNER_COLUMNS = (  # (key, header, text): the numbers `make status` prints, formatted as it prints them
    ("records_in", "In", lambda r: _count(r.records_in)),
    ("records_out", "Out", lambda r: _count(r.records_out)),
    ("objects_out", "Objects", lambda r: _count(r.objects_out)),
    ("pending", "Pending", lambda r: _count(r.pending)),
    ("errors", "Errors", lambda r: _count(r.errors)),
    ("dead_letters", "Dead letters", lambda r: _count(r.dead_letters)),
    ("updated", "Status written", lambda r: _age(r.age_s)),
)


def runners_html(runners: Sequence[RunnerHealth]) -> str:
    """Each runner's lag as a tile, then its status-file numbers in one table (as `make status` shows them)."""
    if not runners:
        return ('<section class="tile-group" data-health="runners"><h3>Runners</h3>'
                '<p class="empty">No runner status files (the runners have not run here).</p></section>')
    tiles = "".join(
        f'<div class="tile" data-runner="{_e(r.name)}" data-column="lag_ms"><div class="tile-label">'
        f'{_e(r.name)} lag</div><div class="tile-value">{_e(_lag(r.lag_ms))}</div></div>' for r in runners)
    head = "".join(f'<th class="num" scope="col">{_e(header)}</th>' for _, header, _ in RUNNER_COLUMNS)
    body = "".join(
        f'<tr><th scope="row">{_e(r.name)}</th>'
        + "".join(f'<td class="num" data-runner="{_e(r.name)}" data-column="{key}">{_e(text(r))}</td>'
                  for key, _, text in RUNNER_COLUMNS)
        + "</tr>" for r in runners)
    notes = [f"{r.name}: last error: {r.last_error}" for r in runners if r.last_error]
    notes += [f"{r.name}: DATA LOSS: {line}" for r in runners for line in r.data_loss]
    listed = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return (
        '<section class="tile-group" data-health="runners"><h3>Runners</h3>'
        f'<div class="tiles">{tiles}</div>'
        f'<table class="runner-table"><thead><tr><th scope="col">Runner</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
        + (f'<ul class="notes">{listed}</ul>' if listed else "")
        + "</section>"
    )


def verify_tiles_html(health: Health) -> str:
    v = health.verify
    if v is None:
        return ('<section class="tile-group" data-health="verify"><h3>Last make verify</h3>'
                '<p class="empty">No result yet: run <code>make verify</code>.</p></section>')
    state = ' ok' if v.ok else ' bad'
    tiles = (_tile("ok", "Result", "agree" if v.ok else "differ", state)
             + _tile("lake_orders", "Lake orders", _count(v.lake_orders))
             + _tile("table_orders", "Table orders", _count(v.table_orders))
             + _tile("at", "At", v.at.replace("T", " ").replace("Z", " UTC")))
    lines = "".join(f"<li>{_e(line)}</li>" for line in v.lines)
    return (f'<section class="tile-group" data-health="verify"><h3>Last make verify</h3>'
            f'<div class="tiles">{tiles}</div><ul class="verify-lines">{lines}</ul></section>')


def freshness_tiles_html(health: Health) -> str:
    f = health.freshness
    tiles = (_tile("p50_ms", "p50", format_duration_ms(f.p50_ms)) + _tile("p95_ms", "p95", format_duration_ms(f.p95_ms))
             + _tile("max_ms", "max", format_duration_ms(f.max_ms))
             + _tile("firehose_p95_ms", "p95 to Firehose", format_duration_ms(f.firehose_p95_ms))
             + _tile("rows", "Rows", _count(f.rows)))
    return (f'<section class="tile-group" data-health="freshness"><h3>End-to-end freshness (change to S3)</h3>'
            f'<div class="tiles">{tiles}</div></section>')


def _stamp_text(when: datetime) -> str:
    return when.isoformat(sep=" ", timespec="seconds")


def _width(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def freshness_figure(health: Health) -> go.Figure:
    """p50 / p95 / max change -> S3 per bucket, and p95 change -> Firehose, in seconds (the table has ms)."""
    xs = [_stamp_text(p.at) for p in health.freshness_series]
    f = [p.freshness for p in health.freshness_series]

    def line(name: str, values: list[int | None], style: dict[str, Any]) -> go.Scatter:
        return go.Scatter(x=xs, y=[_seconds(v) for v in values], name=name, mode="lines+markers",
                          marker={"size": 5}, line=style, hovertext=[format_duration_ms(v) for v in values],
                          hoverinfo="name+text")

    return go.Figure(
        data=[
            line("p50 change → S3", [p.p50_ms for p in f], {"color": BAR, "width": 2}),
            line("p95 change → S3", [p.p95_ms for p in f], {"color": "#1e4fa8", "dash": "dot"}),
            line("max change → S3", [p.max_ms for p in f], {"color": WARN, "width": 1}),
            line("p95 change → Firehose", [p.firehose_p95_ms for p in f], {"color": GREY, "dash": "dash"}),
        ],
        layout=_layout(300, showlegend=True, hovermode="x unified", xaxis={"type": "date"},
                       yaxis={"title": {"text": "seconds"}}),
    )


def flow_figure(health: Health) -> go.Figure:
    xs = [_stamp_text(p.at) for p in health.flow]
    line = {"mode": "lines", "line_shape": "hv"}
    return go.Figure(
        data=[
            go.Scatter(x=xs, y=[p.in_per_minute for p in health.flow], name="in (changes made)",
                       line={"color": BAR, "width": 2}, **line),
            go.Scatter(x=xs, y=[p.out_per_minute for p in health.flow], name="out (rows landed in S3)",
                       line={"color": LINE, "width": 2, "dash": "dot"}, **line),
        ],
        layout=_layout(300, showlegend=True, hovermode="x unified", xaxis={"type": "date"},
                       yaxis={"title": {"text": "changes per minute"}}),
    )


def mix_figure(health: Health) -> go.Figure:
    kinds = [k for k, _ in health.mix]
    counts = [n for _, n in health.mix]
    return go.Figure(
        data=[go.Bar(x=kinds, y=counts, marker_color=[MIX.get(k, GREY) for k in kinds],
                     text=[_count(n) for n in counts], textposition="outside", cliponaxis=False)],
        layout=_layout(300, xaxis={"type": "category"}, yaxis={"title": {"text": "change events"},
                                                               **count_axis(counts)}, margin={"t": 24}),
    )


def partitions_figure(health: Health) -> go.Figure:
    days = [p.day for p in health.partitions]
    return go.Figure(
        data=[
            go.Bar(x=days, y=[p.objects for p in health.partitions], name="objects",
                   marker_color=[WARN if p.compact else BAR for p in health.partitions],
                   hovertext=[f"{p.objects:,} objects, {p.small_objects:,} small"
                              + (" · make compact rewrites it" if p.compact else "") for p in health.partitions],
                   hoverinfo="x+text"),
            go.Scatter(x=days, y=[round(p.mean_bytes / 1024, 1) for p in health.partitions],
                       name="mean object size (KiB)", yaxis="y2", mode="lines+markers",
                       line={"color": GREY, "width": 2}, marker={"size": 6}),
        ],
        layout=_layout(
            300, showlegend=True, hovermode="x unified", xaxis={"type": "category", "nticks": 16},
            yaxis={"title": {"text": "objects"}, **count_axis([*(p.objects for p in health.partitions),
                                                               health.compact_more_than])},
            yaxis2={"title": {"text": "mean object size (KiB)"}, "overlaying": "y", "side": "right", "tickmode": "auto",
                    "rangemode": "tozero", "showgrid": False, "zeroline": False, "automargin": True},
            shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                     "y0": health.compact_more_than, "y1": health.compact_more_than,
                     "line": {"color": WARN, "width": 1, "dash": "dash"}}],
        ),
    )


def errors_figure(health: Health) -> go.Figure:
    kinds = [e.type for e in health.errors]
    counts = [e.objects for e in health.errors]
    return go.Figure(
        data=[go.Bar(x=counts, y=kinds, orientation="h", marker_color=WARN, text=[_count(n) for n in counts],
                     textposition="outside", cliponaxis=False)],
        layout=_layout(max(160, 40 * len(kinds) + 60), yaxis={"autorange": "reversed", "type": "category",
                                                               "rangemode": None},
                       xaxis={"title": {"text": "objects"}, **count_axis(counts)}, margin={"r": 60}),
    )


def health_tables(health: Health) -> dict[str, Rows]:
    """Each health chart's numbers as a table, keyed like its chart."""
    width = _width(health.bucket_s)
    return {
        "health_freshness": Rows("health_freshness", "Freshness", [f"written ({width})", "rows", "p50_ms", "p95_ms",
                                                                    "max_ms", "firehose_p95_ms"],
                                 [(p.at, p.freshness.rows, p.freshness.p50_ms, p.freshness.p95_ms, p.freshness.max_ms,
                                   p.freshness.firehose_p95_ms) for p in health.freshness_series]),
        "health_flow": Rows("health_flow", "Changes in and out", [f"at ({width})", "changes_in", "changes_out",
                                                                  "in_per_minute", "out_per_minute"],
                            [(p.at, p.changes_in, p.changes_out, round(p.in_per_minute, 2),
                              round(p.out_per_minute, 2)) for p in health.flow]),
        "health_mix": Rows("health_mix", "Change mix", ["event_type", "events"], list(health.mix)),
        "health_partitions": Rows("health_partitions", "Objects per partition",
                                  ["day", "objects", "small_objects", "bytes", "mean_bytes", "compact"],
                                  [(p.day, p.objects, p.small_objects, p.bytes, round(p.mean_bytes, 1), p.compact)
                                   for p in health.partitions]),
        "health_errors": Rows("health_errors", "Error output", ["type", "objects", "bytes"],
                              [(e.type, e.objects, e.bytes) for e in health.errors]),
    }


def _health_card(name: str, title: str, note: str, figure: go.Figure | None, table: Rows, wide: bool,
                 empty: str = "No data yet.") -> str:
    if figure is not None:
        chart = chart_div(name, figure, title)
    else:
        chart = f'<p class="empty" data-chart="{name}">{_e(empty)}</p>'
    return (f'<section class="card{" wide" if wide else ""}" id="{name}" data-health="{name}"><h3>{_e(title)}</h3>'
            f'<p class="note">{note}</p>{chart}{table_html(table)}</section>')


def health_html(health: Health) -> str:
    """The pipeline-health section: verify, runners and freshness tiles, then five charts with their tables."""
    tables = health_tables(health)
    width = _width(health.bucket_s)
    compact = [p.day for p in health.partitions if p.compact]
    compact_note = (f"{len(compact)} partition(s) hold more than {health.compact_more_than} small objects: "
                    "<code>make compact</code> rewrites them" if compact else
                    f"no partition holds more than {health.compact_more_than} small objects")
    mean = (sum(p.bytes for p in health.partitions) / sum(p.objects for p in health.partitions)
            if health.partitions else 0)
    cards = [
        _health_card("health_freshness", "End-to-end freshness over time",
                     f"Change in DynamoDB (event_ts) to its object in S3 (LastModified), per {width} of delivery; "
                     "beside it, change to Firehose (arrival_ts). Compacted files are left out.",
                     freshness_figure(health) if health.freshness_series else None, tables["health_freshness"], True),
        _health_card("health_flow", "Changes in and out per minute",
                     f"In: change events by the time of the change. Out: lake rows (redeliveries included) by the "
                     f"time their object landed. Per {width}, as a rate per minute.",
                     flow_figure(health) if health.flow else None, tables["health_flow"], False),
        _health_card("health_mix", "Change mix",
                     f"{health.lake_events:,} distinct change events in the lake ({health.lake_rows:,} rows).",
                     mix_figure(health) if health.lake_events else None, tables["health_mix"], False),
        _health_card("health_partitions", "Objects per partition and mean object size",
                     f"{sum(p.objects for p in health.partitions):,} objects, mean {_e(_bytes(mean))}; "
                     f"{compact_note}.",
                     partitions_figure(health) if health.partitions else None, tables["health_partitions"], True),
        _health_card("health_errors", "Error output by type",
                     f"{health.error_objects:,} object(s) under the error prefix; <code>make errors</code> says why, "
                     "<code>make redrive</code> replays them.",
                     errors_figure(health) if health.errors else None, tables["health_errors"], False,
                     empty="No error output: nothing failed."),
    ]
    runners = runners_html(health.runners)
    return (
        '<section class="section" id="health"><h2>Pipeline health</h2>'
        f'<div class="tile-groups">{verify_tiles_html(health)}{freshness_tiles_html(health)}{runners}</div>'
        f'<div class="grid">{"".join(cards)}</div></section>'
    )


# --- the page ----------------------------------------------------------------------------------


def _stamp(generated_at: datetime | str) -> str:
    if isinstance(generated_at, str):
        return generated_at
    if generated_at.tzinfo is None:
        return generated_at.isoformat(sep=" ", timespec="seconds")
    return generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.min.js as the plotly package ships it, safe to inline in a <script> element."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


DRAW_JS = """
(function () {
  var config = CONFIG;
  document.querySelectorAll('script.chart-spec').forEach(function (node) {
    var target = document.getElementById('chart-' + node.getAttribute('data-chart'));
    var figure = JSON.parse(node.textContent);
    if (target && window.Plotly) { Plotly.newPlot(target, figure.data, figure.layout, config); }
  });
})();
""".replace("CONFIG", json.dumps(PLOT_CONFIG))

CSS = """
:root{--ink:#1b2430;--muted:#5f6b7a;--line:#e3e8ef;--bg:#f4f6f9;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{padding:28px 32px 8px}
h1{margin:0;font-size:26px;font-weight:650}
.meta{margin:6px 0 0;color:var(--muted);font-size:13px}
main{padding:12px 32px 40px}
.section{margin-bottom:28px}
h2{margin:8px 0 12px;font-size:19px;font-weight:650}
.tile-groups{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px;margin-bottom:16px}
.tile-group,.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
box-shadow:0 1px 2px rgba(20,30,50,.05)}
h3{margin:0 0 12px;font-size:15px;font-weight:600;color:var(--ink)}
.tiles{display:flex;flex-wrap:wrap;gap:12px}
.tile{flex:1 1 110px;background:#f7f9fc;border-radius:8px;padding:10px 12px}
.tile-label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.tile-value{white-space:nowrap;font-size:22px;font-weight:650;font-variant-numeric:tabular-nums;margin-top:2px}
.tile.ok .tile-value{color:#2b8a3e}
.tile.bad .tile-value{color:#c92a2a}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.wide{grid-column:1/-1}
.chart{width:100%;margin-bottom:8px}
.note,.source{margin:-6px 0 10px;color:var(--muted);font-size:13px}
table.runner-table{margin-top:12px}
.tile-group[data-health=runners]{grid-column:1/-1}
ul.verify-lines,ul.notes{margin:10px 0 0;padding-left:18px;color:var(--muted);font-size:13px}
code{font-size:12px;background:#eef2f8;padding:1px 4px;border-radius:4px}
details.table{overflow-x:auto}
details.table summary{cursor:pointer;color:var(--muted);font-size:13px;margin:4px 0}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:6px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:var(--muted);font-style:italic}
.query-error{color:#c92a2a;font-family:ui-monospace,monospace;font-size:13px;white-space:pre-wrap}
footer{padding:0 32px 24px;color:var(--muted);font-size:12px}
"""


def render_dashboard(
    results: Iterable[KpiLike],
    *,
    title: str = DEFAULT_TITLE,
    generated_at: datetime | str,
    source_note: str = "",
    health: Health | None = None,
    queries: Sequence[KpiLike] = (),
) -> str:
    """The whole page as a string: pipeline health (if given), the KPIs, then the `queries/` results."""
    results = list(results)
    by_name = {r.name: r for r in results}
    tile_results = [by_name[n] for n in TILE_KPIS if n in by_name and len(by_name[n].rows) <= 1]
    tiled = {r.name for r in tile_results}
    cards = [card_html(r) for r in results if r.name not in tiled]
    meta = f"Generated {_e(_stamp(generated_at))}"
    if source_note:
        meta += f" · {_e(source_note)}"
    sections = [health_html(health)] if health is not None else []
    sections.append(
        '<section class="section" id="sales"><h2>Sales</h2>'
        f'<div class="tile-groups">{"".join(tiles_html(r) for r in tile_results)}</div>'
        f'<div class="grid">{"".join(cards)}</div></section>'
    )
    if queries:
        sections.append(
            '<section class="section" id="queries"><h2>Your queries <span class="meta">(queries/*.sql)</span></h2>'
            f'<div class="grid">{"".join(query_card_html(q) for q in queries)}</div></section>'
        )
    counts = f"{len(results)} KPIs" + (f" · {len(queries)} queries" if queries else "")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n"
        f'<body><header><h1>{_e(title)}</h1><p class="meta">{meta}</p></header>\n<main>'
        + "\n".join(sections)
        + "</main>\n"
        f"<footer>{counts} · self-contained page: charts by plotly.js {_e(get_plotlyjs_version())} (inlined), "
        "no network.</footer>\n"
        f"<script>{plotly_js()}</script>\n<script>{DRAW_JS}</script>\n"
        "</body></html>\n"
    )


def write_dashboard(
    results: Iterable[KpiLike],
    path: Path,
    *,
    title: str = DEFAULT_TITLE,
    generated_at: datetime | str | None = None,
    source_note: str = "",
    health: Health | None = None,
    queries: Sequence[KpiLike] = (),
) -> Path:
    """Render and write the page (parents created); returns the path written."""
    page = render_dashboard(
        results,
        title=title,
        generated_at=generated_at if generated_at is not None else datetime.now(UTC),
        source_note=source_note,
        health=health,
        queries=queries,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["CHARTS", "TILE_KPIS", "ChartSpec", "render_dashboard", "write_dashboard"]
