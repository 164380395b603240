"""Runner-served resources on the emulated targets: the request parameters, kept as a file.

The local runners read these files (common/state_dir.py names and writes them), so they run with
exactly the parameters the `aws` target sends to CreatePipe / CreateDeliveryStream / CreateCrawler
(docs/decisions.md section 1).

A delivery stream's file also carries what AWS would describe of it (DescribeDeliveryStream), under
DESCRIPTION, outside the request (the plan compares only the request):
- VersionId: "1" at creation, one more at each update of the configuration, as AWS counts it ("The
  version number of a Firehose stream is increased by a value of 1 after you update the configuration.
  It is reflected in the delivered Amazon S3 object name",
  https://docs.aws.amazon.com/firehose/latest/dev/basic-create.html). Tags alone are no update.
- where it starts reading: "Amazon Data Firehose starts reading data from the LATEST position of your
  Kinesis stream" (https://docs.aws.amazon.com/firehose/latest/dev/writing-with-kinesis-streams.html), as
  of its creation (AWS reports it as KinesisStreamSourceDescription.DeliveryStartTimestamp). Locally that
  position is recorded exactly, when the file is created: each shard's last sequence number then
  (StartingSequenceNumbers; null for a shard that held nothing), so the firehose runner, whenever it first
  starts, delivers everything written after the delivery stream was created and nothing before, and a
  restart before its first checkpoint skips nothing (runners/firehose.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bootstrap.resources.base import NoFacts, State
from bootstrap.spec import Resource
from common.aws import Clients
from common.state_dir import DESCRIPTION, read_spec, spec_file, write_spec

TIP_PAGES_MAX = 10_000  # a source written to without pause is cut here: any position read is a LATEST


def source_stream_name(request: dict[str, Any]) -> str:
    """The Kinesis stream a CreateDeliveryStream request reads: arn:...:stream/NAME -> NAME."""
    return request["KinesisStreamSourceConfiguration"]["KinesisStreamARN"].split("/", 1)[1]


def kinesis_tips(kinesis: Any, stream: str) -> dict[str, str | None]:
    """Each shard's last sequence number now (None: the shard holds no record): the stream's LATEST, exactly.

    A LATEST shard iterator names no position that could be kept, so each shard is read to its end.
    """
    tips: dict[str, str | None] = {}
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        page = kinesis.list_shards(**kwargs)
        for shard in page["Shards"]:
            tips[shard["ShardId"]] = _last_sequence_number(kinesis, stream, shard["ShardId"])
        if not page.get("NextToken"):
            return tips
        kwargs = {"NextToken": page["NextToken"]}


def _last_sequence_number(kinesis: Any, stream: str, shard: str) -> str | None:
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    last = None
    for _ in range(TIP_PAGES_MAX):
        page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        if page["Records"]:
            last = page["Records"][-1]["SequenceNumber"]
        iterator = page.get("NextShardIterator")
        if not iterator or (not page["Records"] and page.get("MillisBehindLatest", 0) == 0):
            break
    return last


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def created_description(clients: Clients, request: dict[str, Any]) -> dict[str, Any]:
    """What a new delivery stream's DescribeDeliveryStream would say, and where it starts reading."""
    now = _now()
    return {
        "VersionId": "1",
        "CreateTimestamp": now,
        "LastUpdateTimestamp": now,
        "Source": {"KinesisStreamSourceDescription": {
            "KinesisStreamARN": request["KinesisStreamSourceConfiguration"]["KinesisStreamARN"],
            "DeliveryStartTimestamp": now}},
        "StartingSequenceNumbers": kinesis_tips(clients.kinesis, source_stream_name(request)),
    }


def updated_description(clients: Clients, old: dict[str, Any] | None, before: dict[str, Any] | None,
                        request: dict[str, Any]) -> dict[str, Any]:
    """After an update: the version one more (not for tags alone); a new source starts at its LATEST.

    A file written before descriptions existed named its objects version 1 and knows no starting
    position: its runner keeps starting unknown shards at TRIM_HORIZON (duplicates, never a skip).
    """
    description = dict(old or {"VersionId": "1", "StartingSequenceNumbers": None})
    untagged = {k: v for k, v in (before or {}).items() if k != "Tags"}
    if untagged != {k: v for k, v in request.items() if k != "Tags"}:
        description["VersionId"] = str(int(description.get("VersionId", "1")) + 1)
        description["LastUpdateTimestamp"] = _now()
    source = description.get("Source", {}).get("KinesisStreamSourceDescription", {}).get("KinesisStreamARN")
    if source and source != request["KinesisStreamSourceConfiguration"]["KinesisStreamARN"]:
        fresh = created_description(clients, request)
        for key in ("Source", "StartingSequenceNumbers"):
            description[key] = fresh[key]
    return description


class RunnerSpec(NoFacts):
    def desired(self, res: Resource) -> State:
        return {"params": res.params}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        spec = read_spec(spec_file(clients.settings.runner_dir, res.kind))
        if spec is None:
            return None
        spec.pop(DESCRIPTION, None)
        return {"params": spec}

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        """A spec file has no tags; the emulated targets never destroy by tag."""
        return {}

    def create(self, clients: Clients, res: Resource) -> None:
        body = dict(res.params)
        if res.kind == "delivery_stream":
            body[DESCRIPTION] = created_description(clients, res.params)
        write_spec(spec_file(clients.settings.runner_dir, res.kind), body)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        body = dict(res.params)
        if res.kind == "delivery_stream":
            before = read_spec(spec_file(clients.settings.runner_dir, res.kind)) or {}
            old = before.pop(DESCRIPTION, None)
            body[DESCRIPTION] = updated_description(clients, old, before, res.params)
        write_spec(spec_file(clients.settings.runner_dir, res.kind), body)

    def delete(self, clients: Clients, res: Resource) -> None:
        spec_file(clients.settings.runner_dir, res.kind).unlink(missing_ok=True)
