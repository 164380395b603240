"""Firehose prefix expressions and object names."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from lake.keys import PartitionKeyError, evaluate_prefix, object_name

ARRIVAL = datetime(2026, 3, 7, 9, 5, 1, tzinfo=UTC)
PREFIX = ("orders/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/"
          "day=!{partitionKeyFromLambda:day}/")


def test_partition_keys_from_the_lambda_fill_the_prefix() -> None:
    keys = {"year": "2026", "month": "03", "day": "07"}
    assert evaluate_prefix(PREFIX, partition_keys=keys, arrival=ARRIVAL) == "orders/year=2026/month=03/day=07/"


def test_missing_partition_key_is_an_error_naming_the_key() -> None:
    with pytest.raises(PartitionKeyError, match="partition key 'day' missing"):
        evaluate_prefix(PREFIX, partition_keys={"year": "2026", "month": "03"}, arrival=ARRIVAL)


def test_error_prefix_uses_the_error_type_and_the_arrival_time_in_utc() -> None:
    template = "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/"
    got = evaluate_prefix(template, arrival=ARRIVAL, error_output_type="processing-failed")
    assert got == "errors/processing-failed/2026/03/07/09/"


@pytest.mark.parametrize("template", [
    "", "plain/text/", "!{partitionKeyFromLambda:year}", "!{partitionKeyFromLambda:year}!{partitionKeyFromLambda:day}",
    "a!{partitionKeyFromLambda:month}b/!{timestamp:yyyy-MM-dd}/!{unknown:kept}/!{partitionKeyFromLambda:day",
])
def test_each_expression_is_replaced_in_place_as_a_regex_pass_would(template: str) -> None:
    keys = {"year": "2026", "month": "03", "day": "07"}
    values = {**keys, "yyyy-MM-dd": "2026-03-07"}
    expected = re.sub(r"!\{(partitionKeyFromLambda|timestamp):([^}]+)\}", lambda m: values[m.group(2)], template)
    assert evaluate_prefix(template, partition_keys=keys, arrival=ARRIVAL) == expected


def test_the_first_failing_expression_is_the_one_reported() -> None:
    template = "!{partitionKeyFromLambda:year}/!{partitionKeyFromLambda:region}/!{firehose:random-string}/"
    with pytest.raises(PartitionKeyError, match="'region'"):
        evaluate_prefix(template, partition_keys={"year": "2026"}, arrival=ARRIVAL)


def test_object_names_follow_firehose() -> None:
    name = object_name("sales-orders-firehose", 1, ARRIVAL, ".parquet")
    assert re.fullmatch(r"sales-orders-firehose-1-2026-03-07-09-05-01-[0-9a-f-]{36}\.parquet", name)
    assert name != object_name("sales-orders-firehose", 1, ARRIVAL, ".parquet")
