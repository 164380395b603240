"""LakeOut: a snapshot page reaches the lake as the firehose runner's rows do, a row the table cannot hold
set aside on its own (no S3, no Glue: an in-memory bucket and the table's columns as given)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from backfill.core import snapshot_row
from backfill.lake_out import LakeOut
from backfill.tombstones import refused_keys
from common.config import load_settings
from lake.schema import ROW_SCHEMA
from tests.fixtures.fake_s3 import FakeS3
from tests.unit.backfill.test_core import image

AT = datetime(2026, 11, 24, 3, 0, 1, tzinfo=UTC)


class Clients:
    def __init__(self) -> None:
        self.s3, self.glue, self.account_id = FakeS3({}), None, "000000000000"


class Columns:
    """The Glue table's columns after a user added `priority bigint` (UpdateTable)."""

    def for_rows(self, rows: object) -> pa.Schema:
        return ROW_SCHEMA.append(pa.field("priority", pa.int64()))


def test_a_row_the_table_cannot_hold_is_set_aside_alone_and_the_page_still_lands() -> None:
    """Firehose sets such a row aside on its own (format-conversion-failed); the backfill did the same only for
    the contract's columns, so one item with `priority: "high"` failed its page on every resume."""
    settings, clients = load_settings(env={}), Clients()
    out = LakeOut(clients, settings)  # type: ignore[arg-type]
    out._schema = Columns()  # type: ignore[assignment]
    good = snapshot_row(image("o-1", priority={"N": "2"}), AT, 0)
    bad = snapshot_row(image("o-2", priority={"S": "high"}), AT, 0)

    assert out.write_page(AT, 0, 0, [good, bad], []) == 1

    objects = clients.s3.objects
    (data,) = [k for k in objects if k.startswith(settings.lake_prefix)]
    assert pq.read_table(io.BytesIO(objects[data])).column("order_id").to_pylist() == ["o-1"]
    (failed,) = [k for k in objects if "backfill-failed/" in k]
    line = json.loads(objects[failed])
    assert line["reason"].startswith("priority: ") and line["row"]["order_id"] == "o-2"
    # The row keeps its exact values, and its key tells the tombstones that the item was in the table.
    assert line["row"]["unit_price"] == 19.99 and '"unit_price":19.99' in objects[failed].decode()
    assert refused_keys(clients, out.bucket, settings, AT) == {"o-2"}  # type: ignore[arg-type]
