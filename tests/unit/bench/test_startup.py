"""bench/startup.py's pure parts: a `make up` that misses its target says where the time went."""

from __future__ import annotations

from bench import startup
from bench.report import Figure


def test_phases_are_the_seconds_between_marks_from_the_start_of_make_to_its_exit() -> None:
    marks = [("cli imported", 100.5), ("plan", 101.25), ("runners healthy", 102.0)]
    assert startup.phases(marks, started_at=100.0, seconds=2.5) == [
        {"phase": "make, Python and cli imported", "seconds": 0.5}, {"phase": "plan", "seconds": 0.75},
        {"phase": "runners healthy", "seconds": 0.75}, {"phase": "exit", "seconds": 0.5}]
    assert startup.phases([], started_at=100.0, seconds=2.5) == []  # an up that failed before its first mark


def test_a_missed_make_up_is_explained_by_its_phases_and_each_processs_cpu() -> None:
    up = {"seconds": 4.2, "exit_code": 0, "tail": "", "load_avg": [1.5, 1.0, 0.5],
          "phases": [{"phase": "make, Python and cli imported", "seconds": 0.6}, {"phase": "plan", "seconds": 1.4}],
          "cpu_s": {"make and the CLI": 2.0, "emulator": 1.5}}
    text = startup.where_the_time_went(up)
    assert text.splitlines()[0].startswith("make up took 4.20 s (target value <= 3); load average 1.5 1 0.5")
    assert any(line.split() == ["plan", "1.40", "s"] for line in text.splitlines())
    assert "CPU seconds by then, 3.50 in all" in text
    assert any(line.split() == ["emulator", "1.50", "s"] for line in text.splitlines())
    assert "steal" not in text  # none reported
    stolen = startup.where_the_time_went({**up, "steal_s": 0.8})
    assert stolen.splitlines()[-1].endswith("(steal, all CPUs): 0.80 s")

    missed = Figure("make_up", "make up", 4.2, "s", target=startup.UP_TARGET)
    assert startup.explain(missed, up) == {"make up: where the time went": text}
    failed = Figure("make_up", "make up", None, "s", target=startup.UP_TARGET)
    assert list(startup.explain(failed, {**up, "exit_code": 2})) == ["make up: where the time went"]
    met = Figure("make_up", "make up", 2.5, "s", target=startup.UP_TARGET)
    assert startup.explain(met, {**up, "seconds": 2.5}) == {}  # nothing to explain
