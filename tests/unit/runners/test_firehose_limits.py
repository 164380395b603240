"""The firehose runner against AWS's documented limits, with fakes (no server, no waits):

- where it starts reading: LATEST as of the delivery stream's creation (writing-with-kinesis-streams.html),
  recorded by the bootstrap in the runner's spec, so a restart before any checkpoint skips nothing and an
  unreadable checkpoint re-reads from TRIM_HORIZON (duplicates, never a skip);
- the Lambda processor's buffer: each invocation carries at most BufferSizeInMBs of records, the rest waits
  for BufferIntervalInSeconds (data-transformation.html), every payload under Lambda's 6 MB;
- the Lambda client waits as long as the function may run, and a timed-out invocation ends, after the
  retries, as processing-failed with Lambda.FunctionTimedOut;
- object names carry the delivery stream's version, one more per update (basic-create.html).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from bootstrap.resources.local import RunnerSpec
from bootstrap.spec import Resource, desired_resources
from common.aws import Clients
from common.config import Settings, load_settings
from common.state_dir import DESCRIPTION, spec_file
from runners.firehose import FirehoseRunner, invoke_event
from runners.firehose_config import LAMBDA_SYNC_PAYLOAD_MAX, MIB, parse_config

ACCOUNT = "000000000000"


class FakeKinesis:
    """A Kinesis stream in memory: shards of records, iterators as positions, GetRecords boto3- and wire-shaped."""

    def __init__(self, *shards: str) -> None:
        self.shards: dict[str, list[dict[str, Any]]] = {s: [] for s in shards}
        self.iterator_calls: list[dict[str, Any]] = []
        self._seq = 0

    def put(self, shard: str, data: bytes) -> str:
        self._seq += 1
        seq = f"{self._seq:056d}"
        self.shards[shard].append({"SequenceNumber": seq, "Data": data, "ApproximateArrivalTimestamp": 1767607091.0,
                                   "PartitionKey": "k"})
        return seq

    def list_shards(self, **_: Any) -> dict[str, Any]:
        return {"Shards": [{"ShardId": s} for s in self.shards]}

    def get_shard_iterator(self, StreamName: str, ShardId: str, ShardIteratorType: str,
                           StartingSequenceNumber: str = "") -> dict[str, str]:
        self.iterator_calls.append({"ShardId": ShardId, "ShardIteratorType": ShardIteratorType,
                                    **({"StartingSequenceNumber": StartingSequenceNumber}
                                       if StartingSequenceNumber else {})})
        records = self.shards[ShardId]
        if ShardIteratorType == "TRIM_HORIZON":
            position = 0
        elif ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            position = next((i for i, r in enumerate(records) if r["SequenceNumber"] > StartingSequenceNumber),
                            len(records))
        else:
            raise AssertionError(f"the runner asked for {ShardIteratorType}")
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int = 10_000) -> dict[str, Any]:
        shard, position = ShardIterator.split("|")
        records = self.shards[shard][int(position):int(position) + Limit]
        end = int(position) + len(records)
        return {"Records": records, "NextShardIterator": f"{shard}|{end}",
                "MillisBehindLatest": 0 if end == len(self.shards[shard]) else 1000}

    def raw_json(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        assert (service, operation) == ("kinesis", "GetRecords")
        page = self.get_records(params["ShardIterator"], params.get("Limit", 10_000))
        page["Records"] = [{**r, "Data": base64.b64encode(r["Data"]).decode()} for r in page["Records"]]
        return page


class FakeS3:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict:
        self.keys.append(Key)
        return {}


class FakeClients:
    """What the bootstrap's runner spec and the firehose runner ask of Clients, in memory."""

    def __init__(self, settings: Settings, kinesis: FakeKinesis) -> None:
        self.settings, self.kinesis, self.s3 = settings, kinesis, FakeS3()
        self.raw_json = kinesis.raw_json


class FakeLambda:
    """The transform's contract, answered Ok for every record; remembers each invocation's records."""

    def __init__(self) -> None:
        self.invocations: list[list[bytes]] = []
        self.payload_sizes: list[int] = []

    def invoke(self, FunctionName: str, Payload: bytes, **_: Any) -> dict[str, Any]:
        event = json.loads(Payload)
        self.payload_sizes.append(len(Payload))
        self.invocations.append([base64.b64decode(r["data"]) for r in event["records"]])
        keys = {"year": "2026", "month": "01", "day": "05"}
        answer = {"records": [{"recordId": r["recordId"], "result": "Ok", "data": r["data"],
                               "metadata": {"partitionKeys": keys}} for r in event["records"]]}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return load_settings(env={"OUTPUT_FORMAT": "jsonl", **env}, state_dir=tmp_path / "state")


def delivery_stream(settings: Settings) -> Resource:
    (res,) = [r for r in desired_resources(settings, ACCOUNT) if r.kind == "delivery_stream"]
    return res


def create_delivery_stream(clients: FakeClients) -> dict[str, Any]:
    """apply's step for the delivery stream on an emulated target: the runner spec file, as the runner reads it."""
    RunnerSpec().create(clients, delivery_stream(clients.settings))  # type: ignore[arg-type]
    return json.loads(spec_file(clients.settings.runner_dir, "delivery_stream").read_text())


def runner(clients: FakeClients, spec: dict[str, Any], lam: FakeLambda, clock: Clock | None = None,
           **changes: Any) -> FirehoseRunner:
    from dataclasses import replace

    config = replace(parse_config(spec), **changes)
    kwargs = {"clock": clock} if clock is not None else {}
    return FirehoseRunner(clients, config, clients.settings.runner_dir / "firehose.checkpoint.json",  # type: ignore[arg-type]
                          lambda_client=lam, **kwargs)


def delivered(lam: FakeLambda) -> list[bytes]:
    return [data for invocation in lam.invocations for data in invocation]


# -- where a new delivery stream starts reading -------------------------------------------------------------


def test_a_new_delivery_stream_delivers_what_was_written_after_it_was_created_and_nothing_before(
    tmp_path: Path,
) -> None:
    kinesis = FakeKinesis("shardId-0", "shardId-1")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    kinesis.put("shardId-0", b"before-1")
    last_before = kinesis.put("shardId-0", b"before-2")

    spec = create_delivery_stream(clients)
    assert spec[DESCRIPTION]["StartingSequenceNumbers"] == {"shardId-0": last_before, "shardId-1": None}
    kinesis.put("shardId-0", b"after-1")
    kinesis.put("shardId-1", b"after-2")
    lam = FakeLambda()
    firehose = runner(clients, spec, lam)
    firehose.run_once(force=True)

    assert sorted(delivered(lam)) == [b"after-1", b"after-2"]  # AWS never delivers what came before: LATEST
    assert {c["ShardId"]: c["ShardIteratorType"] for c in kinesis.iterator_calls} == {
        "shardId-0": "AFTER_SEQUENCE_NUMBER", "shardId-1": "TRIM_HORIZON"}  # an empty shard holds only later records


def test_a_restart_before_the_first_checkpoint_skips_nothing(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    kinesis.put("shardId-0", b"before")
    spec = create_delivery_stream(clients)
    kinesis.put("shardId-0", b"read, never delivered")
    first = FirehoseRunner(clients, parse_config(spec), tmp_path / "ckpt.json", lambda_client=FakeLambda())  # type: ignore[arg-type]
    first._read("shardId-0", 0.0)  # read into the processor's buffer, then the process dies: no checkpoint
    kinesis.put("shardId-0", b"written while it was down")

    lam = FakeLambda()
    FirehoseRunner(clients, parse_config(spec), tmp_path / "ckpt.json", lambda_client=lam).run_once(force=True)  # type: ignore[arg-type]

    assert delivered(lam) == [b"read, never delivered", b"written while it was down"]


def test_an_unreadable_checkpoint_rereads_every_shard_from_trim_horizon(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    kinesis.put("shardId-0", b"before")
    spec = create_delivery_stream(clients)
    kinesis.put("shardId-0", b"after")
    checkpoint = clients.settings.runner_dir / "firehose.checkpoint.json"
    checkpoint.write_bytes(b"\x00\x00 torn")

    lam = FakeLambda()
    runner(clients, spec, lam).run_once(force=True)

    assert delivered(lam) == [b"before", b"after"]  # duplicates at worst, never a skip
    assert kinesis.iterator_calls[-1]["ShardIteratorType"] == "TRIM_HORIZON"


def test_a_spec_without_starting_positions_reads_from_trim_horizon(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    kinesis.put("shardId-0", b"old")
    spec = delivery_stream(clients.settings).params  # a spec file written before positions were recorded
    lam = FakeLambda()
    runner(clients, spec, lam).run_once(force=True)
    assert delivered(lam) == [b"old"]


def test_a_shard_created_after_the_delivery_stream_is_read_from_its_start(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    kinesis.put("shardId-0", b"before")
    spec = create_delivery_stream(clients)
    kinesis.shards["shardId-1"] = []  # a reshard after creation
    kinesis.put("shardId-1", b"child")
    lam = FakeLambda()
    runner(clients, spec, lam).run_once(force=True)
    assert delivered(lam) == [b"child"]


# -- the Lambda processor's buffer ---------------------------------------------------------------------------


def test_each_invocation_carries_at_most_the_processors_buffer_size_and_the_rest_waits_for_its_interval(
    tmp_path: Path,
) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    spec = create_delivery_stream(clients)
    for i in range(30):
        kinesis.put("shardId-0", bytes([65 + i % 26]) * 100_000)  # 3,000,000 bytes in one read
    lam, clock = FakeLambda(), Clock()
    firehose = runner(clients, spec, lam, clock, processor_bytes=MIB, processor_interval_s=60.0)

    firehose.run_once()
    assert [len(i) for i in lam.invocations] == [10, 10]  # two buffers of 1 MiB; 10 records (0.95 MiB) wait
    clock.now += 59
    firehose.run_once()
    assert len(lam.invocations) == 2
    clock.now += 1  # BufferIntervalInSeconds after the oldest waiting record was read
    firehose.run_once()
    assert [len(i) for i in lam.invocations] == [10, 10, 10]
    assert all(sum(map(len, i)) <= MIB for i in lam.invocations)
    assert delivered(lam) == [r["Data"] for r in kinesis.shards["shardId-0"]]  # in order, each once


def test_an_invocation_stays_under_lambdas_6_mb_whatever_the_buffer_size(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    spec = create_delivery_stream(clients)
    for _ in range(10_000):
        kinesis.put("shardId-0", b"x" * 300)  # 3 MB of small records (one 3 MiB buffer): ~8 MB of invocation JSON
    lam = FakeLambda()
    runner(clients, spec, lam, processor_bytes=3 * MIB).run_once(force=True)
    assert len(delivered(lam)) == 10_000 and len(lam.invocations) > 1
    assert max(lam.payload_sizes) < LAMBDA_SYNC_PAYLOAD_MAX


def test_a_graceful_stop_invokes_what_is_buffered_in_buffer_sized_invocations(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    spec = create_delivery_stream(clients)
    for _ in range(25):
        kinesis.put("shardId-0", b"y" * 100_000)
    lam = FakeLambda()
    firehose = runner(clients, spec, lam, Clock(), processor_bytes=MIB, processor_interval_s=900.0)
    firehose._read("shardId-0", 0.0)
    firehose.close()
    assert [len(i) for i in lam.invocations] == [10, 10, 5]


def test_the_processor_buffer_comes_from_the_request(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, PROCESSOR_BUFFER_MB="0.2", PROCESSOR_INTERVAL_S="30")
    config = parse_config(delivery_stream(settings).params)
    assert (config.processor_bytes, config.processor_interval_s) == (int(0.2 * MIB), 30.0)
    assert invoke_event  # the event's shape is tested in test_firehose.py


# -- how long an invocation may take -------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["60", "300"])
def test_the_lambda_client_waits_as_long_as_the_function_may_run(tmp_path: Path, timeout: str) -> None:
    settings = settings_for(tmp_path, LAMBDA_TIMEOUT_S=timeout)
    firehose = FirehoseRunner(Clients(settings), parse_config(delivery_stream(settings).params), tmp_path / "c.json")
    config = firehose.lam.meta.config
    assert config.read_timeout > int(timeout)  # the function answers (or Lambda says it timed out) first
    assert config.read_timeout <= int(timeout) + 30
    assert config.retries["total_max_attempts"] == 1  # InvokeRetry stays the only retry loop


class TimingOutLambda:
    def __init__(self) -> None:
        self.calls = 0

    def invoke(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:4566/2015-03-31/functions/f/invocations")


def test_an_invocation_that_times_out_ends_as_processing_failed_with_function_timed_out(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    spec = create_delivery_stream(clients)
    kinesis.put("shardId-0", b"slow")
    lam, slept = TimingOutLambda(), []
    config = parse_config(spec)
    firehose = FirehoseRunner(clients, config, tmp_path / "c.json", lambda_client=lam,  # type: ignore[arg-type]
                              sleep=slept.append, draw=lambda: 1.0)
    firehose._read("shardId-0", 0.0)
    (outcome,) = firehose._invoke(firehose.processor)
    assert lam.calls == config.lambda_retries + 1 and len(slept) == config.lambda_retries
    assert (outcome.result, outcome.error_code, outcome.attempts) == (
        "ProcessingFailed", "Lambda.FunctionTimedOut", config.lambda_retries + 1)
    assert outcome.record.data == b"slow"


# -- object names carry the delivery stream's version -------------------------------------------------------


def test_object_names_carry_the_delivery_streams_version_one_more_per_update(tmp_path: Path) -> None:
    kinesis = FakeKinesis("shardId-0")
    clients = FakeClients(settings_for(tmp_path), kinesis)
    spec = create_delivery_stream(clients)
    assert spec[DESCRIPTION]["VersionId"] == "1"
    name = clients.settings.delivery_stream
    kinesis.put("shardId-0", b'{"a":1}')
    runner(clients, spec, FakeLambda()).run_once(force=True)
    assert clients.s3.keys and all(k.split("/")[-1].startswith(f"{name}-1-") for k in clients.s3.keys)

    handler, res = RunnerSpec(), delivery_stream(clients.settings)
    destination = {**res.params["ExtendedS3DestinationConfiguration"],
                   "BufferingHints": {"SizeInMBs": 128, "IntervalInSeconds": 5}}
    changed = Resource(res.kind, res.name, {**res.params, "ExtendedS3DestinationConfiguration": destination})
    handler.update(clients, changed, ["params"])  # type: ignore[arg-type]
    retagged = Resource(res.kind, res.name, {**changed.params, "Tags": [{"Key": "project", "Value": "renamed"}]})
    handler.update(clients, retagged, ["params"])  # type: ignore[arg-type]  # tags alone: no new version
    spec = json.loads(spec_file(clients.settings.runner_dir, "delivery_stream").read_text())
    assert spec[DESCRIPTION]["VersionId"] == "2"
    assert spec[DESCRIPTION]["StartingSequenceNumbers"] == {"shardId-0": None}  # an update does not move it
    assert handler.observe(clients, retagged) == {"params": retagged.params}  # type: ignore[arg-type]

    clients.s3.keys.clear()
    kinesis.put("shardId-0", b'{"a":2}')
    runner(clients, spec, FakeLambda()).run_once(force=True)
    assert clients.s3.keys and all(k.split("/")[-1].startswith(f"{name}-2-") for k in clients.s3.keys)
