"""Why the end-to-end rate stops where it does: the emulator's CPU per event, and where it goes.

MiniStack serves every API from one Python process (Hypercorn on one event loop), so it can use
one core at most: with E ms of its CPU per change event, no pipeline can pass 1000 / E events/s
on it, whatever the runners do. The pipeline figure measures E without a profiler; a short
extra run with MiniStack itself under cProfile (EMULATOR_PYTHON pointed at a wrapper) then
says which of its APIs and functions spend it. The summary is pure, for the tests.
"""

from __future__ import annotations

import contextlib
import os
import pstats
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
