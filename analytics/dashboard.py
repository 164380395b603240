"""The KPI dashboard: one self-contained HTML page, charts drawn as inline SVG by this module.

Why no chart library: the page must open from file:// on a laptop with no network, so it has
no CDN, no external font, no script at all; the charts are plain SVG shapes computed here.
Every chart is `<svg class="chart" data-kpi="<name>">` with exactly one `<rect>` per data
point, so tests (and people reading the DOM) can count them. `render_dashboard` is pure: the
same results and arguments give the same bytes; `write_dashboard` is the thin file-writing shell.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from analytics.report import (
    KpiLike,
    column_kind,
    column_label,
    format_duration_ms,
    format_value,
    is_number,
    is_numeric_column,
)

DEFAULT_TITLE = "Sales orders · CDC dashboard"
# viewBox widths near the rendered card widths at 1280 px, so text keeps its CSS size.
WIDTH = 1160  # full-width cards (revenue by day)
HALF = 560  # half-width cards (bars, funnel)
BAR = "#2f6fde"
FUNNEL = ("#1e4fa8", "#2f6fde", "#4f8af0", "#7aa9f5", "#a9c8f9", "#d0e1fc")
OPEN_TABLE_ROWS = 12  # longer tables start folded (<details>), so the charts stay in view


@dataclass(frozen=True)
class ChartSpec:
    """How one known KPI is drawn: the kind of chart, its label column and its value column."""

    kind: str  # "columns" | "hbars" | "funnel"
    label: str
    value: str


CHARTS = MappingProxyType(
    {
        "daily_revenue": ChartSpec("columns", "day", "revenue"),
        "revenue_by_category": ChartSpec("hbars", "category", "revenue"),
        "revenue_by_region": ChartSpec("hbars", "customer_region", "revenue"),
        "top_products": ChartSpec("hbars", "product_name", "revenue"),
        "top_customers": ChartSpec("hbars", "customer_name", "revenue"),
        "status_funnel": ChartSpec("funnel", "stage", "orders"),
    }
)
# One-row KPIs shown as tiles at the top, in this order.
TILE_KPIS = ("avg_order_value", "cancellation_return_rates", "cdc_freshness")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(x: float) -> str:
    """A coordinate: at most 2 decimals, no trailing zeros, so output is compact and stable."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _as_float(value: object) -> float:
    """A bar's length: numbers as they are, anything else (None, text) as 0; never negative."""
    if isinstance(value, bool) or not is_number(value):
        return 0.0
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) and number > 0 else 0.0


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _nice_ceiling(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above value (axis maximum)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value * (1 - 1e-9):
            return float(candidate)
    return float(10 ** (exponent + 1))


def _compact(value: float) -> str:
    """Axis tick text: 0, 250, 1.5k, 2M."""
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _label_text(column: str, value: object) -> str:
    if value is None:
        return "(none)"
    return format_value(column, value)


def _points(result: KpiLike, spec: ChartSpec) -> list[tuple[str, float, str]]:
    """(label, bar length, formatted value) per row."""
    li, vi = list(result.columns).index(spec.label), list(result.columns).index(spec.value)
    points = []
    for row in result.rows:
        label = row[li] if li < len(row) else None
        value = row[vi] if vi < len(row) else None
        points.append((_label_text(spec.label, label), _as_float(value), format_value(spec.value, value)))
    return points


def _svg_open(name: str, kind: str, width: float, height: float, aria: str) -> str:
    return (
        f'<svg class="chart chart-{kind}" data-kpi="{_e(name)}" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{_e(aria)}">'
    )


def column_chart(name: str, title: str, points: Sequence[tuple[str, float, str]]) -> str:
    """Vertical bars (one per row, e.g. revenue per day) with a y axis and sparse x labels."""
    left, right, top, bottom, height = 64.0, 12.0, 12.0, 44.0, 300.0
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    top_value = _nice_ceiling(max((v for _, v, _ in points), default=0.0))
    parts = [_svg_open(name, "columns", WIDTH, height, title)]
    for i in range(5):
        tick = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line class="gridline" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(WIDTH - right)}" y2="{_n(y)}"/>')
        parts.append(
            f'<text class="tick" x="{_n(left - 8)}" y="{_n(y + 4)}" text-anchor="end">{_e(_compact(tick))}</text>'
        )
    band = plot_w / max(len(points), 1)
    bar_w = min(max(band * 0.78, 1.0), 72.0)
    every = max(1, math.ceil(len(points) / 10))
    for i, (label, value, shown) in enumerate(points):
        h = plot_h * value / top_value
        if value > 0:
            h = max(h, 1.0)
        x = left + band * i + (band - bar_w) / 2
        y = top + plot_h - h
        parts.append(
            f'<rect class="bar" x="{_n(x)}" y="{_n(y)}" width="{_n(bar_w)}" height="{_n(h)}" fill="{BAR}">'
            f"<title>{_e(label)}: {_e(shown)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{_n(x + bar_w / 2)}" y="{_n(top + plot_h + 18)}" '
                f'text-anchor="middle">{_e(_short(label, 12))}</text>'
            )
    parts.append(
        f'<line class="axis" x1="{_n(left)}" y1="{_n(top + plot_h)}" '
        f'x2="{_n(WIDTH - right)}" y2="{_n(top + plot_h)}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(name: str, title: str, points: Sequence[tuple[str, float, str]]) -> str:
    """Horizontal bars, one per row, label on the left and the value at the bar's end."""
    label_w, value_w, row_h, pad = 170.0, 100.0, 28.0, 4.0
    height = pad * 2 + row_h * len(points)
    bar_area = HALF - label_w - value_w
    top_value = max((v for _, v, _ in points), default=0.0) or 1.0
    parts = [_svg_open(name, "hbars", HALF, height, title)]
    for i, (label, value, shown) in enumerate(points):
        y = pad + row_h * i
        w = bar_area * value / top_value
        if value > 0:
            w = max(w, 2.0)
        parts.append(
            f'<text class="label" x="{_n(label_w - 10)}" y="{_n(y + row_h / 2 + 5)}" '
            f'text-anchor="end">{_e(_short(label, 20))}</text>'
        )
        parts.append(
            f'<rect class="bar" x="{_n(label_w)}" y="{_n(y + 5)}" width="{_n(w)}" '
            f'height="{_n(row_h - 10)}" rx="3" fill="{BAR}"><title>{_e(label)}: {_e(shown)}</title></rect>'
        )
        parts.append(
            f'<text class="value" x="{_n(label_w + w + 8)}" y="{_n(y + row_h / 2 + 5)}">{_e(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def funnel_chart(name: str, title: str, points: Sequence[tuple[str, float, str]]) -> str:
    """Centred bars narrowing stage by stage, each with its count and share of the first stage."""
    label_w, value_w, row_h, gap = 110.0, 140.0, 32.0, 6.0
    height = gap + (row_h + gap) * len(points)
    area = HALF - label_w - value_w
    top_value = max((v for _, v, _ in points), default=0.0) or 1.0
    first = points[0][1] if points else 0.0
    parts = [_svg_open(name, "funnel", HALF, height, title)]
    for i, (label, value, shown) in enumerate(points):
        y = gap + (row_h + gap) * i
        w = area * value / top_value
        if value > 0:
            w = max(w, 2.0)
        x = label_w + (area - w) / 2
        share = f" · {value / first * 100:.1f}%" if first > 0 else ""
        colour = FUNNEL[min(i, len(FUNNEL) - 1)]
        parts.append(
            f'<text class="label" x="{_n(label_w - 10)}" y="{_n(y + row_h / 2 + 5)}" '
            f'text-anchor="end">{_e(_short(label, 14))}</text>'
        )
        parts.append(
            f'<rect class="stage" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(row_h)}" rx="4" '
            f'fill="{colour}"><title>{_e(label)}: {_e(shown)}</title></rect>'
        )
        parts.append(
            f'<text class="value" x="{_n(label_w + area + 10)}" y="{_n(y + row_h / 2 + 5)}">'
            f"{_e(shown)}{_e(share)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


_DRAW = MappingProxyType({"columns": column_chart, "hbars": hbar_chart, "funnel": funnel_chart})


def table_html(result: KpiLike) -> str:
    """The KPI's rows as an HTML table, formatted exactly like the terminal report."""
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
    return f'<details class="table"{opened}><summary>Table · {len(rows)} rows</summary>{table}</details>'


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


def tiles_html(result: KpiLike) -> str:
    """A one-row KPI as a group of tiles, one per column ('—' for each when there is no row)."""
    row = list(result.rows[0]) if result.rows else []
    tiles = []
    for i, column in enumerate(result.columns):
        value = row[i] if i < len(row) else None
        tiles.append(
            f'<div class="tile" data-column="{_e(column)}"><div class="tile-label">{_e(tile_label(column))}'
            f'</div><div class="tile-value">{_e(tile_value(column, value))}</div></div>'
        )
    return (
        f'<section class="tile-group" data-kpi="{_e(result.name)}"><h2>{_e(result.title)}</h2>'
        f'<div class="tiles">{"".join(tiles)}</div></section>'
    )


def chart_html(result: KpiLike) -> str:
    """The chart of a known KPI ('' when its columns are not the expected ones); a note if empty."""
    spec = CHARTS.get(result.name)
    if spec is None or spec.label not in result.columns or spec.value not in result.columns:
        return ""
    if not result.rows:
        return f'<p class="empty" data-kpi="{_e(result.name)}">No data yet.</p>'
    return _DRAW[spec.kind](result.name, result.title, _points(result, spec))


def card_html(result: KpiLike) -> str:
    spec = CHARTS.get(result.name)
    wide = " wide" if spec is not None and spec.kind == "columns" else ""
    return (
        f'<section class="card{wide}" id="kpi-{_e(result.name)}" data-kpi="{_e(result.name)}">'
        f"<h2>{_e(result.title)}</h2>{chart_html(result)}{table_html(result)}</section>"
    )


def _stamp(generated_at: datetime | str) -> str:
    if isinstance(generated_at, str):
        return generated_at
    if generated_at.tzinfo is None:
        return generated_at.isoformat(sep=" ", timespec="seconds")
    return generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


CSS = """
:root{--ink:#1b2430;--muted:#5f6b7a;--line:#e3e8ef;--bg:#f4f6f9;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{padding:28px 32px 8px}
h1{margin:0;font-size:26px;font-weight:650}
.meta{margin:6px 0 0;color:var(--muted);font-size:13px}
main{padding:12px 32px 40px}
.tile-groups{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px;margin-bottom:16px}
.tile-group,.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
box-shadow:0 1px 2px rgba(20,30,50,.05)}
h2{margin:0 0 12px;font-size:15px;font-weight:600;color:var(--ink)}
.tiles{display:flex;flex-wrap:wrap;gap:12px}
.tile{flex:1 1 120px;background:#f7f9fc;border-radius:8px;padding:10px 12px}
.tile-label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.tile-value{white-space:nowrap;font-size:24px;font-weight:650;font-variant-numeric:tabular-nums;margin-top:2px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.wide{grid-column:1/-1}
svg.chart{display:block;width:100%;height:auto;margin-bottom:8px}
svg text{font-size:13px;fill:var(--ink)}
svg .tick{fill:var(--muted);font-size:12px}
svg .value{fill:var(--muted);font-variant-numeric:tabular-nums}
svg .gridline{stroke:var(--line);stroke-width:1}
svg .axis{stroke:#aab4c2;stroke-width:1}
details.table{overflow-x:auto}
details.table summary{cursor:pointer;color:var(--muted);font-size:13px;margin:4px 0}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:6px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:var(--muted);font-style:italic}
footer{padding:0 32px 24px;color:var(--muted);font-size:12px}
"""


def render_dashboard(
    results: Iterable[KpiLike],
    *,
    title: str = DEFAULT_TITLE,
    generated_at: datetime | str,
    source_note: str = "",
) -> str:
    """The whole page as a string: tiles for the one-row KPIs, then a card per KPI in input order."""
    results = list(results)
    by_name = {r.name: r for r in results}
    tile_results = [by_name[n] for n in TILE_KPIS if n in by_name and len(by_name[n].rows) <= 1]
    tiled = {r.name for r in tile_results}
    cards = [card_html(r) for r in results if r.name not in tiled]
    meta = f"Generated {_e(_stamp(generated_at))}"
    if source_note:
        meta += f" · {_e(source_note)}"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n"
        f'<body><header><h1>{_e(title)}</h1><p class="meta">{meta}</p></header>\n<main>'
        f'<div class="tile-groups">{"".join(tiles_html(r) for r in tile_results)}</div>\n'
        f'<div class="grid">{"".join(cards)}</div></main>\n'
        f"<footer>{len(results)} KPIs · self-contained page: no scripts, no network.</footer>"
        "</body></html>\n"
    )


def write_dashboard(
    results: Iterable[KpiLike],
    path: Path,
    *,
    title: str = DEFAULT_TITLE,
    generated_at: datetime | str | None = None,
    source_note: str = "",
) -> Path:
    """Render and write the page (parents created); returns the path written."""
    page = render_dashboard(
        results,
        title=title,
        generated_at=generated_at if generated_at is not None else datetime.now(UTC),
        source_note=source_note,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["CHARTS", "TILE_KPIS", "ChartSpec", "render_dashboard", "write_dashboard"]
