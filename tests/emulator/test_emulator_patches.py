"""The kinesis_reads and record_spill patches (docs/emulator-patches.md): reads answer as unpatched MiniStack's do.

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

record_spill keeps stream records in a file: its sequence behaves as a list under every list operation, and a
DynamoDB Streams script (every kind of change, paging, AT/AFTER_SEQUENCE_NUMBER, a persisted restart) answers
the same with the records in MiniStack's lists and in the file. The Kinesis script above runs spilled too.
Memory is measured by `make bench` (the emulator's RSS at the largest size).
"""

from __future__ import annotations

import copy
import json
import pickle
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bootstrap import emulator
from bootstrap.emulator_patches import boot
from bootstrap.emulator_patches.kinesis_reads import expired_iterators, expired_prefix, start_position
from bootstrap.emulator_patches.record_spill import RecordLog, SpilledRecords, sequence_index
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
    # Whether r6 (put in the same call) shares r7's arrival millisecond is timing, not the emulator: the note
    # that both emulators' runs compare keeps what was checked just above, not those records.
    what, _, has_next, caught_up = script.notes[-1]
    script.notes[-1] = (what, "the records that arrived at or after it", has_next, caught_up)
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


# --- record_spill: stream records kept in a file, read as MiniStack's lists read ----------------------


def test_spilled_records_behave_as_a_list_under_every_list_operation(tmp_path: Path) -> None:
    log = RecordLog(str(tmp_path), capacity=16)  # a small window: most reads unpickle from the file
    rng = random.Random(3)
    plain: list[dict] = []
    spilled = SpilledRecords(log)
    for step in range(4000):
        op = rng.random()
        record = {"step": step, "data": "x" * rng.randint(0, 40), "nested": {"n": [step, step / 7]}}
        if op < 0.45:
            plain.append(record)
            spilled.append(record)
        elif op < 0.55:
            n = rng.randint(0, len(plain))
            del plain[:n]
            del spilled[:n]
        elif op < 0.65 and plain:
            i = rng.randrange(-len(plain), len(plain))
            assert spilled[i] == plain[i]
        elif op < 0.8:
            a, b = rng.randint(-5, len(plain) + 5), rng.randint(-5, len(plain) + 5)
            assert spilled[a:b] == plain[a:b]
            assert spilled[a:b:2] == plain[a:b:2]
        elif op < 0.85 and plain:
            i = rng.randrange(len(plain))
            plain[i] = spilled[i] = record
        elif op < 0.9:
            i = rng.randint(0, len(plain))
            plain.insert(i, record)
            spilled.insert(i, record)
        elif op < 0.95 and plain:
            i = rng.randrange(len(plain))
            del plain[i]
            del spilled[i]
        else:
            assert list(spilled) == plain and len(spilled) == len(plain) and bool(spilled) == bool(plain)
    with pytest.raises(IndexError):
        spilled[len(plain)]
    saved = copy.deepcopy({"records": spilled})["records"]  # what MiniStack's get_state saves
    assert type(saved) is list and saved == plain and json.loads(json.dumps(saved)) == plain
    assert pickle.loads(pickle.dumps(spilled)) == plain
    log.close()


def test_a_record_read_back_from_the_file_is_the_record_as_appended(tmp_path: Path) -> None:
    log = RecordLog(str(tmp_path), capacity=1)  # the second append pushes the first out of the recent window
    item = {"order_id": {"S": "o1"}, "status": {"S": "PLACED"}}
    spilled = SpilledRecords(log, [{"NewImage": item}, {"other": 1}])
    item["status"] = {"S": "SHIPPED"}  # the table's item changes later: the record is a snapshot
    assert spilled[0] == {"NewImage": {"order_id": {"S": "o1"}, "status": {"S": "PLACED"}}}
    log.close()


def ministack_sequence_scan(records: list[dict], seq: str) -> int | None:
    """services/dynamodb_streams.py `_get_shard_iterator`'s lookup, verbatim."""
    return next((i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == seq), None)


def test_sequence_lookup_finds_what_ministack_s_scan_finds() -> None:
    rng = random.Random(5)
    for n in (0, 1, 2, 9, 200):
        stream = [{"dynamodb": {"SequenceNumber": r["SequenceNumber"]}} for r in shard_records(rng, n)]
        probes = [r["dynamodb"]["SequenceNumber"] for r in stream] + ["0", "9" * 30, "123", ""]
        for seq in probes:
            assert sequence_index(stream, seq) == ministack_sequence_scan(stream, seq), (n, seq)


def test_boot_applies_the_spill_after_kinesis_reads() -> None:
    assert boot.PATCHES.index("record_spill") > boot.PATCHES.index("kinesis_reads")


TABLE = "spill-proof"


class StreamScript:
    """DynamoDB Streams reads, each noted with records as (eventName, Keys, OldImage, NewImage) and sequence
    numbers as their index in the stream (they are clock-based, so they differ between two emulators)."""

    def __init__(self, settings: Settings) -> None:
        clients = Clients(settings)
        self.ddb, self.streams = clients.dynamodb, clients.client("dynamodbstreams")
        self.notes: list[tuple[Any, ...]] = []

    def arn(self) -> str:
        return self.ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]

    def iterator(self, kind: str, seq: str | None = None) -> str:
        extra = {"SequenceNumber": seq} if seq else {}
        return self.streams.get_shard_iterator(StreamArn=self.arn(), ShardId=self.shard(), ShardIteratorType=kind,
                                               **extra)["ShardIterator"]

    def shard(self) -> str:
        return self.streams.describe_stream(StreamArn=self.arn())["StreamDescription"]["Shards"][0]["ShardId"]

    def read_all(self, what: str, iterator: str, limit: int) -> list[dict]:
        got: list[dict] = []
        while True:
            page = self.streams.get_records(ShardIterator=iterator, Limit=limit)
            self.notes.append((what, [(r["eventName"], r["dynamodb"]["Keys"], r["dynamodb"].get("OldImage"),
                                       r["dynamodb"].get("NewImage")) for r in page["Records"]]))
            if not page["Records"]:
                return got
            got += page["Records"]
            iterator = page["NextShardIterator"]

    def refused(self, what: str, kind: str, seq: str) -> None:
        with pytest.raises(ClientError) as error:
            self.iterator(kind, seq)
        self.notes.append((what, error.value.response["Error"]["Code"]))


def stream_writes(ddb: Any, first: int) -> None:
    """Puts, a replacing put, an update, a delete and a batch: every kind of change a stream records."""
    for i in range(first, first + 4):
        ddb.put_item(TableName=TABLE, Item={"order_id": {"S": f"o{i}"}, "status": {"S": "PLACED"}, "n": {"N": str(i)}})
    ddb.put_item(TableName=TABLE, Item={"order_id": {"S": f"o{first}"}, "status": {"S": "PAID"}, "n": {"N": "1"}})
    ddb.update_item(TableName=TABLE, Key={"order_id": {"S": f"o{first + 1}"}}, UpdateExpression="SET #s = :s",
                    ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "SHIPPED"}})
    ddb.delete_item(TableName=TABLE, Key={"order_id": {"S": f"o{first + 2}"}})
    ddb.batch_write_item(RequestItems={TABLE: [
        {"PutRequest": {"Item": {"order_id": {"S": f"o{first + 3}"}, "status": {"S": "CANCELLED"}}}},
        {"PutRequest": {"Item": {"order_id": {"S": f"b{first}"}, "status": {"S": "PLACED"},
                                 "bin": {"B": b"\x00\xff"}}}},
    ]})


def stream_phase(script: StreamScript, what: str) -> None:
    records = script.read_all(f"{what}: trim horizon, 3 a page", script.iterator("TRIM_HORIZON"), 3)
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    middle = seqs[len(seqs) // 2]
    at = script.read_all(f"{what}: at the middle", script.iterator("AT_SEQUENCE_NUMBER", middle), 100)
    after = script.read_all(f"{what}: after the middle", script.iterator("AFTER_SEQUENCE_NUMBER", middle), 100)
    assert at == records[len(seqs) // 2:] and after == records[len(seqs) // 2 + 1:]  # AWS's AT and AFTER
    assert script.read_all(f"{what}: after the last", script.iterator("AFTER_SEQUENCE_NUMBER", seqs[-1]), 5) == []
    assert script.read_all(f"{what}: latest", script.iterator("LATEST"), 5) == []
    script.refused(f"{what}: at a sequence number never issued", "AT_SEQUENCE_NUMBER", "9" * 30)
    events = [n for n in script.notes if n[0] == f"{what}: trim horizon, 3 a page"]
    first_put = events[0][1][0]
    assert first_put[0] == "INSERT" and first_put[3]["status"] == {"S": "PLACED"}  # a snapshot, not today's item


def run_stream_script(settings: Settings) -> list[tuple[Any, ...]]:
    script = StreamScript(settings)
    script.ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    stream_writes(script.ddb, 0)
    stream_phase(script, "before")
    emulator.stop(settings)  # SIGTERM: saved with the stream_persistence patch (in both runs below)
    emulator.start(settings, persist=True)
    later = StreamScript(settings)
    stream_phase(later, "restored")
    stream_writes(later.ddb, 10)
    stream_phase(later, "after new writes")
    return script.notes + later.notes


@pytest.fixture()
def without_spill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """emulator.start runs boot.py with every patch but record_spill while this is active."""
    script = tmp_path / "boot-without-spill.py"
    script.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(Path(boot.__file__).parent)!r})\n"
        "import boot\n"
        "boot.PATCHES = tuple(p for p in boot.PATCHES if p != 'record_spill')\n"
        "boot.apply_patches()\n"
        "from ministack.app import main\n"
        "main()\n")
    wrapper = tmp_path / "ministack-without-spill.sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{emulator.emulator_python()}" "{script}"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("EMULATOR_PYTHON", str(wrapper))
    yield


def test_spilled_streams_answer_as_ministack_s_lists_and_as_aws_documents(
        tmp_path: Path, without_spill: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same DynamoDB Streams script, with stream records in MiniStack's lists and in the spill file.

    The unspilled run keeps stream_persistence (MiniStack alone loses the stream at a restart), so the
    one difference is where the records live. AWS's semantics checked on both: records in write order
    with their images as written (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html),
    AT_SEQUENCE_NUMBER at the record and AFTER_SEQUENCE_NUMBER after it, Limit caps a page
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html)."""
    settings = started(tmp_path / "lists")
    try:
        in_lists = run_stream_script(settings)
    finally:
        emulator.stop(settings)

    monkeypatch.delenv("EMULATOR_PYTHON")
    settings = started(tmp_path / "spilled")
    try:
        spilled = run_stream_script(settings)
    finally:
        emulator.stop(settings)

    assert spilled == in_lists
    assert sum(len(note[1]) for note in spilled if isinstance(note[1], list)) > 40  # the script read records
