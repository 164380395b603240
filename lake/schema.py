"""The lake's row contract (docs/decisions.md section 4): one row per change event, as the transform emits it.

This schema is what Firehose's record-format conversion would take from the Glue table: the
firehose runner writes Parquet with it, and the crawler and analytics read files shaped by it.
Money stays exact (decimal), timestamps are UTC without zone (what Athena reads from Parquet).
"""

from __future__ import annotations

import pyarrow as pa

ITEM_FIELDS: list[pa.Field] = [
    pa.field("order_id", pa.string()),
    pa.field("customer_id", pa.string()),
    pa.field("customer_name", pa.string()),
    pa.field("customer_region", pa.string()),
    pa.field("product_id", pa.string()),
    pa.field("product_name", pa.string()),
    pa.field("category", pa.string()),
    pa.field("quantity", pa.int64()),
    pa.field("unit_price", pa.decimal128(12, 2)),
    pa.field("discount", pa.decimal128(5, 4)),
    pa.field("order_total", pa.decimal128(14, 2)),
    pa.field("currency", pa.string()),
    pa.field("status", pa.string()),
    pa.field("payment_method", pa.string()),
    pa.field("channel", pa.string()),
    pa.field("order_ts", pa.timestamp("ms")),
    pa.field("updated_ts", pa.timestamp("ms")),
]
EVENT_FIELDS: list[pa.Field] = [
    pa.field("event_type", pa.string()),
    pa.field("event_id", pa.string()),
    pa.field("sequence_number", pa.string()),
    pa.field("event_ts", pa.timestamp("ms")),
    pa.field("arrival_ts", pa.timestamp("ms")),
    pa.field("is_deleted", pa.bool_()),
]
ROW_SCHEMA = pa.schema(ITEM_FIELDS + EVENT_FIELDS)
# event_type of a row make backfill wrote from a table snapshot rather than from a stream change
# (docs/backfill.md): the current-state view ranks it below the stream's changes, and the pipeline's
# health figures (freshness, changes in per minute) leave it out because it is not a change.
SNAPSHOT_EVENT_TYPE = "SNAPSHOT"
PARTITION_KEYS = ("year", "month", "day")
