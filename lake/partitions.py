"""The lake's Hive partitions: which partition an object key lies in (pure, no I/O).

One home for reading `<prefix>year=YYYY/month=MM/day=DD/<name>` keys, in two strictnesses, because
their readers need different things:
- `partition_values`: the values of the table's partition keys, as AWS's crawler reads them (any
  non-empty string, labels in the table's key order, hidden `_*` / `.*` names are not data).
  https://docs.aws.amazon.com/glue/latest/dg/crawler-s3-folder-table-partition.html
- `day_partition`: the lake's own day layout, exactly (four-digit year, two-digit month and day),
  as a `Partition` that compaction and the health page address a day by.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lake.schema import PARTITION_KEYS

_DAY = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})/([^/]+)$")


@dataclass(frozen=True)
class Partition:
    """One day of the lake, zero-padded as its folder names are."""

    year: str
    month: str
    day: str

    def prefix(self, lake_prefix: str) -> str:
        return f"{lake_prefix}year={self.year}/month={self.month}/day={self.day}/"

    def __str__(self) -> str:
        return f"{self.year}-{self.month}-{self.day}"


def partition_values(key: str, prefix: str, keys: Sequence[str] = PARTITION_KEYS) -> tuple[str, ...] | None:
    """The partition values of an object key, or None when it is not a data object of the table."""
    if not key.startswith(prefix) or key.endswith("/"):
        return None
    parts = key[len(prefix):].split("/")
    if len(parts) != len(keys) + 1 or parts[-1].startswith(("_", ".")):
        return None
    values = []
    for folder, name in zip(parts[:-1], keys, strict=True):
        label, sep, value = folder.partition("=")
        if not sep or label != name or not value:
            return None
        values.append(value)
    return tuple(values)


def day_partition(key: str, lake_prefix: str) -> Partition | None:
    """orders/year=2026/month=01/day=05/<name> -> that Partition (None outside the layout)."""
    if not key.startswith(lake_prefix):
        return None
    match = _DAY.fullmatch(key[len(lake_prefix):])
    return Partition(match.group(1), match.group(2), match.group(3)) if match else None
