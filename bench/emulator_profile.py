"""Why the end-to-end rate stops where it does: the emulator's CPU per event, and where it goes.

MiniStack serves every API from one Python process (Hypercorn on one event loop), so it can use
one core at most: with E ms of its CPU per change event, no pipeline can pass 1000 / E events/s
on it, whatever the runners do. The pipeline figure measures E without a profiler; a short
extra run with MiniStack itself under cProfile (EMULATOR_PYTHON pointed at a wrapper) then
says which of its APIs and functions spend it. The summary is pure, for the tests.

Every pipeline emulator also runs with Python's garbage collector timed (`gc.callbacks`, through
the same kind of wrapper): a full collection walks the whole heap, which grows with every stream
record the emulator keeps, so the figure says how much of its CPU those walks take at each size.
"""

from __future__ import annotations

import contextlib
import json
import os
import pstats
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stack import own_emulator
from bootstrap.emulator import emulator_python
from common.config import Settings

SERVICE_ENTRY = "handle_request"  # each MiniStack service module's entry point


@dataclass(frozen=True)
class Func:
    """One profiled function: where it is, calls, own seconds and cumulative seconds."""

    path: str
    line: int
    name: str
    calls: int
    own_s: float
    cum_s: float

    @property
    def module(self) -> str:
        return self.path.rsplit("/", 1)[-1].removesuffix(".py")


def functions(stats: pstats.Stats) -> list[Func]:
    """MiniStack's own functions out of a pstats table."""
    return [Func(path, line, name, calls, own, cum)
            for (path, line, name), (_, calls, own, cum, _) in stats.stats.items()  # type: ignore[attr-defined]
            if "/ministack/" in path]


def ceiling(ms_per_event: float, cores: float = 1.0) -> float:
    """Events/s that `cores` can serve at `ms_per_event` CPU each."""
    return 1000.0 * cores / ms_per_event if ms_per_event > 0 else float("inf")


def summarize(funcs: Iterable[Func], events: int, emulator_ms: float, all_ms: float, target: float,
              cores: int, top: int = 12) -> str:
    """The ceiling arithmetic, the emulator's CPU per service, and its costliest functions."""
    funcs = list(funcs)
    services = sorted(((f.module, f.cum_s) for f in funcs if f.name == SERVICE_ENTRY and "/services/" in f.path),
                      key=lambda pair: -pair[1])
    served = sum(s for _, s in services) or 1e-9
    lines = [
        f"unprofiled: the emulator spent {emulator_ms:.2f} ms CPU per event -> at most "
        f"{ceiling(emulator_ms):,.0f} events/s on the one core a Python process can use "
        f"({target:,.0f}/s would need {target * emulator_ms / 1000:.2f} cores of it);",
        f"all processes together {all_ms:.2f} ms per event -> at most {ceiling(all_ms, cores):,.0f} events/s "
        f"on {cores} cores.",
        f"profiled run ({events:,} events; cProfile slows MiniStack, so read shares, not seconds):",
        "  share of request handling per service:",
        *[f"    {name:<18} {100 * s / served:5.1f}%  ({1000 * s / max(events, 1):.2f} ms/event profiled)"
          for name, s in services],
        "  costliest MiniStack functions (cumulative s, own s, calls):",
    ]
    inner = [f for f in funcs if "/services/" in f.path and f.name != SERVICE_ENTRY]
    for f in sorted(inner, key=lambda f: -f.cum_s)[:top]:
        lines.append(f"    {f.cum_s:8.2f} {f.own_s:8.2f} {f.calls:9,d}  {f.module}.{f.name} (line {f.line})")
    return "\n".join(lines)


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


# Runs in the emulator's interpreter: times each collection per generation, then runs boot.py as `python boot.py`
# would. The totals are rewritten (atomically) after each full collection and at most once a second otherwise.
GC_TIMER = """\
import gc, json, os, runpy, sys, time
out = sys.argv.pop(1)
totals = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "longest_full_s": 0.0}
state = {"start": 0.0, "written": 0.0}
def write():
    with open(out + ".tmp", "w") as fh:
        json.dump(totals, fh)
    os.replace(out + ".tmp", out)
def timer(phase, info):
    now = time.perf_counter()
    if phase == "start":
        state["start"] = now
        return
    gen, took = info["generation"], now - state["start"]
    totals["collections"][gen] += 1
    totals["seconds"][gen] += took
    if gen == 2:
        totals["longest_full_s"] = max(totals["longest_full_s"], took)
    if gen == 2 or now - state["written"] > 1.0:
        state["written"] = now
        write()
gc.callbacks.append(timer)
sys.argv = sys.argv[1:]  # as `python boot.py` sees them
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def read_gc(path: Path) -> dict[str, Any]:
    """The GC timer's totals so far (zeros before its first write)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "longest_full_s": 0.0}


def gc_between(before: dict[str, Any], after: dict[str, Any], emulator_cpu_s: float) -> dict[str, Any]:
    """Pure: the collections and seconds between two readings, and the full ones' share of the emulator's CPU."""
    full_s = after["seconds"][2] - before["seconds"][2]
    all_s = sum(after["seconds"]) - sum(before["seconds"])
    return {"full_collections": after["collections"][2] - before["collections"][2], "full_s": round(full_s, 2),
            "all_s": round(all_s, 2), "longest_full_s": round(after["longest_full_s"], 2),
            "full_share_of_cpu": round(full_s / emulator_cpu_s, 3) if emulator_cpu_s > 0 else None}


@contextlib.contextmanager
def gc_timed_emulator(emulator: Callable[[], contextlib.AbstractContextManager[tuple[Settings, int]]],
                      work: Path) -> Iterator[tuple[Settings, int, Path]]:
    """`emulator()` started with its garbage collector timed; yields (settings, pid, the timer's file)."""
    out = work / "emulator-gc.json"
    script = work / "emulator-gc-timer.py"
    script.write_text(GC_TIMER)
    wrapper = work / "emulator-gc.sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{emulator_python()}" "{script}" "{out}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with contextlib.ExitStack() as stack:
        with _environ("EMULATOR_PYTHON", str(wrapper)):  # only this start goes through the wrapper
            settings, pid = stack.enter_context(emulator())
        yield settings, pid, out


@contextlib.contextmanager
def profiled_emulator(work: Path) -> Iterator[tuple[Settings, int, Path]]:
    """A fresh emulator running under cProfile; the profile file is complete once the block ends."""
    out = work / "ministack.prof"
    wrapper = work / "ministack-cprofile.sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{emulator_python()}" -m cProfile -o "{out}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with contextlib.ExitStack() as stack:
        with _environ("EMULATOR_PYTHON", str(wrapper)):  # only this start goes through the wrapper
            settings, pid = stack.enter_context(own_emulator())
        yield settings, pid, out


def load(path: Path) -> list[Func]:
    return functions(pstats.Stats(str(path)))
