"""Timing on a noisy machine: run the subject and its reference alternately, keep the best of each.

Alternating puts both under the same neighbours; the minimum is the run least disturbed by them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


@dataclass
class Pair:
    """Seconds per run of the subject and of the reference, in run order."""

    subject_s: list[float] = field(default_factory=list)
    reference_s: list[float] = field(default_factory=list)

    @property
    def best_subject(self) -> float:
        return min(self.subject_s)

    @property
    def best_reference(self) -> float:
        return min(self.reference_s)


def alternate(subject: Callable[[], Any], reference: Callable[[], Any], repeats: int) -> Pair:
    """reference, subject, reference, subject... `repeats` times each (at least once)."""
    pair = Pair()
    for _ in range(max(repeats, 1)):
        pair.reference_s.append(timed(reference)[1])
        pair.subject_s.append(timed(subject)[1])
    return pair
