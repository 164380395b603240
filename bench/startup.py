"""Figures 7 and 8: `make up` from nothing to runners healthy, and `make demo`, as a user runs them.

Both run the real Makefile targets (installed virtualenvs, so `install` is a no-op) on a state
directory of their own (STATE_DIR) and a free loopback port (PORT), then `make down`. `make demo`
writes the dashboard page to the clone's dashboard/ as it does for a user; a page already there
is put back afterwards. The targets are absolute (docs/decisions.md: the user waits on wall time):
`make up` <= 3 s, `make demo` <= 45 s for its default 2,000 orders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Figure, Target
from bench.stack import free_port
from common.config import ROOT
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
        env = make_env(Path(tmp) / "state", free_port())
        try:
            seconds, code, tail = timed_make(target, env, timeout_s)
        finally:
            timed_make("down", env, 60)
    return {"seconds": round(seconds, 2), "exit_code": code, "tail": tail}


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
    return figures, {"up": up, "demo": demo}, {}
