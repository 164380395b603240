"""Where freshness goes: each change's timeline from its lake row and the listing, the stages it adds up
to, and the generator run as `make seed` runs it (its command, its output, its CPU by pid). Pure: no
timing is measured or asserted here."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.pipeline_rate import (
    BENCH,
    BENCH_POLLER,
    GENERATOR,
    STAGES,
    Timeline,
    breakdown_table,
    end_to_end_s,
    freshness_breakdown,
    freshness_floor,
    growth_table,
    one_trip_note,
    parse_seeded,
    phase_ms,
    record_created,
    seed_command,
    size_figures,
    timelines,
)
from bench.procs import wait_usage
from common.config import load_settings, with_overrides

SECOND = datetime(2026, 12, 1, 23, 0, 5)  # a lake timestamp: naive UTC
EPOCH = SECOND.replace(tzinfo=UTC).timestamp()


def sequence(ms: int, counter: int = 7) -> str:
    """MiniStack's stream sequence number: the epoch ms in 20 digits, then a 10-digit counter."""
    return f"{ms:020d}{counter:010d}"


def test_the_stream_record_s_millisecond_comes_from_ministack_s_sequence_number_when_it_agrees() -> None:
    assert record_created(sequence(int(EPOCH * 1000) + 437), SECOND) == EPOCH + 0.437
    # stamped just across the second: still the same moment
    assert record_created(sequence(int(EPOCH * 1000) + 1002), SECOND) == EPOCH + 1.002
    # an AWS sequence number (not a time), or one from another second: the whole second it was stamped
    assert record_created("4" * 21, SECOND) == EPOCH
    assert record_created(sequence(int(EPOCH * 1000) - 5), SECOND) == EPOCH
    assert record_created(sequence(int(EPOCH * 1000) + 437), SECOND.replace(tzinfo=UTC)) == EPOCH + 0.437


def line(key: str, written: float | None, created: float, arrived: float, stored: float, listed: float) -> Timeline:
    return Timeline(key, written, created, arrived, stored, listed)


def test_freshness_counts_from_the_ack_when_known_and_from_the_stream_record_otherwise() -> None:
    assert line("a", 10.0, 10.01, 10.2, 11.5, 11.6).freshness == 1.5
    assert line("a", None, 10.01, 10.2, 11.51, 11.6).freshness == 1.5


def test_end_to_end_counts_from_the_first_change_not_from_the_seed_s_launch() -> None:
    # `make seed` launched at 100.0, its first write at 101.0 (its own clock starts there), the last object at 110.0
    full_speed = [line("a", None, 101.2, 101.4, 102.5, 102.6), line("b", None, 101.0, 101.3, 110.0, 110.1)]
    assert end_to_end_s(full_speed, 110.0, began=100.0) == 9.0
    paced = [line("a", 100.9, 101.0, 101.3, 110.0, 110.1)]  # the write's ack, when the bench has it
    assert end_to_end_s(paced, 110.0, began=100.0) == 110.0 - 100.9
    assert end_to_end_s([], 110.0, began=100.0) == 10.0


def test_a_short_run_says_what_one_trip_through_the_pipeline_caps_it_at() -> None:
    run = {"seed_s": 6.0, "freshness_s": {"p50": 1.5}}
    assert one_trip_note(run) == "; one trip through the pipeline (1.50s, the freshness p50) caps a 6.0s seed at 0.80x"
    assert one_trip_note({"seed_s": 6.0, "freshness_s": {}}) == ""


def test_the_breakdown_adds_stages_up_and_profiles_the_slowest_changes() -> None:
    fast = [line("o1", None, 0.0, 0.1, 1.2, 1.3) for _ in range(19)]  # pipe 0.1, firehose 1.1, listing 0.1
    slow = line("o2", None, 0.0, 0.3, 1.8, 2.0)  # pipe 0.3, firehose 1.5, listing 0.2
    result = freshness_breakdown([*fast, slow], buffer_interval_s=1.0)
    assert result["freshness"]["p50"] == 1.2 and result["freshness"]["count"] == 20
    assert result["tail_count"] == 1  # only the slow one is at or above the p95
    stages = result["stages"]
    pipe, firehose, listing = (stages[name] for name, _, _ in STAGES[1:])
    assert pipe["p50"] == 0.1 and pipe["tail_mean"] == 0.3
    assert firehose["p50"] == 1.1 and firehose["tail_mean"] == 1.5
    assert listing["p50"] == 0.1 and listing["tail_mean"] == 0.2
    assert stages[STAGES[0][0]] == {"p50": None, "p95": None, "tail_mean": None}  # no acks at full speed
    assert result["freshness_as_listed"]["p50"] == 1.3
    # per object, its oldest record's wait in the firehose past the 1 s interval: 0.1 and 0.5
    assert result["object_oldest_beyond_interval"] == {"p50": 0.3, "p95": 0.48, "objects": 2}


def test_timelines_match_rows_to_their_writes_only_when_the_generator_ran_here() -> None:
    ms = int(EPOCH * 1000) + 250
    row: dict[str, Any] = {"order_id": "o1", "event_type": "INSERT", "sequence_number": sequence(ms),
                           "updated_ts": datetime(2026, 1, 5, 10, 0, 0, 123000), "event_ts": SECOND,
                           "arrival_ts": datetime(2026, 12, 1, 23, 0, 5, 600000)}
    rows = [("k1", row), ("k1", {**row, "order_id": "o2"})]
    seen, stored = {"k1": EPOCH + 2.0}, {"k1": EPOCH + 1.9}
    timed, unmatched = timelines(rows, seen, stored, {("o1", "2026-01-05T10:00:00.123Z"): EPOCH + 0.2})
    assert unmatched == 1 and len(timed) == 1
    (t,) = timed
    assert t.written == EPOCH + 0.2 and t.created == EPOCH + 0.25 and t.arrived == EPOCH + 0.6
    assert (t.stored, t.listed) == (EPOCH + 1.9, EPOCH + 2.0)
    timed, unmatched = timelines(rows, seen, {}, None)  # an object not in `stored`: its listing time
    assert unmatched == 0 and [t.written for t in timed] == [None, None] and timed[0].stored == EPOCH + 2.0


def test_make_seed_s_summary_line_gives_writes_and_seconds() -> None:
    out = ("progress...\n✓ seeded 2,000 orders, 7,784 writes into 'bench_p0_orders' in 7.0s (296 orders/s, "
           "1,107 writes/s): 2,000 placed, 1,800 paid\n")
    assert parse_seeded(out) == (7784, 7.0)
    assert parse_seeded("! seeding stopped (interrupted) after 10 orders, 30 writes into 't' in 1.0s") is None


def test_the_generator_runs_as_make_seed_with_the_pipeline_s_own_table(tmp_path: Path) -> None:
    base = load_settings(env={}, target="embedded", port=4999, state_dir=tmp_path)
    settings = with_overrides(base, table_name="bench_p0_orders")
    argv, env = seed_command(settings, orders=3000, seed=31, threads=2)
    assert argv[:4] == [sys.executable, "-m", "cli", "seed"]
    assert argv[4:] == ["--orders", "3000", "--seed", "31", "--threads", "2"]
    assert env["TABLE_NAME"] == "bench_p0_orders" and env["PORT"] == "4999" and env["STATE_DIR"] == str(tmp_path)
    assert load_settings(env=env).table_name == "bench_p0_orders"  # the child rebuilds the same table name


def test_a_finished_child_s_cpu_is_read_by_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "sum(range(10**6))"])
    code, used = wait_usage(proc)
    assert code == 0 and proc.returncode == 0
    assert used.cpu_s > 0 and used.hwm_kb > 0


def run(processes: dict[str, float], *, breakdown: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"orders": 8000, "events_in_lake": 1000, "end_to_end_s": 2.0, "events_per_s": 500.0, "write_rate": 600.0,
            "freshness_s": {"p50": 1.0, "p95": 1.5, "p99": 1.75}, "objects": 4, "emulator_after": {"rss_mb": 300.0},
            "processes": {n: {"cpu_s": cpu, "cores": 0.5, "peak_rss_mb": 100.0} for n, cpu in processes.items()},
            **({"freshness_breakdown": breakdown} if breakdown else {})}


def test_at_full_speed_the_project_is_the_generator_process_and_the_runners_not_the_bench_s_poller() -> None:
    full = run({"emulator": 2.0, "pipe runner": 0.3, "firehose runner": 0.2, "lambda workers": 0.1,
                GENERATOR: 0.4, BENCH_POLLER: 0.9})
    cpu, _, runners_rss = size_figures(full)
    assert cpu.value == pytest.approx(1.0) and cpu.ratio == pytest.approx(0.5)  # not the poller's 0.9 s
    assert "generator (make seed, its own process) 100 MB" in runners_rss.notes
    assert "bench" not in runners_rss.notes


def test_tables_take_runs_with_different_processes_and_breakdowns() -> None:
    b = freshness_breakdown([line("o1", 0.0, 0.01, 0.1, 1.2, 1.3)], 1.0)
    full = run({"emulator": 2.0, GENERATOR: 0.4}, breakdown=b)
    paced = run({"emulator": 2.0, BENCH: 0.4})
    columns, rows = growth_table([("8,000 orders", full), ("paced", paced)])
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name[f"{GENERATOR}: CPU ms/event (cores)"] == ["0.40 (0.50)", "-"]
    assert by_name[f"{BENCH}: CPU ms/event (cores)"] == ["-", "0.40 (0.50)"]
    columns, rows = breakdown_table([("8,000 orders", full), ("paced", paced)])
    assert columns[1:] == ["8,000 orders"]  # a run without a breakdown has no column
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name[STAGES[0][0]] == ["0.01 / 0.01 (0.01)"]
    assert by_name["freshness: write -> object stored"] == ["1.20 / 1.20"]
    assert by_name["firehose ms: read, invoke per pass; write per object"] == ["- / - / -"]


def test_the_firehose_s_time_per_pass_and_per_object_between_two_statuses() -> None:
    before = {"passes": 10, "objects": 2, "phase_s": {"read": 0.5, "invoke": 1.0, "write": 0.2}}
    after = {"passes": 30, "objects": 6, "phase_s": {"read": 1.5, "invoke": 3.0, "write": 0.6}}
    assert phase_ms(before, after) == {"read_per_pass": 50.0, "invoke_per_pass": 100.0, "write_per_object": 100.0,
                                       "passes": 20}
    assert phase_ms({"passes": 0, "objects": 0, "phase_s": {}}, {"passes": 5, "objects": 0, "phase_s": {}}) == {
        "read_per_pass": None, "invoke_per_pass": None, "write_per_object": None, "passes": 5}


def test_aws_s_own_floor_grows_with_the_waits_between_reads() -> None:
    # Reads so frequent they cost nothing: a record waits what is left of its buffer's interval, uniformly.
    instant = freshness_floor(10_000, 10_000, 1.0)
    assert instant["p50"] == pytest.approx(0.5, abs=0.02) and instant["p95"] == pytest.approx(0.95, abs=0.02)
    runner_rates = freshness_floor(4, 5, 1.0)  # DynamoDB Streams 4 reads/s, Kinesis 5/s: above 1.2 s at p95
    firehose_rate = freshness_floor(4, 1, 1.0)  # Firehose's documented once a second
    assert instant["p95"] < runner_rates["p95"] < firehose_rate["p95"]
    assert runner_rates["p95"] > 1.2
    assert freshness_floor(4, 5, 1.0) == runner_rates  # a model with a fixed seed: the same every run
