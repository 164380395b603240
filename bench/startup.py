"""Figures 7 and 8: `make up` from nothing to runners healthy, and `make demo`, as a user runs them.

Both run the real Makefile targets (installed virtualenvs, so `install` is a no-op) on a state
directory of their own (STATE_DIR) and a free loopback port (PORT), then `make down`. `make demo`
writes the dashboard page to the clone's dashboard/ as it does for a user; a page already there
is put back afterwards. The targets are absolute (docs/decisions.md: the user waits on wall time):
`make up` <= 3 s, `make demo` <= 45 s for its default 2,000 orders.

A `make up` that misses its target is explained, not only measured: the CLI marks when each of its phases
ended (UP_TIMINGS, cli.py `Phases`), and the CPU seconds each process of the stack used by then are read
from /proc before `make down`; both come out as the profile "make up: where the time went".
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import steal_s
from bench.report import Figure, Target
from bench.stack import free_port
from common.config import ROOT
from common.state_dir import athena_pid_file, emulator_pid_file, runner_lock_file, runners_dir
from generator.defaults import DEFAULT_ORDERS

UP_TARGET = Target("value", "<=", 3.0)
DEMO_TARGET = Target("value", "<=", 45.0)


def make_env(state_dir: Path, port: int) -> dict[str, str]:
    """The user's environment, with the benchmark's own state dir and port (no AWS_* leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAKEFLAGS", "MFLAGS"))}
    env.update(STATE_DIR=str(state_dir), PORT=str(port), TARGET="embedded")
    return env


def timed_make(target: str, env: dict[str, str], timeout_s: float) -> tuple[float, int, str]:
    """(wall seconds, exit code, last lines of output) of `make <target>` in the clone."""
    started = time.perf_counter()
    done = subprocess.run(["make", "--no-print-directory", target], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
    return time.perf_counter() - started, done.returncode, tail


def one_run(target: str, timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{target}-") as tmp:
        state, port = Path(tmp) / "state", free_port()
        env = make_env(state, port)
        timings = Path(tmp) / "up-timings.json"
        if target == "up":
            env["UP_TIMINGS"] = str(timings)
        started_at, children, stolen = time.time(), _children_cpu_s(), steal_s()
        try:
            seconds, code, tail = timed_make(target, env, timeout_s)
            run: dict[str, Any] = {"seconds": round(seconds, 2), "exit_code": code, "tail": tail}
            if target == "up":
                run["steal_s"] = round(steal_s() - stolen, 2)
                run["phases"] = phases(_marks(timings), started_at, seconds)
                run["cpu_s"] = {"make and the CLI": round(_children_cpu_s() - children, 2),
                                **stack_cpu_s(state, port)}
                run["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            timed_make("down", env, 60)
    return run


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _marks(path: Path) -> list[tuple[str, float]]:
    try:
        return [(str(name), float(at)) for name, at in json.loads(path.read_text())["marks"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def phases(marks: list[tuple[str, float]], started_at: float, seconds: float) -> list[dict[str, Any]]:
    """Each phase of `make up` with its own seconds: from the previous mark (the first from the start of
    `make`: make itself, the interpreter and the CLI's imports), and what followed the last mark (exit)."""
    out, previous = [], started_at
    for name, at in marks:
        out.append({"phase": name, "seconds": round(at - previous, 2)})
        previous = at
    if marks:
        out.append({"phase": "exit", "seconds": round(started_at + seconds - previous, 2)})
    if out:
        out[0]["phase"] = f"make, Python and {out[0]['phase']}"
    return out


def stack_cpu_s(state: Path, port: int) -> dict[str, float]:
    """CPU seconds (user + system) each long-lived process of the stack used so far, from /proc (Linux)."""
    from analytics.athena_api import athena_port
    from common.config import load_settings

    files = {"emulator": emulator_pid_file(state, port),
             "Athena endpoint": athena_pid_file(state, athena_port(load_settings(env={}, port=port))),
             **{f"{name} runner": runner_lock_file(runners_dir(state), name) for name in ("firehose", "pipe")}}
    out = {}
    for what, path in files.items():
        try:
            pid = int(path.read_text().split()[0])
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[what] = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
        except (OSError, ValueError, IndexError):
            continue
    return out


def where_the_time_went(up: dict[str, Any]) -> str:
    """The profile shown when `make up` misses its target: its phases, then each process's CPU seconds."""
    lines = [f"make up took {up['seconds']:.2f} s (target {UP_TARGET}); load average "
             + " ".join(f"{x:g}" for x in up.get("load_avg", [])) + f", {os.cpu_count()} CPUs"]
    lines += [f"  {p['phase']:<45} {p['seconds']:6.2f} s" for p in up.get("phases", [])]
    cpu = up.get("cpu_s") or {}
    if cpu:
        lines.append(f"CPU seconds by then, {sum(cpu.values()):.2f} in all (the wall time cannot go below the "
                     "busiest chain, nor below their sum over the CPUs):")
        lines += [f"  {what:<45} {value:6.2f} s" for what, value in cpu.items()]
    if up.get("steal_s"):  # a busy host makes every process's work take longer, and counts it as theirs
        lines.append(f"CPU seconds the host took from this machine meanwhile (steal, all CPUs): {up['steal_s']:.2f} s")
    return "\n".join(lines)


def measure(timeout_s: float = 600, warm_up: bool = True) -> tuple[list[Figure], dict[str, Any], dict[str, str]]:
    """`warm_up`: one untimed `make up` first (cold bytecode and page caches); --quick skips it."""
    dashboard = ROOT / "dashboard"
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as keep:
        kept = Path(keep) / "dashboard"
        if dashboard.exists():
            shutil.copytree(dashboard, kept)
        try:
            if warm_up:
                one_run("up", timeout_s)  # the first start pays for cold caches (bytecode, page cache)
            up = one_run("up", timeout_s)
            demo = one_run("demo", timeout_s)
        finally:
            shutil.rmtree(dashboard, ignore_errors=True)
            if kept.exists():
                shutil.copytree(kept, dashboard)
    figures = [
        Figure("make_up", "make up, nothing to runners healthy", up["seconds"] if up["exit_code"] == 0 else None,
               "s", None, "", UP_TARGET, notes="a fresh state dir and port, installed; "
               + ("the second start of two" if warm_up else "the first start (--quick)")
               + ("" if up["exit_code"] == 0 else f"; FAILED: {up['tail']}")),
        Figure("make_demo", f"make demo ({DEFAULT_ORDERS:,} orders)", demo["seconds"] if demo["exit_code"] == 0
               else None, "s", None, "", DEMO_TARGET, notes="up + seed + drain + analyze + verify, installed"
               + ("" if demo["exit_code"] == 0 else f"; FAILED: {demo['tail']}")),
    ]
    return figures, {"up": up, "demo": demo}, explain(figures[0], up)


def explain(figure: Figure, up: dict[str, Any]) -> dict[str, str]:
    """The profile for `make up` when it missed its target or failed; nothing when it met it."""
    return {} if figure.met is True else {"make up: where the time went": where_the_time_went(up)}
