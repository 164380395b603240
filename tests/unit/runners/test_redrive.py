"""Redrive's pure parts: where a replayed object goes, reading error objects, what counts as a pipe event."""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bootstrap.spec import desired_resources
from common.config import Settings, load_settings
from runners.error_output import json_line, processing_failed_record
from runners.firehose_config import FirehoseConfig, parse_config
from runners.redrive import Redriver, error_lines, raw_event, redriven_key, row_key
from tests.fixtures.fake_s3 import FakeS3


def config_of(settings: Settings) -> FirehoseConfig:
    """The firehose runner's config from the very CreateDeliveryStream request the bootstrap builds."""
    specs = {r.kind: r for r in desired_resources(settings, "000000000000")}
    return parse_config(specs["delivery_stream"].params)


def test_a_replayed_object_moves_out_of_every_output_listing() -> None:
    key = "errors/processing-failed/2026/01/02/03/s-1-2026-01-02-03-04-05-abc"
    moved = redriven_key(key, "errors/")
    assert moved == "errors/redriven/processing-failed/2026/01/02/03/s-1-2026-01-02-03-04-05-abc"
    for output in ("processing-failed/", "format-conversion-failed/", "pipe-dead-letter/"):
        assert not moved.startswith("errors/" + output)


def test_error_objects_are_read_plain_or_gzip_by_their_name() -> None:
    lines = b'{"rawData":"YQ=="}\n{"rawData":"Yg=="}\n'
    assert error_lines(lines, "errors/x/obj") == [{"rawData": "YQ=="}, {"rawData": "Yg=="}]
    assert error_lines(gzip.compress(lines), "errors/x/obj.gz") == error_lines(lines, "errors/x/obj")


def test_only_a_pipe_event_is_replayed_into_kinesis() -> None:
    event = {"eventName": "INSERT", "dynamodb": {"Keys": {"order_id": {"S": "o-1"}}}}
    assert raw_event({"rawData": base64.b64encode(json.dumps(event).encode()).decode()}) == event
    with pytest.raises(ValueError, match="not a pipe event"):
        raw_event({"rawData": base64.b64encode(b'{"a": 1}').decode()})
    with pytest.raises(ValueError, match=r"not a pipe event .not base64 JSON"):
        raw_event({"rawData": base64.b64encode(b"this is not json").decode()})


def test_a_converted_row_goes_to_its_event_day_under_a_firehose_name() -> None:
    config = config_of(load_settings(env={}, delivery_stream="fh"))
    key = row_key({"event_ts": "2026-01-05T23:59:59.000Z"}, config, datetime(2026, 3, 1, tzinfo=UTC))
    assert key.startswith("orders/year=2026/month=01/day=05/fh-1-2026-03-01-00-00-00-")
    updated = row_key({"event_ts": "2026-01-05T23:59:59.000Z"}, replace(config, version_id=3),
                      datetime(2026, 3, 1, tzinfo=UTC))
    assert updated.startswith("orders/year=2026/month=01/day=05/fh-3-2026-03-01-00-00-00-")  # the stream's version
    assert key.endswith(".parquet")


class FakeKinesis:
    def __init__(self) -> None:
        self.put: list[dict[str, Any]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.put += Records
        return {"Records": [{"SequenceNumber": "1"} for _ in Records]}


def test_processing_failed_and_active_partition_exceeded_records_in_awss_shape_are_replayed() -> None:
    """Error records with exactly AWS's processing-failed fields (no recordId, no sequenceNumber) replay."""
    settings = load_settings(env={})
    specs = {r.kind: r for r in desired_resources(settings, "000000000000")}
    config = parse_config(specs["delivery_stream"].params)
    events = [{"eventName": "INSERT", "dynamodb": {"Keys": {"order_id": {"S": f"o-{i}"}}}} for i in range(3)]
    docs = [processing_failed_record(attempts=1, arrival=datetime(2026, 1, 5, tzinfo=UTC), code=code, message="m",
                                     ended=datetime(2026, 1, 5, tzinfo=UTC), raw=json.dumps(event).encode(),
                                     lambda_arn="arn") for event, code in zip(events, ("a", "b", "c"), strict=True)]
    s3 = FakeS3({
        "errors/processing-failed/2026/01/05/00/p.gz": gzip.compress(json_line(docs[0]) + json_line(docs[1])),
        "errors/activePartitionExceeded/2026/01/05/00/a": json_line(docs[2]),
    })
    kinesis = FakeKinesis()
    no_queue = SimpleNamespace(get_queue_url=lambda **_: {"QueueUrl": ""})  # the dead-letter queue is empty
    clients = SimpleNamespace(s3=s3, kinesis=kinesis, sqs=no_queue, glue=None, settings=settings,
                              client=lambda _name: None)  # no conversion here, so the table is never read

    result = Redriver(clients, specs["pipe"].params, config).run()  # type: ignore[arg-type]

    assert (result.records["processing-failed"], result.records["activePartitionExceeded"], result.left) == (2, 1, [])
    assert sorted(json.loads(e["Data"])["dynamodb"]["Keys"]["order_id"]["S"] for e in kinesis.put) == [
        "o-0", "o-1", "o-2"]
    assert sorted(s3.objects) == ["errors/redriven/activePartitionExceeded/2026/01/05/00/a",
                                  "errors/redriven/processing-failed/2026/01/05/00/p.gz"]
