"""Figures, ratios and percentiles, the results document, and its rendering. Pure except `write`.

A figure is a measured value next to a reference measured in the same run; its ratio is what a
target is judged on (noisy shared machines move both alike), except where a target is absolute
(seconds a user waits, megabytes of memory), which is then judged on the value itself.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

SCHEMA = "bench/1"


@dataclass(frozen=True)
class Target:
    """`on` the ratio or the value, `op` '>=' or '<=', `threshold`; e.g. ratio >= 0.5."""

    on: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.on not in ("ratio", "value") or self.op not in (">=", "<="):
            raise ValueError(f"bad target {self.on} {self.op} {self.threshold}")

    def met(self, value: float | None, ratio_: float | None) -> bool | None:
        measured = ratio_ if self.on == "ratio" else value
        if measured is None or math.isnan(measured):
            return None
        return measured >= self.threshold if self.op == ">=" else measured <= self.threshold

    def __str__(self) -> str:
        return f"{'ratio' if self.on == 'ratio' else 'value'} {self.op} {self.threshold:g}"


@dataclass
class Figure:
    key: str
    title: str
    value: float | None
    unit: str
    reference: float | None = None
    reference_label: str = ""
    target: Target | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.reference)

    @property
    def met(self) -> bool | None:
        return self.target.met(self.value, self.ratio) if self.target else None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["target"] = None if self.target is None else {**asdict(self.target), "text": str(self.target)}
        doc["ratio"] = self.ratio
        doc["met"] = self.met
        return doc


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, None when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def percentiles(values: Sequence[float], qs: Iterable[float] = (50, 95, 99)) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"p{q:g}": percentile(values, q) for q in qs}
    out["max"] = max(values) if values else None
    out["count"] = len(values)
    return out


def rows_match(a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]], rel: float = 0.02) -> bool:
    """Same rows, numbers equal within `rel` (approx_percentile may differ run to run), the rest exactly."""
    if len(a) != len(b):
        return False
    for row_a, row_b in zip(a, b, strict=True):
        if len(row_a) != len(row_b):
            return False
        for x, y in zip(row_a, row_b, strict=True):
            if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
                if not math.isclose(float(x), float(y), rel_tol=rel, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def rate(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
            "load_avg": [round(x, 2) for x in load]}


def document(figures: Sequence[Figure], *, mode: str, sizes: dict[str, Any], started_at: str, elapsed_s: float,
             sections: dict[str, Any], profiles: dict[str, str], emulator: dict[str, Any],
             host: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON written to results/bench.json (one figure list, plus details per section)."""
    return {
        "schema": SCHEMA,
        "mode": mode,
        "started_at": started_at,
        "elapsed_s": round(elapsed_s, 1),
        "machine": host if host is not None else machine(),
        "sizes": sizes,
        "figures": [f.to_dict() for f in figures],
        "summary": {"met": sum(f.met is True for f in figures), "missed": sum(f.met is False for f in figures),
                    "untargeted": sum(f.met is None for f in figures)},
        "emulator": emulator,
        "sections": sections,
        "profiles": profiles,
    }


def write(doc: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    tmp.replace(path)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def number(value: float | None, unit: str = "") -> str:
    """Human text for a figure: 12,345/s, 1.23 s, 0.51x."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def figures_table(figures: Sequence[Figure], title: str = "benchmark") -> Table:
    """figure | value | reference | ratio | target | verdict; the reference's meaning is in `legend`."""
    table = Table(title=title, show_lines=False)
    for col, justify in (("figure", "left"), ("value", "right"), ("reference", "right"), ("ratio", "right"),
                         ("target", "left"), ("", "center")):
        table.add_column(col, justify=justify, no_wrap=col != "figure")  # type: ignore[arg-type]
    marks = {True: "[green]met[/]", False: "[red]missed[/]", None: "[dim]-[/]"}
    for f in figures:
        table.add_row(f.title, number(f.value, f.unit), number(f.reference),
                      number(f.ratio) + ("x" if f.ratio is not None else ""), target_text(f.target), marks[f.met])
    return table


def target_text(target: Target | None) -> str:
    if target is None:
        return "-"
    return f"{target.op} {target.threshold:g}{'x' if target.on == 'ratio' else ''}"


def legend(figures: Sequence[Figure]) -> list[str]:
    """One line per figure: what its reference is, and its notes."""
    return [f"{f.title}: vs {f.reference_label or 'no reference'}" + (f"; {f.notes}" if f.notes else "")
            for f in figures]


def rows_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[number(v) if isinstance(v, float) else str(v) for v in row])
    return table
