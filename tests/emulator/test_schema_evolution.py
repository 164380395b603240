"""Schema changes travel as on AWS: the firehose runner converts with the Glue table's current columns.

Firehose's record-format conversion reads the Glue table (VersionId LATEST): attributes the table does not
declare are dropped, a column a user adds with UpdateTable appears in the next objects. `make verify` names
the DynamoDB attributes the table does not hold instead of calling the lake equal, and compares the columns
a user added. https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from analytics.engine import open_engine
from analytics.verify import AttributeDiff, reconcile
from bootstrap.plan import apply, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.state_dir import spec_file
from lake.glue_schema import TableSchema, table_columns, with_columns
from runners.crawler import crawl
from runners.firehose import FirehoseRunner
from runners.firehose_config import parse_config
from runners.pipe import PipeRunner
from tests.fixtures.lake import drop_database, empty_bucket
from tests.fixtures.stack import named_stack

BUCKET = "se-lake"
TABLE = "se_orders"
ITEM = {
    "order_id": {"S": "o-1"}, "customer_id": {"S": "c1"}, "customer_name": {"S": "Ann"},
    "customer_region": {"S": "EU-WEST"}, "product_id": {"S": "p1"}, "product_name": {"S": "Book"},
    "category": {"S": "Books"}, "quantity": {"N": "2"}, "unit_price": {"N": "9.99"}, "discount": {"N": "0.1"},
    "order_total": {"N": "17.98"}, "currency": {"S": "USD"}, "status": {"S": "PLACED"},
    "payment_method": {"S": "card"}, "channel": {"S": "web"},
    "order_ts": {"S": "2026-11-26T10:00:00.000Z"}, "updated_ts": {"S": "2026-11-26T10:00:00.000Z"},
}
# What a producer adds beyond the contract: a coupon code, an address map, a tag set.
EXTRAS = {"coupon_code": {"S": "SAVE10"}, "address": {"M": {"city": {"S": "Lyon"}, "zip": {"S": "69001"}}},
          "tags": {"SS": ["gift", "vip"]}}


@pytest.fixture(scope="module")
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = named_stack(emulator_settings, "se", tmp_path_factory.mktemp("schema-evolution-state"),
                    buffer_interval_s=0, processor_interval_s=0)
    assert (s.table_name, s.lake_bucket) == (TABLE, BUCKET)  # the names this module's helpers use
    clients = Clients(s)
    apply(clients, build_plan(clients, s), Console(capture=True))  # declares the table Firehose's conversion reads
    yield s
    empty_bucket(clients.s3, BUCKET)
    drop_database(clients, s.glue_database)


class Pipeline:
    """The pipe and firehose runners in-process; the firehose runner's schema clock is the test's."""

    def __init__(self, clients: Clients, settings: Settings) -> None:
        self.clients, self.now = clients, [0.0]
        runner_dir = Path(settings.runner_dir)
        self.pipe = PipeRunner(clients, json.loads(spec_file(runner_dir, "pipe").read_text()), runner_dir / "pipe.json")
        config = parse_config(json.loads(spec_file(runner_dir, "delivery_stream").read_text()))
        self.firehose = FirehoseRunner(clients, config, runner_dir / "firehose.json")
        self.firehose.table_schema = TableSchema(clients.glue, settings.glue_database, settings.glue_table,
                                                 clock=lambda: self.now[0])
        self.firehose.run_once()  # open the shard iterators before anything is written
        self.seen: set[str] = set()

    def new_rows(self) -> list[dict[str, Any]]:
        """Run both runners until idle, then the rows of the objects written since the last call."""
        quiet = 0
        for _ in range(30):
            idle = self.pipe.run_once() & self.firehose.run_once()
            quiet = quiet + 1 if idle else 0
            if quiet >= 2:
                break
        self.firehose.close()
        rows = []
        for obj in self.clients.s3.list_objects_v2(Bucket=BUCKET, Prefix="orders/").get("Contents", []):
            if obj["Key"] not in self.seen:
                self.seen.add(obj["Key"])
                body = self.clients.s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                rows += pq.read_table(io.BytesIO(body)).to_pylist()
        return rows


def add_column(clients: Clients, settings: Settings, name: str, kind: str) -> None:
    """What a user does on AWS (console or CLI): UpdateTable with one more column."""
    table = clients.glue.get_table(DatabaseName=settings.glue_database, Name=settings.glue_table)["Table"]
    keep = ("Name", "TableType", "Parameters", "StorageDescriptor", "PartitionKeys")
    table_in = with_columns({k: table[k] for k in keep if k in table}, (*table_columns(table), (name, kind)))
    clients.glue.update_table(DatabaseName=settings.glue_database, TableInput=table_in)


def reconciled(clients: Clients, settings: Settings) -> Any:
    with open_engine(clients, settings, Console(capture=True)) as engine:
        return reconcile(clients, settings, engine.conn)


def test_a_column_added_to_the_table_reaches_the_next_objects_and_verify_names_what_the_lake_drops(
    settings: Settings,
) -> None:
    clients = Clients(settings)
    ddb = clients.dynamodb
    pipeline = Pipeline(clients, settings)

    ddb.put_item(TableName=TABLE, Item={**ITEM, **EXTRAS})
    (first,) = pipeline.new_rows()
    assert first["order_id"] == "o-1" and not set(EXTRAS) & set(first)  # the table declares none of them

    result = reconciled(clients, settings)
    assert result.ok and result.unmapped_attributes == {"coupon_code": 1, "address": 1, "tags": 1}
    assert result.report_lines()[:2] == [
        "lake and table agree: 1 orders, every attribute the lake holds equal",
        "3 DynamoDB attribute(s) not in the Glue table se_db.se_cdc: Firehose drops attributes the "
        "table does not declare; add the column with UpdateTable to keep it",
    ]

    add_column(clients, settings, "coupon_code", "string")
    pipeline.now[0] += 60  # the runner re-reads the table on its timer (coupon_code was asked about already)
    ddb.put_item(TableName=TABLE, Item={**ITEM, **EXTRAS, "order_id": {"S": "o-2"}})
    (second,) = pipeline.new_rows()
    assert (second["order_id"], second["coupon_code"]) == ("o-2", "SAVE10")

    add_column(clients, settings, "address", "struct<city:string,zip:string>")  # no timer: a new name asks at once
    ddb.put_item(TableName=TABLE, Item={**ITEM, **EXTRAS, "order_id": {"S": "o-3"}, "gift_note": {"S": "hi"}})
    (third,) = pipeline.new_rows()
    assert (third["coupon_code"], third["address"]) == ("SAVE10", {"city": "Lyon", "zip": "69001"})

    crawl(clients, settings, Console(capture=True))  # as `make verify` does: the objects now carry both columns
    result = reconciled(clients, settings)
    assert result.unmapped_attributes == {"tags": 3, "gift_note": 1}
    # What was written before a column existed never reached the lake, and verify says so.
    address = {"city": "Lyon", "zip": "69001"}
    assert result.differences == (AttributeDiff("o-1", "coupon_code", None, "SAVE10"),
                                  AttributeDiff("o-1", "address", None, address),
                                  AttributeDiff("o-2", "address", None, address))

    for order_id in ("o-1", "o-2"):
        ddb.update_item(TableName=TABLE, Key={"order_id": {"S": order_id}}, UpdateExpression="SET #s = :s",
                        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "PAID"}})
    assert {(r["coupon_code"], r["address"]["zip"]) for r in pipeline.new_rows()} == {("SAVE10", "69001")}
    result = reconciled(clients, settings)
    assert result.ok and result.differences == ()
    assert result.report_lines()[2:] == ["  tags: in 3 item(s)", "  gift_note: in 1 item(s)"]
