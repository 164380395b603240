"""Firehose's S3 naming, as pure functions: custom prefix expressions and object names.

Prefix expressions: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html
Object names: https://docs.aws.amazon.com/firehose/latest/dev/basic-deliver.html#s3-object-name
  <evaluated prefix><DeliveryStreamName>-<DeliveryStreamVersion>-<yyyy-MM-dd-HH-mm-ss>-<random><ext>
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, datetime

from common.errors import TerminalError

_EXPRESSION = re.compile(r"!\{(firehose|timestamp|partitionKeyFromLambda|partitionKeyFromQuery):([^}]+)\}")
# Java DateTimeFormatter patterns Firehose users write, mapped to strftime.
_JAVA_TIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_JAVA_TOKEN = re.compile("|".join(sorted(_JAVA_TIME, key=len, reverse=True)))


class PartitionKeyError(TerminalError):
    """A record lacks a key the prefix needs: Firehose sends it to the error output."""


def evaluate_prefix(
    template: str,
    *,
    partition_keys: dict[str, str] | None = None,
    arrival: datetime,
    error_output_type: str | None = None,
) -> str:
    """Evaluate a custom prefix for one record (partition keys) or one object (timestamp)."""
    keys = partition_keys or {}
    return "".join(part if isinstance(part, str) else _value(*part, keys, arrival, error_output_type)
                   for part in _parts(template))


@functools.lru_cache(maxsize=64)
def _parts(template: str) -> tuple[str | tuple[str, str], ...]:
    """The template split once into its text and its (namespace, value) expressions, left to right: the
    firehose runner evaluates a prefix per record, and a regex pass each time was a tenth of its CPU."""
    parts: list[str | tuple[str, str]] = []
    at = 0
    for match in _EXPRESSION.finditer(template):
        parts += [template[at:match.start()], (match.group(1), match.group(2))]
        at = match.end()
    return tuple(part for part in [*parts, template[at:]] if part != "")


def _value(namespace: str, value: str, keys: dict[str, str], arrival: datetime, error_output_type: str | None) -> str:
    if namespace == "timestamp":
        return arrival.astimezone(UTC).strftime(_JAVA_TOKEN.sub(lambda m: _JAVA_TIME[m.group(0)], value))
    if namespace == "firehose":
        if value == "error-output-type" and error_output_type:
            return error_output_type
        if value == "random-string":
            return uuid.uuid4().hex[:11]
        raise PartitionKeyError(f"prefix expression !{{firehose:{value}}} has no value here")
    if value not in keys or keys[value] in ("", None):
        raise PartitionKeyError(f"partition key {value!r} missing from the record's metadata.partitionKeys")
    return str(keys[value])


def object_name(delivery_stream: str, version: int, written: datetime, extension: str = "") -> str:
    """Firehose's object name suffix: stream, version, UTC time to the second, a random id."""
    stamp = written.astimezone(UTC).strftime("%Y-%m-%d-%H-%M-%S")
    return f"{delivery_stream}-{version}-{stamp}-{uuid.uuid4()}{extension}"
