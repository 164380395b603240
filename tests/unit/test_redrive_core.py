"""Redrive's pure parts: where a replayed object goes, reading error objects, what counts as a pipe event."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime

import pytest

from bootstrap.spec import desired_resources
from common.config import Settings, load_settings
from runners.firehose_config import FirehoseConfig, parse_config
from runners.redrive import error_lines, raw_event, redriven_key, row_key


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
    with pytest.raises(ValueError, match="not a pipe event .not base64 JSON"):
        raw_event({"rawData": base64.b64encode(b"this is not json").decode()})


def test_a_converted_row_goes_to_its_event_day_under_a_firehose_name() -> None:
    config = config_of(load_settings(env={}, delivery_stream="fh"))
    key = row_key({"event_ts": "2026-01-05T23:59:59.000Z"}, config, datetime(2026, 3, 1, tzinfo=UTC))
    assert key.startswith("orders/year=2026/month=01/day=05/fh-1-2026-03-01-00-00-00-")
    assert key.endswith(".parquet")
