"""`make seed`'s options: typed text to checked values, the first bad one named with its range."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from generator.defaults import DEFAULT_DAYS, DEFAULT_ORDERS, DEFAULT_SEED, DEFAULT_THREADS
from generator.seed import history_config
from generator.seed_options import SeedOptions, parse_seed_options

DEFAULTS = {"orders": str(DEFAULT_ORDERS), "rate": None, "duration": None, "seed": str(DEFAULT_SEED),
            "threads": str(DEFAULT_THREADS), "days": f"{DEFAULT_DAYS:g}"}


def test_the_defaults_as_typed_parse_to_the_defaults() -> None:
    assert parse_seed_options(**DEFAULTS) == SeedOptions(orders=DEFAULT_ORDERS, rate=None, duration=None,
                                                         seed=DEFAULT_SEED, threads=DEFAULT_THREADS, days=DEFAULT_DAYS)


def test_days_spread_the_orders_history_and_are_not_passed_on_themselves() -> None:
    options = parse_seed_options(**{**DEFAULTS, "orders": "100", "rate": "50", "duration": "2.5", "days": "0.5"})
    assert options.run_seed_kwargs() == {"orders": 100, "rate": 50.0, "duration": 2.5, "seed": DEFAULT_SEED,
                                         "threads": DEFAULT_THREADS, "config": history_config(0.5, 100)}
    assert options.run_seed_kwargs()["config"].mean_gap_ms == 0.5 * 86_400_000 / 100


@pytest.mark.parametrize(
    ("flag", "raw", "message"),
    [
        ("days", "0", "--days must be a number above 0 and at most 3,650 (days of history), got '0'"),
        ("days", "inf", "--days must be a number above 0 and at most 3,650 (days of history), got 'inf'"),
        ("days", "3651", "--days must be a number above 0 and at most 3,650 (days of history), got '3651'"),
        ("orders", "1000001", "--orders must be a whole number from 1 to 1,000,000, got '1000001'"),
        ("rate", "0", "--rate must be a number above 0 and at most 100,000 (orders per second; omit it for as "
                      "fast as possible), got '0'"),
        ("duration", "604801", "--duration must be a number above 0 and at most 604,800 (seconds; omit it to run "
                               "until every order is done), got '604801'"),
        ("seed", "4294967296", "--seed must be a whole number from 0 to 4,294,967,295, got '4294967296'"),
        ("threads", "0", "--threads must be a whole number from 1 to 16, got '0'"),
    ],
)
def test_a_bad_option_names_its_flag_and_range(flag: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_seed_options(**{**DEFAULTS, flag: raw})
    assert str(caught.value) == message


def test_the_first_bad_option_is_the_one_named() -> None:
    with pytest.raises(ConfigError, match=r"^--orders "):
        parse_seed_options(**{**DEFAULTS, "orders": "0", "days": "0"})
    with pytest.raises(ConfigError, match=r"^--threads "):
        parse_seed_options(**{**DEFAULTS, "threads": "17", "days": "0"})
