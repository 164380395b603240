"""Shard discovery on a timer: Refreshing reloads after its interval, after expire(), and after a failed load."""

from __future__ import annotations

import pytest

from runners.refresh import Refreshing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reloads_only_when_the_interval_has_passed_or_it_was_expired() -> None:
    clock, answers = Clock(), iter(["a", "b", "c", "d"])
    value = Refreshing(lambda: next(answers), interval=10, clock=clock)
    assert [value.get(), value.get()] == ["a", "a"]
    clock.now += 9.9
    assert value.get() == "a"
    clock.now += 0.1
    assert value.get() == "b"
    value.expire()
    assert value.get() == "c"
    assert value.loads == 3


def test_a_failed_load_is_tried_again_on_the_next_get() -> None:
    calls: list[int] = []

    def load() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("throttled")
        return ["shardId-0"]

    value = Refreshing(load, interval=10, clock=Clock())
    with pytest.raises(RuntimeError):
        value.get()
    assert value.get() == ["shardId-0"] and len(calls) == 2
