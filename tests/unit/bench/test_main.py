"""The benchmark prints every figure with its target: CPU per event (project vs emulator), memory at the
largest size, scaling, and how `make up` / `make demo` are run. Pure: no timing is measured here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import main, startup
from bench.pipeline_rate import rate_missed, size_figures


def run(orders: int, emulator_mb: float, *, events: int = 1000, write_rate: float = 100.0,
        events_per_s: float = 95.0) -> dict[str, Any]:
    cpu = {"emulator": 2.0, "pipe runner": 0.3, "firehose runner": 0.2, "lambda workers": 0.1,
           "bench (generator, poller)": 0.4}
    rss = {"emulator": emulator_mb, "pipe runner": 80.0, "firehose runner": 120.0, "lambda workers": 60.0,
           "bench (generator, poller)": 200.0}
    return {"orders": orders, "events_in_lake": events, "write_rate": write_rate, "events_per_s": events_per_s,
            "processes": {n: {"cpu_s": cpu[n], "cores": 0.5, "peak_rss_mb": rss[n]} for n in cpu}}


def test_cpu_per_event_sums_the_project_s_processes_against_the_emulator() -> None:
    cpu, emulator_rss, runners_rss = size_figures(run(200_000, 1500.0))
    assert cpu.value == 1.0 and cpu.reference == 2.0  # (0.3 + 0.2 + 0.1 + 0.4) s and 2 s over 1,000 events
    assert cpu.ratio == 0.5 and cpu.met is True
    assert "emulator 2.00" in cpu.notes and "pipe runner 0.30" in cpu.notes
    assert runners_rss.value == 120.0 and runners_rss.met is None and "firehose runner 120 MB" in runners_rss.notes
    assert "generator (with the bench's per-write bookkeeping) 200 MB" in runners_rss.notes
    assert emulator_rss.value == 1500.0 and emulator_rss.met is True
    assert size_figures(run(200_000, 2100.0))[1].met is False


def test_the_emulator_memory_target_is_judged_at_200k_orders_only() -> None:
    small = size_figures(run(10_000, 5000.0))[1]
    assert small.target is None and small.met is None and "200,000" in small.notes


def test_the_end_to_end_rate_is_judged_against_the_generator_s_rate_in_the_same_run() -> None:
    assert rate_missed(run(1, 1.0, write_rate=100.0, events_per_s=95.0)) is False
    assert rate_missed(run(1, 1.0, write_rate=100.0, events_per_s=85.0)) is True


def test_startup_runs_make_with_its_own_state_dir_and_port_and_no_aws_settings(monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("MAKEFLAGS", "-j4")
    env = startup.make_env(Path("/tmp/x/state"), 4999)
    assert env["STATE_DIR"] == "/tmp/x/state" and env["PORT"] == "4999" and env["TARGET"] == "embedded"
    assert "AWS_ENDPOINT_URL" not in env and "MAKEFLAGS" not in env
    assert startup.UP_TARGET.met(2.9, None) is True and startup.UP_TARGET.met(3.1, None) is False
    assert startup.DEMO_TARGET.met(44.0, None) is True and startup.DEMO_TARGET.met(46.0, None) is False
    assert "startup" in main.SECTIONS
