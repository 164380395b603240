"""`make seed`'s options, from the text typed to the arguments `run_seed` takes.

Each option is parsed as strictly as a setting (`common.config.parse_option`): a bad one is one line naming
its flag and range, before anything is written. `--days` is not a `run_seed` argument: it sets how far apart
the orders' simulated timestamps are (`history_config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config import parse_option
from generator.defaults import MAX_ORDERS
from generator.seed import history_config

MAX_RATE = 100_000  # orders per second: far above what the table takes, so only a typo is refused
MAX_DURATION_S = 7 * 86_400
MAX_SEED = 2**32 - 1
MAX_THREADS = 16
MAX_DAYS = 3650


@dataclass(frozen=True)
class SeedOptions:
    """The checked values; `rate` and `duration` None: as fast as possible, until every order is done."""

    orders: int
    rate: float | None
    duration: float | None
    seed: int
    threads: int
    days: float

    def run_seed_kwargs(self) -> dict[str, Any]:
        """`run_seed`'s keyword arguments (all but the console): what a plain `make seed` runs, as the bench does."""
        return {"orders": self.orders, "rate": self.rate, "duration": self.duration, "seed": self.seed,
                "threads": self.threads, "config": history_config(self.days, self.orders)}


def parse_seed_options(*, orders: str, rate: str | None, duration: str | None, seed: str, threads: str,
                       days: str) -> SeedOptions:
    """The options as typed; the first bad one (in this order) is a ConfigError naming it and its range."""
    return SeedOptions(
        orders=parse_option("--orders", orders, int, 1, MAX_ORDERS),
        rate=None if rate is None else parse_option(
            "--rate", rate, float, 0, MAX_RATE, above=True,
            unit="orders per second; omit it for as fast as possible"),
        duration=None if duration is None else parse_option(
            "--duration", duration, float, 0, MAX_DURATION_S, above=True,
            unit="seconds; omit it to run until every order is done"),
        seed=parse_option("--seed", seed, int, 0, MAX_SEED),
        threads=parse_option("--threads", threads, int, 1, MAX_THREADS),
        days=parse_option("--days", days, float, 0, MAX_DAYS, above=True, unit="days of history"),
    )
