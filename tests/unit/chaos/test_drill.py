"""The chaos drill's pure parts: the kill schedule and the verdict."""

from __future__ import annotations

import random

from analytics.verify import Reconciliation
from chaos.drill import DrillReport, plan_kills
from runners.service import RUNNERS


def test_kills_are_spread_over_the_phases_in_time_order_within_the_window() -> None:
    plan = plan_kills(random.Random(3), count=7, phases=2, window_s=4.0)
    assert [len(p) for p in plan] == [4, 3]
    for phase in plan:
        assert [k.after_s for k in phase] == sorted(k.after_s for k in phase)
        assert all(0.2 <= k.after_s <= 4.0 and k.runner in RUNNERS for k in phase)


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert plan_kills(random.Random(9), 5, 2, 3.0) == plan_kills(random.Random(9), 5, 2, 3.0)


def test_a_lost_change_an_error_record_or_a_difference_fails_the_drill() -> None:
    agreed = Reconciliation(lake_orders=3, table_orders=3)
    assert DrillReport(orders=3, reconciliation=agreed).ok
    assert not DrillReport(orders=3, reconciliation=agreed, changes_lost=1).ok
    assert not DrillReport(orders=3, reconciliation=agreed, error_records=1).ok
    assert not DrillReport(orders=3, reconciliation=Reconciliation(3, 2, extra_in_lake=("o-1",))).ok
    assert not DrillReport(orders=3).ok  # never reconciled: not a pass
