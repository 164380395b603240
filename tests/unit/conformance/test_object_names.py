"""Object names and error-output folders as Firehose documents them (s3-object-name, s3-prefixes)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from lake.keys import evaluate_prefix, object_name
from tests.unit.conformance.docs import aws_doc

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def documented_suffix(stream: str, version: int, written: datetime, extension: str) -> re.Pattern[str]:
    """<name>-<version>-<year>-<month>-<day>-<hour>-<minute>-<second>-<uuid><file extension>, in UTC."""
    parts = aws_doc("s3_object_name")["suffix_parts"]
    assert parts == ["Firehose stream name", "Firehose stream version", "year", "month", "day", "hour",
                     "minute", "second", "uuid"]
    utc = written.astimezone(UTC)
    fields = [re.escape(stream), str(version), f"{utc:%Y}", f"{utc:%m}", f"{utc:%d}", f"{utc:%H}", f"{utc:%M}",
              f"{utc:%S}", UUID]
    return re.compile("^" + "-".join(fields) + re.escape(extension) + "$")


def test_object_names_follow_the_documented_suffix() -> None:
    written = datetime(2026, 1, 5, 23, 59, 7, tzinfo=timezone(timedelta(hours=-3)))  # 02:59:07 UTC next day
    version = aws_doc("s3_object_name")["first_version"]

    name = object_name("sales-orders-firehose", version, written, ".parquet")

    assert documented_suffix("sales-orders-firehose", version, written, ".parquet").match(name), name


def test_error_output_folders_are_documented_error_output_types() -> None:
    from runners import error_output

    documented = set(aws_doc("s3_object_name")["error_output_types"])
    documented.add(aws_doc("error_active_partition_exceeded")["error_output_type"])
    firehose_outputs = set(error_output.FIREHOSE_OUTPUT_TYPES)
    assert firehose_outputs <= documented
    for output in firehose_outputs:
        prefix = evaluate_prefix("errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/",
                                 arrival=datetime(2026, 1, 5, 9, tzinfo=UTC), error_output_type=output)
        assert prefix == f"errors/{output}/2026/01/05/09/"
