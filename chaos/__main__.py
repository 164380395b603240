"""`python -m chaos` (`make chaos`): the drill on a throwaway emulator of its own, then a report.

It never touches the stack `make up` started: it takes a free loopback port and a fresh state
directory under .state/chaos/, and stops everything it started, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from bootstrap import emulator
from chaos.drill import run_drill
from common.config import ROOT, load_settings
from common.console import Console
from common.errors import PipelineError
from common.process import free_port
from common.state_dir import chaos_run_dir, default_state_dir
from runners import service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000, help="orders to seed (default 2000)")
    parser.add_argument("--kills", type=int, default=6, help="runner SIGKILLs during the seed (default 6)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the data and the kill schedule")
    parser.add_argument("--keep", action="store_true", help="keep the drill's state directory")
    args = parser.parse_args(argv)
    if not 1 <= args.orders <= 1_000_000 or not 0 <= args.kills <= 1000:
        parser.error("--orders must be 1 to 1,000,000 and --kills 0 to 1,000")
    console = Console()
    # The second and the pid: two drills started in the same second get a state directory each.
    state_dir = chaos_run_dir(default_state_dir(ROOT), f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    settings = load_settings(port=free_port(), state_dir=state_dir, target="embedded",
                             buffer_interval_s=1, processor_interval_s=0)
    try:
        emulator.start(settings, persist=True)
        report = run_drill(settings, orders=args.orders, kills=args.kills, seed=args.seed, console=console)
    except PipelineError as exc:
        console.warn(f"error: {exc}")
        return 1
    finally:
        service.stop(settings)
        emulator.stop(settings)
        if not args.keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    for line in report.lines():
        (console.ok if report.ok else console.warn)(line)
    if report.reconciliation and not report.reconciliation.ok:
        for line in report.reconciliation.report_lines():
            console.warn(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
