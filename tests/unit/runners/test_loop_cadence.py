"""How often the runners read their streams: never more often per shard than AWS allows, backing off while
idle, at once again when there is data, and on time for a buffer that falls due. Everything runs on an
injected clock: the loop's waits move it on, nothing sleeps."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runners.firehose import KINESIS_READS_PER_SHARD_S, FirehoseRunner
from runners.firehose_config import FirehoseConfig
from runners.loop import IdleBackoff, idle_cap, pass_delay, run_forever, wait_for_next_pass
from runners.pipe import STREAMS_READS_PER_SHARD_S, PipeRunner
from runners.shards import ShardPacer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Stop:
    """run_forever's stop event on the fake clock: each wait moves time on; it is set at `until`."""

    def __init__(self, clock: Clock, until: float) -> None:
        self.clock, self.until = clock, until
        self.waits: list[float] = []
        self._set = False

    def is_set(self) -> bool:
        return self._set or self.clock.now >= self.until

    def set(self) -> None:
        self._set = True

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock.now += seconds
        return self.is_set()


def run_loop(runner: Any, tmp_path: Path, stop: Stop) -> None:
    """run_forever in a thread (it installs signal handlers only in the main thread)."""
    failures: list[BaseException] = []

    def work() -> None:
        try:
            run_forever(runner, tmp_path / "status", stop)  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert failures == []


def assert_within_limit(calls: list[float], per_second: float) -> None:
    """No two reads of a shard closer than 1/limit, so no second holds more than `per_second` reads."""
    gaps = [b - a for a, b in pairwise(calls)]
    assert min(gaps) >= 1 / per_second - 1e-9
    for i, start in enumerate(calls):
        assert sum(1 for t in calls[i:] if t < start + 1.0) <= per_second


# --- the pieces ---------------------------------------------------------------------------------


def test_the_pacer_says_how_long_until_every_shard_may_be_read_again() -> None:
    clock = Clock()
    pacer = ShardPacer(5.0, clock)
    assert pacer.ready_in() == 0.0  # nothing read yet
    pacer.polled("a")
    clock.now += 0.05
    pacer.polled("b")
    assert pacer.ready_in() == pytest.approx(0.2)  # b was read last: 0.2 s from now
    clock.now += 0.25
    assert pacer.ready_in() == 0.0


def test_the_idle_sleep_doubles_up_to_its_cap_after_three_idle_passes_and_resets_when_a_pass_finds_work() -> None:
    backoff = IdleBackoff(0.2, 1.0)
    assert [backoff.after(True) for _ in range(8)] == [0.2, 0.2, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert backoff.after(False) == 0.0
    assert [backoff.after(True) for _ in range(4)] == [0.2, 0.2, 0.2, 0.4]
    assert [IdleBackoff(0.0, 1.0).after(True) for _ in range(5)] == [0.0] * 5  # the tests' idle_sleep=0


def test_the_delay_never_reads_a_shard_too_soon_and_wakes_for_a_buffer_that_falls_due() -> None:
    runner = SimpleNamespace(ready_in=lambda: 0.15, due_in=lambda: 0.3)
    assert pass_delay(runner, 0.0) == 0.15  # found work: again as soon as the limit allows
    assert pass_delay(runner, 1.0) == 0.3  # idle: but a buffer is due before the idle sleep ends
    runner.due_in = lambda: None
    assert pass_delay(runner, 1.0) == 1.0
    runner.due_in = lambda: 0.05
    assert pass_delay(runner, 1.0) == 0.15  # due sooner, yet never faster than the read limit
    assert pass_delay(SimpleNamespace(), 0.4) == 0.4  # a runner without either hook: the idle sleep


# --- the pipe runner against DynamoDB Streams ---------------------------------------------------

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-12-01T00:00:00.000"
TARGET = "arn:aws:kinesis:us-east-1:123456789012:stream/cdc"


class Streams:
    """Two open shards; each GetRecords returns the records scheduled for it (by call time), costs 30 ms."""

    def __init__(self, clock: Clock, shards: list[str], busy_until: float, again_at: float) -> None:
        self.clock, self.shards = clock, shards
        self.busy_until, self.again_at = busy_until, again_at  # records flow until busy_until, and once at again_at
        self.calls: dict[str, list[float]] = defaultdict(list)
        self.seq = 0
        self.again_sent = False

    def describe_stream(self, StreamArn: str, **_: Any) -> dict:
        return {"StreamDescription": {"Shards": [
            {"ShardId": s, "SequenceNumberRange": {"StartingSequenceNumber": "1"}} for s in self.shards]}}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, **_: Any) -> dict:
        return {"ShardIterator": ShardId}

    def has_data(self) -> bool:
        if self.clock.now < self.busy_until:
            return True
        if self.clock.now >= self.again_at and not self.again_sent:
            self.again_sent = True
            return True
        return False

    def get_records(self, params: dict) -> dict:
        shard = params["ShardIterator"]
        self.calls[shard].append(self.clock.now)
        records = []
        if self.has_data():
            self.seq += 1
            records = [{"eventID": f"e{self.seq}", "eventName": "INSERT", "eventVersion": "1.1",
                        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                        "dynamodb": {"ApproximateCreationDateTime": self.clock.now,
                                     "Keys": {"order_id": {"S": f"o-{self.seq}"}},
                                     "NewImage": {"order_id": {"S": f"o-{self.seq}"}},
                                     "SequenceNumber": f"{self.seq:021d}", "SizeBytes": 10,
                                     "StreamViewType": "NEW_AND_OLD_IMAGES"}}]
        self.clock.now += 0.03
        return {"Records": records, "NextShardIterator": shard}


class Kinesis:
    def put_records(self, StreamName: str, Records: list[dict]) -> dict:
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": "s"} for _ in Records]}


class PipeClients:
    def __init__(self, streams: Streams) -> None:
        self.streams, self.kinesis = streams, Kinesis()

    def client(self, service: str) -> Streams:
        return self.streams

    def raw_json(self, service: str, operation: str, params: dict) -> dict:
        assert (service, operation) == ("dynamodbstreams", "GetRecords")
        return self.streams.get_records(params)


def test_the_pipe_reads_each_shard_at_most_4_times_a_second_and_keeps_that_base_rate_when_idle(
        tmp_path: Path) -> None:
    clock = Clock()
    streams = Streams(clock, ["shard-a", "shard-b"], busy_until=clock.now + 5, again_at=clock.now + 12)
    spec = {"Name": "p", "Source": STREAM, "Target": TARGET,
            "SourceParameters": {"DynamoDBStreamParameters": {"StartingPosition": "TRIM_HORIZON"}},
            "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}}}
    runner = PipeRunner(PipeClients(streams), spec, tmp_path / "pipe.json")  # type: ignore[arg-type]
    runner.pacer = ShardPacer(STREAMS_READS_PER_SHARD_S, clock)
    stop = Stop(clock, until=clock.now + 20)
    run_loop(runner, tmp_path, stop)

    assert STREAMS_READS_PER_SHARD_S == 4.0
    for shard in streams.shards:
        calls = streams.calls[shard]
        assert_within_limit(calls, 4)
        busy = [b - a for a, b in pairwise(calls) if b < streams.busy_until]
        # While records flow it reads again as soon as the limit allows (the pass itself reads two shards).
        assert max(busy) <= 0.25 + 2 * 0.03 + 1e-9
    reads = streams.calls["shard-a"]
    idle = [round(b - a, 2) for a, b in pairwise(reads) if a >= streams.busy_until]
    # Idle: three passes 0.2 s apart (0.25 after the last read of shard-b: the limit), then the sleep would
    # double, but AWS's pollers read an idle DynamoDB stream shard 4 times a second: it stays at 0.25 s (each
    # pass also spends 2 x 30 ms reading), so the record at again_at is read within about 0.3 s.
    assert idle[:7] == [0.28, 0.28, 0.28, 0.31, 0.31, 0.31, 0.31]
    assert max(idle) <= 0.31 + 1e-9
    after = [round(b - a, 2) for a, b in pairwise(reads) if a >= streams.again_at]
    assert after[:5] == [0.28, 0.28, 0.28, 0.28, 0.31]  # found the record: again within the limit, then idle
    assert runner.stats.records_out == streams.seq
    assert runner.stats.reads == {shard: len(streams.calls[shard]) for shard in streams.shards}  # for `make bench`


# --- the firehose runner against Kinesis ------------------------------------------------------------


class KinesisSource:
    """One shard; records put at scheduled times; each GetRecords costs 20 ms."""

    def __init__(self, clock: Clock, puts: list[float]) -> None:
        self.clock, self.puts = clock, sorted(puts)
        self.calls: list[float] = []
        self.seq = 0

    def list_shards(self, **_: Any) -> dict:
        return {"Shards": [{"ShardId": "shardId-000000000000"}]}

    def get_shard_iterator(self, **_: Any) -> dict:
        return {"ShardIterator": "it"}

    def get_records(self, params: dict) -> dict:
        self.calls.append(self.clock.now)
        records = []
        while self.puts and self.puts[0] <= self.clock.now:
            self.puts.pop(0)
            self.seq += 1
            records.append({"SequenceNumber": f"{self.seq:030d}", "PartitionKey": f"o-{self.seq}",
                            "Data": base64.b64encode(b'{"order_id": "o"}').decode(),
                            "ApproximateArrivalTimestamp": self.clock.now})
        self.clock.now += 0.02
        return {"Records": records, "NextShardIterator": "it", "MillisBehindLatest": 0}


class S3:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.written: list[float] = []

    def put_object(self, **_: Any) -> dict:
        self.written.append(self.clock.now)
        return {}


class Lambda:
    def invoke(self, FunctionName: str, Payload: bytes, **_: Any) -> dict:
        event = json.loads(Payload)
        answer = {"records": [{"recordId": r["recordId"], "result": "Ok", "data": r["data"]}
                              for r in event["records"]]}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


def firehose(tmp_path: Path, clock: Clock, source: KinesisSource, s3: S3, interval_s: float) -> FirehoseRunner:
    config = FirehoseConfig(
        delivery_stream="fh", source_stream="cdc", bucket="lake", prefix="orders/", error_prefix="errors/",
        buffer_bytes=64 * 1024 * 1024, buffer_interval_s=interval_s, parquet=False, gzip=False,
        append_delimiter=True, file_extension="", lambda_arn="arn:aws:lambda:us-east-1:1:function:t",
        lambda_retries=0, processor_bytes=1024 * 1024, processor_interval_s=0)
    clients = SimpleNamespace(kinesis=source, s3=s3, settings=SimpleNamespace(region="us-east-1"),
                              raw_json=lambda service, operation, params: source.get_records(params))
    return FirehoseRunner(clients, config, tmp_path / "firehose.json", lambda_client=Lambda(),  # type: ignore[arg-type]
                          sleep=lambda _: None, clock=clock)


def test_the_firehose_reads_the_shard_at_most_5_times_a_second_and_once_a_second_when_idle(tmp_path: Path) -> None:
    clock = Clock()
    start = clock.now
    source = KinesisSource(clock, puts=[start + i * 0.01 for i in range(400)])  # 4 s of records
    runner = firehose(tmp_path, clock, source, S3(clock), interval_s=60)
    run_loop(runner, tmp_path, Stop(clock, until=start + 15))

    assert KINESIS_READS_PER_SHARD_S == 5.0
    assert_within_limit(source.calls, 5)
    busy = [t for t in source.calls if t < start + 4]
    assert len(busy) >= 4 * 5 - 1  # at once again while records flow
    late = [round(b - a, 2) for a, b in zip(source.calls, source.calls[1:], strict=False) if a > start + 10]
    assert late and set(late) == {1.02}  # idle long enough: once a second (plus the 20 ms of the call)
    assert runner.stats.records_in == 400


def test_an_idle_firehose_wakes_when_its_buffer_falls_due_not_after_its_idle_sleep(tmp_path: Path) -> None:
    clock = Clock()
    start = clock.now
    source = KinesisSource(clock, puts=[start + 3.0])  # one record, after 3 s of backing off
    s3 = S3(clock)
    runner = firehose(tmp_path, clock, source, s3, interval_s=1.3)
    run_loop(runner, tmp_path, Stop(clock, until=start + 10))

    read_at = next(t for t in source.calls if t >= start + 3.0)
    assert len(s3.written) == 1
    # Its buffer opened when the record was read (+20 ms for the call) and is due 1.3 s later: it is written
    # then, not at the next idle wake-up (the loop was sleeping a second at a time).
    assert s3.written[0] == pytest.approx(read_at + 0.02 + 1.3, abs=0.03)
    assert_within_limit(source.calls, 5)


def test_a_busy_firehose_writes_each_buffer_when_its_interval_ends_not_at_the_next_read(tmp_path: Path) -> None:
    clock = Clock()
    start = clock.now
    source = KinesisSource(clock, puts=[start + i * 0.01 for i in range(400)])  # 4 s of records
    s3 = S3(clock)
    runner = firehose(tmp_path, clock, source, s3, interval_s=0.9)  # due between two reads 0.2 s apart
    run_loop(runner, tmp_path, Stop(clock, until=start + 8))

    assert runner.stats.records_out == 400 and len(s3.written) >= 4
    for written in s3.written:  # each 0.9 s after the read that opened its buffer, to the millisecond
        assert min(abs(written - 0.9 - read) for read in source.calls) < 1e-6
    assert_within_limit(source.calls, 5)  # the writes in between read nothing
    assert set(runner.stats.phase_s) == {"read", "invoke", "write"}  # for `make bench`


class SlowLambda(Lambda):
    """From its second call on, the function runs past the buffer's interval (the clock moves 2 s) and only
    answers once an object has been written, or after 10 s (then the write waited behind it)."""

    def __init__(self, clock: Clock, s3: S3) -> None:
        self.clock, self.s3, self.calls = clock, s3, 0
        self.written_before_answer: list[bool] = []

    def invoke(self, FunctionName: str, Payload: bytes, **kw: Any) -> dict:
        self.calls += 1
        if self.calls > 1:
            self.clock.now += 2.0
            self.written_before_answer.append(self.s3.event.wait(10))
        return super().invoke(FunctionName, Payload, **kw)


class SignallingS3(S3):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.event = threading.Event()

    def put_object(self, **kw: Any) -> dict:
        self.event.set()
        return super().put_object(**kw)


def test_a_buffer_that_falls_due_while_the_function_runs_is_written_then_not_after_the_invoke(
        tmp_path: Path) -> None:
    clock = Clock()
    start = clock.now
    source = KinesisSource(clock, puts=[start, start + 0.1])
    s3 = SignallingS3(clock)
    runner = firehose(tmp_path, clock, source, s3, interval_s=1.0)
    runner.lam = lam = SlowLambda(clock, s3)
    runner.run_once()  # reads the first record, invokes at once: its buffer opens
    clock.now = start + 0.2
    runner.run_once()  # reads the second; while its invoke runs the first buffer falls due
    assert lam.written_before_answer == [True]  # the first object did not wait for the invoke
    # the second record's buffer opened when it was read (0.2 s), so it too is due once the function answers
    assert len(s3.written) == 2 and runner.stats.records_out == 2
    runner.close()


class ReadWhileInvoking(Lambda):
    """The first invoke runs 0.5 s (on the fake clock) and answers once the runner has read the shard again,
    or after 10 s (then it did not read meanwhile)."""

    def __init__(self, clock: Clock, read: threading.Event) -> None:
        self.clock, self.read, self.calls = clock, read, 0
        self.read_meanwhile: list[bool] = []

    def invoke(self, FunctionName: str, Payload: bytes, **kw: Any) -> dict:
        self.calls += 1
        if self.calls == 1:
            self.read.clear()
            self.clock.now += 0.5
            self.read_meanwhile.append(self.read.wait(10))
        return super().invoke(FunctionName, Payload, **kw)


class SignallingSource(KinesisSource):
    def __init__(self, clock: Clock, puts: list[float]) -> None:
        super().__init__(clock, puts)
        self.event = threading.Event()

    def get_records(self, params: dict) -> dict:
        answer = super().get_records(params)
        self.event.set()
        return answer


def test_while_the_function_runs_the_shard_is_read_within_its_limit_and_those_records_wait_their_turn(
        tmp_path: Path) -> None:
    clock = Clock()
    start = clock.now
    source = SignallingSource(clock, puts=[start, start + 0.3])
    s3 = S3(clock)
    runner = firehose(tmp_path, clock, source, s3, interval_s=1.0)
    runner.lam = lam = ReadWhileInvoking(clock, source.event)
    runner.run_once()
    assert lam.read_meanwhile == [True] and len(source.calls) == 2
    assert source.calls[1] - source.calls[0] >= 1 / KINESIS_READS_PER_SHARD_S  # within the read limit
    assert runner.stats.records_in == 2 and [r.read_at for r in runner.processor] == [source.calls[1]]
    clock.now += 1.0
    runner.run_once()  # the second record's invoke; its buffer's interval counted from its read
    assert runner.stats.records_out == 2
    runner.close()


def test_the_first_records_start_pyarrow_s_one_off_warm_up_on_a_thread_once(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import runners.firehose as module

    warmed = threading.Event()
    calls: list[str] = []
    monkeypatch.setattr(module, "warm_up_arrow", lambda: (calls.append(threading.current_thread().name),
                                                          warmed.set()))
    clock = Clock()
    source = KinesisSource(clock, puts=[clock.now + 0.5, clock.now + 0.7])
    runner = firehose(tmp_path, clock, source, S3(clock), interval_s=60)
    runner.run_once()  # nothing yet: no warm-up (an idle stack never pays for it)
    assert runner._warm_up is None
    for _ in range(2):
        clock.now += 0.5
        runner.run_once()
    assert warmed.wait(10) and calls == ["firehose-warm-up"]  # once, on its own thread
    runner.close()


class Paced:
    """A runner for wait_for_next_pass alone: reads allowed in `ready` s, a buffer due in `due` s."""

    name = "fake"

    def __init__(self, clock: Clock, ready: float, due: float | None, fail: bool = False) -> None:
        self.clock, self.fail = clock, fail
        self.stats = SimpleNamespace(errors=0, last_error="")
        self.ready_at = clock.now + ready
        self.due_at = None if due is None else clock.now + due
        self.flushed: list[float] = []

    def ready_in(self) -> float:
        return max(self.ready_at - self.clock.now, 0.0)

    def due_in(self) -> float | None:
        return None if self.due_at is None else max(self.due_at - self.clock.now, 0.0)

    def flush_due(self) -> bool:
        self.flushed.append(self.clock.now)
        if self.fail:
            raise OSError("connection reset")
        self.due_at = None
        return True


def test_between_two_reads_the_loop_wakes_to_write_a_due_buffer_then_waits_out_the_read_limit() -> None:
    clock = Clock()
    start = clock.now
    runner = Paced(clock, ready=0.2, due=0.05)
    stop = Stop(clock, until=start + 10)
    wait_for_next_pass(runner, stop, 0.0)  # type: ignore[arg-type]
    assert runner.flushed == [pytest.approx(start + 0.05)]
    assert clock.now == pytest.approx(start + 0.2)  # the next pass still waits for the read limit
    clock = Clock()
    runner = Paced(clock, ready=0.2, due=0.5)
    wait_for_next_pass(runner, Stop(clock, until=clock.now + 10), 0.0)  # type: ignore[arg-type]
    assert runner.flushed == [] and clock.now == pytest.approx(1_000.2)  # due after the next read: that pass


def test_a_due_write_that_fails_between_reads_is_left_to_the_next_pass() -> None:
    clock = Clock()
    runner = Paced(clock, ready=0.2, due=0.05, fail=True)
    wait_for_next_pass(runner, Stop(clock, until=clock.now + 10), 0.0)  # type: ignore[arg-type]
    assert len(runner.flushed) == 1 and clock.now == pytest.approx(1_000.2)
    assert runner.stats.errors == 1 and runner.stats.last_error == "OSError: connection reset"  # `make status`


def test_the_idle_sleep_is_capped_at_aws_s_base_rate_for_the_stream() -> None:
    assert idle_cap(SimpleNamespace(idle_poll_s=lambda: 0.25), 1.0) == 0.25  # DynamoDB Streams: 4 a second
    assert idle_cap(SimpleNamespace(idle_poll_s=lambda: 1.0), 1.0) == 1.0  # Kinesis (Firehose): once a second
    assert idle_cap(SimpleNamespace(), 1.0) == 1.0


def test_the_bench_reports_the_busiest_shard_s_reads_per_second() -> None:
    from bench.pipeline_rate import reads_per_shard_s

    assert reads_per_shard_s({"a": 2}, {"a": 12, "b": 3}, 2.0) == 5.0
    assert reads_per_shard_s({}, {}, 2.0) is None  # a runner from before the count
