"""The kinesis_reads patch (docs/emulator-patches.md): a Kinesis read answers exactly as unpatched MiniStack does.

The same script of reads runs against the patched emulator (`bootstrap.emulator.start`, through boot.py) and
against MiniStack unpatched (`python -m ministack`, the same start through an EMULATOR_PYTHON wrapper), each
on a free loopback port with persistence, before and after a restart that ages the stream's oldest records
past the retention period. Both must give the same records, iterators and MillisBehindLatest, and both must
follow AWS's documented GetShardIterator/GetRecords semantics
(https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html, API_GetRecords.html):
TRIM_HORIZON starts at the oldest record still held, LATEST just after the newest, AT_SEQUENCE_NUMBER at the
record, AFTER_SEQUENCE_NUMBER after it, AT_TIMESTAMP at the first record that arrived at or after the time,
Limit caps a page, and a record past the retention period is never returned. The patch's pure parts are
checked against MiniStack 1.5.33's own code (copied below) on random shards. Speed is measured by `make bench`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bootstrap import emulator
from bootstrap.emulator_patches import boot
from bootstrap.emulator_patches.kinesis_reads import expired_iterators, expired_prefix, start_position
from common.aws import Clients
from common.config import Settings, load_settings
from tests.conftest import free_port

STREAM = "patch-proof"
SHARD = "shardId-000000000000"
AGED = 3  # records aged past the retention period before the restart
HOUR = 3600


# --- the pure parts, against MiniStack 1.5.33's code ------------------------------------------------


def ministack_filter(records: list[dict], cutoff: float) -> list[dict]:
    """services/kinesis.py `_expire_records`, per shard."""
    return [r for r in records if r["ApproximateArrivalTimestamp"] >= cutoff]


def ministack_start_position(records: list[dict], it_type: str, seq: str, at_ts: Any) -> int | None:
    """services/kinesis.py `_start_position`, verbatim."""
    if it_type == "TRIM_HORIZON":
        return 0
    if it_type == "LATEST":
        return len(records)
    if it_type == "AT_SEQUENCE_NUMBER":
        return next((i for i, r in enumerate(records) if r["SequenceNumber"] >= seq), len(records))
    if it_type == "AFTER_SEQUENCE_NUMBER":
        return next((i for i, r in enumerate(records) if r["SequenceNumber"] > seq), len(records))
    if it_type == "AT_TIMESTAMP":
        ts_val = float(at_ts)
        return next((i for i, r in enumerate(records)
                     if r["ApproximateArrivalTimestamp"] >= ts_val), len(records))
    return None


def shard_records(rng: random.Random, n: int) -> list[dict]:
    """A shard as MiniStack appends it: sequence numbers (millisecond + counter) and arrival times never
    decrease, and several records often share an arrival millisecond."""
    records, ms = [], 1_764_547_200_000
    for counter in range(1, n + 1):
        ms += rng.choice((0, 0, 1, 7))
        records.append({"SequenceNumber": f"{ms:020d}{counter:010d}",
                        "ApproximateArrivalTimestamp": round(ms / 1000, 3)})
    return records


def test_start_positions_are_the_ones_ministack_s_scan_finds() -> None:
    rng = random.Random(7)
    for n in (0, 1, 2, 5, 50, 300):
        records = shard_records(rng, n)
        probes = [r["SequenceNumber"] for r in records] + ["0", "9" * 30, f"{1_764_547_200_003:020d}"]
        times = [r["ApproximateArrivalTimestamp"] for r in records] + [0.0, 1e12, 1_764_547_200.0035]
        for it_type in ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            for seq in probes:
                assert start_position(records, it_type, seq, None) == ministack_start_position(
                    records, it_type, seq, None), (n, it_type, seq)
        for at in times:
            assert start_position(records, "AT_TIMESTAMP", "", str(at)) == ministack_start_position(
                records, "AT_TIMESTAMP", "", str(at))
        assert start_position(records, "NOPE", "", None) is None


def test_trimming_the_expired_prefix_leaves_what_ministack_s_filter_leaves() -> None:
    rng = random.Random(11)
    for n in (0, 1, 3, 40, 300):
        records = shard_records(rng, n)
        for cutoff in [0.0, 1e12] + [r["ApproximateArrivalTimestamp"] + d for r in records[:20] for d in (0, 0.0005)]:
            kept = list(records)
            del kept[:expired_prefix(kept, cutoff)]
            assert kept == ministack_filter(records, cutoff)


def test_iterators_expire_as_ministack_expires_them_for_the_request_s_scope_only() -> None:
    mine, other = ("000000000000", "us-east-1"), ("111111111111", "us-east-1")
    store = {(*scope, f"t{i}"): {"created_at": 1000.0 + i} for i, scope in enumerate([mine, other, mine, other, mine])}
    now, ttl = 1000.0 + 3.5 + 300, 300
    expected = [k for k, s in store.items() if k[:2] == mine and now - s["created_at"] > ttl]  # MiniStack's rule
    assert expired_iterators(store, mine, now, ttl) == expected == [(*mine, "t0"), (*mine, "t2")]
    assert expired_iterators(store, other, now, ttl) == [(*other, "t1"), (*other, "t3")]
    assert expired_iterators(store, mine, 1000.0, ttl) == []


def test_boot_applies_the_patch() -> None:
    assert "kinesis_reads" in boot.PATCHES


# --- through the API, patched and unpatched ---------------------------------------------------------


def records_of(page: dict) -> list[str]:
    return [r["Data"].decode() for r in page["Records"]]


class Script:
    """The reads, each noted as (what, records returned, NextShardIterator given, MillisBehindLatest == 0)."""

    def __init__(self, settings: Settings) -> None:
        self.kinesis = Clients(settings).kinesis
        self.notes: list[tuple[Any, ...]] = []

    def put(self, *data: str) -> list[str]:
        answer = self.kinesis.put_records(StreamName=STREAM, Records=[
            {"Data": d.encode(), "PartitionKey": d} for d in data])
        assert answer["FailedRecordCount"] == 0
        return [r["SequenceNumber"] for r in answer["Records"]]

    def iterator(self, kind: str, **kwargs: Any) -> str:
        return self.kinesis.get_shard_iterator(StreamName=STREAM, ShardId=SHARD, ShardIteratorType=kind,
                                               **kwargs)["ShardIterator"]

    def read(self, what: str, iterator: str, limit: int = 10000) -> tuple[list[str], str]:
        page = self.kinesis.get_records(ShardIterator=iterator, Limit=limit)
        got = records_of(page)
        assert page["MillisBehindLatest"] >= 0
        # A short page reached the newest record: caught up, so MillisBehindLatest is 0. Otherwise it is the
        # age of the next record, which depends on timing: not compared.
        caught_up = page["MillisBehindLatest"] == 0 if len(got) < limit else None
        self.notes.append((what, got, "NextShardIterator" in page, caught_up))
        return got, page["NextShardIterator"]

    def read_all(self, what: str, iterator: str, limit: int) -> list[str]:
        got: list[str] = []
        while True:
            page, iterator = self.read(what, iterator, limit)
            if not page:
                return got
            got += page

    def arrivals(self) -> list[datetime]:
        page = self.kinesis.get_records(ShardIterator=self.iterator("TRIM_HORIZON"))
        return [r["ApproximateArrivalTimestamp"] for r in page["Records"]]


def before_restart(script: Script) -> dict[str, str]:
    kinesis = script.kinesis
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    kinesis.describe_stream(StreamName=STREAM)  # MiniStack makes it ACTIVE when first described
    data = [f"r{i}" for i in range(10)]
    seqs = dict(zip(data, script.put(*data[:6]) + script.put(*data[6:]), strict=True))

    assert script.read_all("trim horizon, 4 a page", script.iterator("TRIM_HORIZON"), 4) == data
    pages = [n[1] for n in script.notes if n[0] == "trim horizon, 4 a page"]
    assert pages == [data[:4], data[4:8], data[8:], []]  # Limit caps each page
    assert all(note[2] for note in script.notes)  # an open shard always gives a next iterator
    assert script.notes[-2][3] is script.notes[-1][3] is True  # caught up: MillisBehindLatest 0
    assert script.read("at r3", script.iterator("AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs["r3"]), 2)[0] \
        == ["r3", "r4"]
    assert script.read("after r3", script.iterator("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs["r3"]),
                       2)[0] == ["r4", "r5"]
    at_end, _ = script.read("after r9", script.iterator("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs["r9"]))
    assert at_end == []
    arrivals = script.arrivals()
    at = arrivals[7]
    expected = data[next(i for i, a in enumerate(arrivals) if a >= at):]
    assert script.read("at r7's arrival", script.iterator("AT_TIMESTAMP", Timestamp=at))[0] == expected
    latest = script.iterator("LATEST")
    assert script.read("latest", latest)[0] == []
    seqs["r10"], = script.put("r10")
    assert script.read("latest, after a put", script.iterator("AFTER_SEQUENCE_NUMBER",
                                                                  StartingSequenceNumber=seqs["r9"]))[0] == ["r10"]
    return seqs


def age_oldest_records(settings: Settings, count: int, hours: float) -> None:
    """Move the arrival of a stream's `count` oldest records `hours` back, in the state MiniStack persisted."""
    path = settings.state_dir / "emulator-data" / "kinesis.json"
    state = json.loads(path.read_text())
    streams = state["payload"]["streams"]["data"]
    (stream,) = [s for key, s in streams.items() if key.endswith(repr(STREAM))]
    for record in stream["shards"][SHARD]["records"][:count]:
        record["ApproximateArrivalTimestamp"] -= hours * HOUR
    path.write_text(json.dumps(state))


def after_restart(script: Script, seqs: dict[str, str]) -> None:
    held = [f"r{i}" for i in range(AGED, 11)]
    assert script.read_all("trim horizon after the trim", script.iterator("TRIM_HORIZON"), 3) == held
    assert script.read("at an expired record", script.iterator("AT_SEQUENCE_NUMBER",
                                                                StartingSequenceNumber=seqs["r1"]))[0] == held
    assert script.read("after r4", script.iterator("AFTER_SEQUENCE_NUMBER",
                                                   StartingSequenceNumber=seqs["r4"]), 1)[0] == ["r5"]
    assert script.read("at the epoch", script.iterator("AT_TIMESTAMP", Timestamp=datetime.fromtimestamp(0)))[0] \
        == held
    script.put("r11")
    assert script.read_all("trim horizon, 5 a page", script.iterator("TRIM_HORIZON"), 5) == [*held, "r11"]
    returned = {record for note in script.notes for record in note[1]}
    assert not returned & {"r0", "r1", "r2"}  # past the retention period: never returned


def run_script(settings: Settings) -> list[tuple[Any, ...]]:
    """Both phases on one emulator (started by the caller through `emulator.start`); the notes of each read."""
    script = Script(settings)
    seqs = before_restart(script)
    emulator.stop(settings)  # SIGTERM: MiniStack saves its state
    age_oldest_records(settings, AGED, hours=25)  # the retention period is 24 h
    emulator.start(settings, persist=True)
    later = Script(settings)
    after_restart(later, seqs)
    return script.notes + later.notes


@pytest.fixture()
def unpatched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """emulator.start runs `python -m ministack` (MiniStack's own entry point, no patch) while this is active."""
    wrapper = tmp_path / "ministack-unpatched.sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{emulator.emulator_python()}" -m ministack\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("EMULATOR_PYTHON", str(wrapper))
    yield


def started(state_dir: Path) -> Settings:
    settings = load_settings(env={}, target="embedded", port=free_port(), state_dir=state_dir)
    emulator.start(settings, persist=True)
    return settings


def test_patched_kinesis_reads_answer_as_unpatched_ministack_and_as_aws_documents(
        tmp_path: Path, unpatched: None, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = started(tmp_path / "unpatched")
    try:
        unpatched_notes = run_script(settings)
    finally:
        emulator.stop(settings)

    monkeypatch.delenv("EMULATOR_PYTHON")
    settings = started(tmp_path / "patched")
    try:
        patched_notes = run_script(settings)
    finally:
        emulator.stop(settings)

    assert patched_notes == unpatched_notes
