"""Where the time goes: cProfile around a call, reduced to the top of pstats as text."""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Callable
from typing import Any


def profile_call(fn: Callable[[], Any], top: int = 15, sort: str = "tottime") -> tuple[Any, str]:
    """Run `fn` under cProfile; return its result and the `top` lines of pstats sorted by `sort`."""
    profiler = cProfile.Profile()
    result = profiler.runcall(fn)
    return result, stats_text(profiler, top, sort)


def stats_text(profiler: cProfile.Profile, top: int = 15, sort: str = "tottime") -> str:
    return stats_text_of(pstats.Stats(profiler), top, sort)


def stats_text_of(stats: pstats.Stats, top: int = 15, sort: str = "tottime") -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    lines = out.getvalue().splitlines()
    # Drop pstats' preamble up to the column header; keep the totals line.
    total = next((line.strip() for line in lines if "function calls" in line), "")
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join([total, *[line.rstrip() for line in lines[start:] if line.strip()]])
