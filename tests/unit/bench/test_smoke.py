"""The benchmark's pure helpers: record builders, ratio and percentile math, targets, the JSON
document, /proc parsing, flags. No timing is measured or asserted here."""

from __future__ import annotations

import base64
import json
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bench import biglake
from bench.emulator_profile import Func, ceiling, summarize
from bench.main import QUICK, parse_sizes, parser, resolve_sizes
from bench.pipeline_rate import growth_table, projected_rss_mb, row_key, write_key
from bench.procs import children_of, parse_meminfo_mb, parse_stat, parse_status_kb, parse_steal_ticks
from bench.records import epoch_seconds, firehose_events, kinesis_payloads, stream_records
from bench.report import Figure, Target, document, percentile, percentiles, ratio, rows_match, write
from bench.write_rate import make_seed_kwargs
from common.config import ROOT
from generator.lifecycle import Operation
from lake.schema import ROW_SCHEMA
from transform.handler import handler

ITEM = {"order_id": "o1", "status": "PLACED", "updated_ts": "2026-01-05T10:00:00.123Z", "quantity": 2}


def test_stream_records_follow_the_table_insert_modify_remove_and_skip_a_missing_delete() -> None:
    ops = [
        Operation("placed", "o1", "2026-01-05T10:00:00.123Z", ITEM),
        Operation("paid", "o1", "2026-01-05T10:00:01.500Z", {**ITEM, "status": "PAID"}),
        Operation("deleted", "o2", "2026-01-05T10:00:02.000Z", None),  # never existed: no record
        Operation("deleted", "o1", "2026-01-05T10:00:03.000Z", None),
    ]
    records = list(stream_records(ops, seed=1))
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert [r["dynamodb"]["SequenceNumber"] for r in records] == [str(10**20), str(10**20 + 1), str(10**20 + 2)]
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert "OldImage" not in insert and insert["NewImage"]["quantity"] == {"N": "2"}
    assert modify["OldImage"]["status"] == {"S": "PLACED"} and modify["NewImage"]["status"] == {"S": "PAID"}
    assert "NewImage" not in remove and remove["OldImage"]["status"] == {"S": "PAID"}
    assert insert["ApproximateCreationDateTime"] == 1767607200.0 == epoch_seconds("2026-01-05T10:00:00.999Z")
    assert len({r["eventID"] for r in records}) == 3


def test_firehose_events_batch_pipe_events_and_the_handler_accepts_them() -> None:
    payloads = kinesis_payloads(1203, seed=3)
    events = firehose_events(payloads, batch=500)
    assert [len(e["records"]) for e in events] == [500, 500, 203]
    first = json.loads(base64.b64decode(events[0]["records"][0]["data"]))
    assert first["eventName"] == "INSERT" and first["eventSourceARN"].endswith("/stream/2026-01-01T00:00:00.000")
    assert Counter(r["result"] for r in handler(events[2])["records"]) == {"Ok": 203}


def test_ratio_and_percentiles() -> None:
    assert ratio(3, 2) == 1.5
    assert ratio(None, 2) is None and ratio(1, 0) is None
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([], 50) is None
    assert percentiles([1.0, 2.0, 3.0]) == {"p50": 2.0, "p95": 2.9, "p99": pytest.approx(2.98), "max": 3.0,
                                            "count": 3}
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile(values, 101)


def test_targets_judge_the_ratio_or_the_value() -> None:
    transform = Figure("t", "transform", 30.0, "records/s", 100.0, "ref", Target("ratio", ">=", 0.5))
    assert transform.ratio == 0.3 and transform.met is False
    kpi = Figure("k", "kpi", 2.0, "s", 1.0, "local", Target("ratio", "<=", 3.0))
    assert kpi.met is True
    e2e = Figure("p", "pipeline", 2500.0, "events/s", 3000.0, "gen", Target("value", ">=", 2000))
    assert e2e.met is True and e2e.ratio == pytest.approx(0.8333, abs=1e-4)
    assert Figure("x", "x", None, "s", 1.0, "r", Target("value", "<=", 1)).met is None
    assert Figure("y", "y", 1.0, "s").met is None
    with pytest.raises(ValueError):
        Target("speed", ">=", 1)


def test_document_shape_round_trips_through_json(tmp_path: Path) -> None:
    figures = [Figure("t", "transform", 30.0, "records/s", 100.0, "ref", Target("ratio", ">=", 0.5), notes="n"),
               Figure("c", "compaction", 0.1, "s", 1.0, "before")]
    doc = document(figures, mode="quick", sizes={"orders": [1, 2]}, started_at="2026-01-05T10:00:00+00:00",
                   elapsed_s=12.34, sections={"transform": {"records": 5}}, profiles={"transform": "top"},
                   emulator={"final": {"rss_mb": 1.0}}, host={"cpus": 2})
    path = write(doc, tmp_path / "results" / "bench.json")
    back = json.loads(path.read_text())
    assert back["schema"] == "bench/1" and back["elapsed_s"] == 12.3 and back["machine"] == {"cpus": 2}
    assert back["summary"] == {"met": 0, "missed": 1, "untargeted": 1}
    assert back["figures"][0] == {
        "key": "t", "title": "transform", "value": 30.0, "unit": "records/s", "reference": 100.0,
        "reference_label": "ref", "target": {"on": "ratio", "op": ">=", "threshold": 0.5, "text": "ratio >= 0.5"},
        "notes": "n", "details": {}, "ratio": 0.3, "met": False,
    }


def test_rows_match_tolerates_approximate_numbers_only() -> None:
    assert rows_match([(1, "a", 500.0)], [(1, "a", 505.0)])
    assert not rows_match([(1, "a", 500.0)], [(1, "b", 500.0)])
    assert not rows_match([(1, "a", 500.0)], [(1, "a", 600.0)])
    assert not rows_match([(1,)], [(1,), (2,)])


def test_proc_parsing() -> None:
    status = "Name:\tpython\nVmHWM:\t  120000 kB\nVmRSS:\t   90000 kB\n"
    assert parse_status_kb(status, "VmRSS") == 90000 and parse_status_kb(status, "VmHWM") == 120000
    assert parse_status_kb("Name:\tzombie\n", "VmRSS") == 0
    stat = "4242 (python -m (x)) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 3 0 1 2 3"
    assert parse_stat(stat) == (17, 300.0)
    assert children_of({2: 1, 3: 2, 4: 1, 5: 9}, 1) == [2, 4, 3]
    assert parse_meminfo_mb("MemTotal:  2048000 kB\nMemAvailable:  1024000 kB\n") == 1000.0
    proc_stat = "cpu  4545462 11278 434990 1863640 31679 0 24465 58060 0 0\ncpu0 1 2 3 4 5 6 7 99 0 0\n"
    assert parse_steal_ticks(proc_stat) == 58060  # the all-CPU line, not cpu0's
    assert parse_steal_ticks("cpu  1 2 3 4\n") == 0  # an old kernel without the field


def test_emulator_memory_is_projected_from_the_previous_runs_growth_per_event() -> None:
    previous = {"orders": 1000, "events_in_lake": 4000, "emulator_before": {"rss_mb": 100.0},
                "emulator_after": {"rss_mb": 140.0}}  # 10 kB per event, 4 events per order
    assert projected_rss_mb(150.0, previous, 10_000) == pytest.approx(150.0 + 400.0)
    assert projected_rss_mb(150.0, None, 10_000) is None


def test_write_and_row_keys_match_one_change_event() -> None:
    put = {"PutRequest": {"Item": {"order_id": {"S": "o1"}, "updated_ts": {"S": "2026-01-05T10:00:00.120Z"}}}}
    delete = {"DeleteRequest": {"Key": {"order_id": {"S": "o1"}}}}
    assert write_key(put) == ("o1", "2026-01-05T10:00:00.120Z")
    assert write_key(delete) == ("o1", "REMOVE")
    modified = {"order_id": "o1", "event_type": "MODIFY", "updated_ts": datetime(2026, 1, 5, 10, 0, 0, 120000)}
    assert row_key(modified) == write_key(put)
    assert row_key({**modified, "event_type": "REMOVE"}) == write_key(delete)


def test_big_lake_day_has_lifecycles_in_the_row_schema(tmp_path: Path) -> None:
    lk = biglake.lookups(5)
    table = biglake.day_events(datetime(2026, 1, 5), 300, lk, seed=5, first_sequence=0)
    assert table.schema == ROW_SCHEMA
    rows = table.to_pylist()
    kinds = Counter(r["event_type"] for r in rows)
    assert kinds["INSERT"] == 300 and kinds["MODIFY"] > 300
    ts = [r["event_ts"] for r in rows]
    assert ts == sorted(ts)
    assert [r["sequence_number"] for r in rows[:2]] == ["100000000000000000000", "100000000000000000001"]
    removes = [r for r in rows if r["event_type"] == "REMOVE"]
    assert all(r["is_deleted"] and r["updated_ts"] < r["event_ts"] for r in removes)
    days = [(d.date().isoformat(), t.num_rows) for d, t in biglake.split_by_day(table)]
    assert days[0][0] == "2026-01-05" and sum(n for _, n in days) == table.num_rows
    keys = biglake.write_objects(tmp_path, datetime(2026, 1, 5, tzinfo=UTC), table.slice(0, 10), 3, random.Random(1))
    assert len(keys) == 3 and all(k.startswith("year=2026/month=01/day=05/sales-orders-firehose-1-") for k in keys)
    assert [pq.read_metadata(tmp_path / k).num_rows for k in keys] == [4, 3, 3]


def make_defaults() -> dict[str, str]:
    """The Makefile's `VAR ?= value` defaults."""
    text = (ROOT / "Makefile").read_text()
    return dict(re.findall(r"^(\w+) \?= *(\S*)", text, flags=re.M))


def test_the_generator_figure_runs_make_seed_exactly_as_a_user_does(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """The arguments the CLI gives run_seed for a plain `make seed` are the bench's, start included (none)."""
    import cli
    import generator.seed

    recipe = re.search(r"^seed:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe is not None
    assert recipe.group(1).startswith('$(CLI) seed --orders "$(ORDERS)" --seed "$(SEED)" --days "$(DAYS)" $(if $(RATE)')
    make = make_defaults()
    assert make["RATE"] == "" and make.get("DURATION", "") == ""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(generator.seed, "run_seed", lambda clients, settings, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(cli, "clients_for", lambda settings: object())
    for key in ("TARGET", "PORT", "PIPELINE_CONFIG", "STATE_DIR"):
        monkeypatch.delenv(key, raising=False)
    result = CliRunner().invoke(cli.app, ["seed", "--orders", make["ORDERS"], "--seed", make["SEED"],
                                          "--days", make["DAYS"]], env={"STATE_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    (passed,) = calls
    passed.pop("console")
    assert passed == make_seed_kwargs()
    assert parser().parse_args([]).threads == make_seed_kwargs()["threads"]
    assert resolve_sizes(parser().parse_args([])).gen_orders == QUICK.gen_orders == make_seed_kwargs()["orders"]


def test_flags_resolve_quick_sizes_and_reject_bad_orders() -> None:
    sizes = resolve_sizes(parser().parse_args(["--quick", "--orders", "100,200", "--fresh-orders", "0"]))
    assert sizes.orders == (100, 200) and sizes.fresh_orders == 0
    assert sizes.lake_events == QUICK.lake_events and sizes.transform_records == QUICK.transform_records
    assert parse_sizes("2000, 10000") == (2000, 10000)
    with pytest.raises(Exception, match="positive numbers"):
        parse_sizes("0,5")


def test_growth_table_has_one_column_per_run_and_costs_per_event() -> None:
    run = {"events_in_lake": 2000, "end_to_end_s": 2.0, "events_per_s": 1000.0, "write_rate": 1500.0,
           "freshness_s": {"p50": 1.0, "p95": 1.5, "p99": 1.75}, "objects": 4, "emulator_after": {"rss_mb": 300.0},
           "processes": {"emulator": {"cpu_s": 1.0, "cores": 0.5, "peak_rss_mb": 310.0}}}
    columns, rows = growth_table([("2,000 orders", run), ("paced", {**run, "events_in_lake": 4000})])
    assert columns == ["", "2,000 orders", "paced"]
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name["events/s end to end"] == ["1,000", "1,000"]
    assert by_name["freshness p50 / p95 / p99 (s)"] == ["1.00 / 1.50 / 1.75"] * 2
    assert by_name["emulator: CPU ms/event (cores)"] == ["0.50 (0.50)", "0.25 (0.50)"]
    assert by_name["emulator: peak RSS (MB)"] == ["310", "310"]


def test_emulator_profile_states_the_ceiling_and_ranks_services_and_functions() -> None:
    svc = "/venv/site-packages/ministack/services/"
    funcs = [
        Func(svc + "dynamodb.py", 1133, "handle_request", 100, 0.1, 6.0),
        Func(svc + "kinesis.py", 354, "handle_request", 50, 0.1, 2.0),
        Func(svc + "dynamodb.py", 808, "_validate_item", 2000, 1.5, 4.0),
        Func(svc + "kinesis.py", 669, "_put_records", 40, 0.4, 1.5),
        Func("/venv/site-packages/ministack/app.py", 3238, "app", 150, 0.3, 9.0),
    ]
    text = summarize(funcs, events=1000, emulator_ms=0.8, all_ms=1.6, target=2000, cores=2, top=1)
    lines = text.splitlines()
    assert "0.80 ms CPU per event -> at most 1,250 events/s" in lines[0]
    assert "would need 1.60 cores" in lines[0]
    assert "at most 1,250 events/s on 2 cores" in lines[1]
    assert lines[4].split() == ["dynamodb", "75.0%", "(6.00", "ms/event", "profiled)"]
    assert lines[5].split()[:2] == ["kinesis", "25.0%"]
    assert lines[-1].split()[-3:] == ["dynamodb._validate_item", "(line", "808)"]  # top=1: the costliest only
    assert ceiling(0.5, cores=2) == 4000
