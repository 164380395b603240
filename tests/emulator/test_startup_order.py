"""Nothing written at deploy time is lost, and nothing from before the delivery stream is delivered.

On AWS a delivery stream reading a Kinesis stream starts at LATEST
(https://docs.aws.amazon.com/firehose/latest/dev/writing-with-kinesis-streams.html), while the pipe replays
the table's stream from TRIM_HORIZON. So the plan creates the delivery stream before the pipe, the local
firehose runner starts where the delivery stream was created, and `make up` (service.launch, then Launch.go)
launches both runners at once but lets the pipe runner read only once the firehose runner reads. From scratch,
with writes to DynamoDB before and during start-up,
the lake then holds exactly the changes of the table's stream: a record that was in Kinesis before the
delivery stream existed stays out of it, as it would on AWS.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from bootstrap.plan import Plan, apply, build_plan
from bootstrap.spec import KIND_ORDER
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from generator.seed import run_seed
from runners import service
from runners.loop import read_status
from runners.pipe import encode_event
from tests.emulator.test_pipeline import assert_lake_matches

STRAY_ORDER = "o-before-the-delivery-stream"


@pytest.fixture()
def settings(emulator_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    s = with_overrides(
        emulator_settings, state_dir=tmp_path_factory.mktemp("startup-state"),
        project="su-cdc", table_name="su_orders", stream_name="su-orders-cdc", lambda_name="su-transform",
        pipe_name="su-pipe", delivery_stream="su-firehose", glue_database="su_db", crawler_name="su-crawler",
        workgroup="su-wg", lake_bucket="su-lake", results_bucket="su-results",
        buffer_interval_s=1, processor_interval_s=0,
    )
    try:
        yield s
    finally:
        service.stop(s)


def stray_event(settings: Settings, clients: Clients) -> bytes:
    """A well-formed pipe event for an order the table never had: the transform would turn it into a row."""
    image = {
        "order_id": {"S": STRAY_ORDER}, "customer_id": {"S": "c1"}, "customer_name": {"S": "Ann"},
        "customer_region": {"S": "EU"}, "product_id": {"S": "p1"}, "product_name": {"S": "Pen"},
        "category": {"S": "Books"}, "quantity": {"N": "2"}, "unit_price": {"N": "9.99"}, "discount": {"N": "0.1"},
        "order_total": {"N": "17.98"}, "currency": {"S": "USD"}, "status": {"S": "PLACED"},
        "payment_method": {"S": "card"}, "channel": {"S": "web"},
        "order_ts": {"S": "2026-11-26T10:00:00.000Z"}, "updated_ts": {"S": "2026-11-26T10:00:00.000Z"},
    }
    return encode_event({
        "eventID": "stray-0", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": settings.region, "eventSourceARN": f"arn:aws:dynamodb:{settings.region}:{clients.account_id}:"
                                                        f"table/{settings.table_name}/stream/earlier",
        "dynamodb": {"ApproximateCreationDateTime": 1764151200, "Keys": {"order_id": {"S": STRAY_ORDER}},
                     "NewImage": image, "SequenceNumber": "100", "SizeBytes": 300,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"},
    })


def test_from_scratch_writes_before_and_during_start_up_reach_the_lake_exactly(settings: Settings) -> None:
    clients = Clients(settings)
    console = Console(capture=True)
    plan = build_plan(clients, settings)
    # The Kinesis stream exists, and already holds a record, before the delivery stream is created.
    before = KIND_ORDER.index("delivery_stream")
    early = tuple(c for c in plan.changes if KIND_ORDER.index(c.resource.kind) < before)
    apply(clients, Plan(plan.target, plan.region, plan.account, early), console)
    clients.kinesis.put_record(StreamName=settings.stream_name, Data=stray_event(settings, clients),
                               PartitionKey=STRAY_ORDER)
    apply(clients, build_plan(clients, settings), console)
    assert json.loads((settings.runner_dir / "delivery_stream.json").read_text())[
        "DeliveryStreamDescription"]["StartingSequenceNumbers"] != {}

    seeded = run_seed(clients, settings, orders=60, rate=None, duration=None, seed=31, console=Console(capture=True))
    during: dict[str, object] = {}

    def write_during_start_up() -> None:
        during["summary"] = run_seed(clients, settings, orders=150, rate=150, duration=None, seed=32,
                                     console=Console(capture=True))

    writer = threading.Thread(target=write_during_start_up)
    writer.start()
    try:
        launched = service.launch(settings)  # both at once, as `make up` does, right after the emulator
        try:
            assert set(launched.started) == set(service.RUNNERS)
            assert all(read_status(settings.runner_dir, name) is None for name in service.RUNNERS)  # none read yet
            launched.go()  # the firehose runner, then (once it completed a pass) the pipe runner
        except BaseException:
            launched.abandon()
            raise
    finally:
        writer.join(timeout=120)
    assert "summary" in during and seeded.writes > 0

    statuses = {name: read_status(settings.runner_dir, name) or {} for name in service.RUNNERS}
    assert all(s.get("ok_passes", 0) >= 1 for s in statuses.values())
    service.wait_drained(settings, timeout=120)
    rows = assert_lake_matches(clients, settings, stream_complete=True)  # every change of the table's stream
    assert STRAY_ORDER not in {r["order_id"] for r in rows}  # and nothing from before the delivery stream

    # A restart changes nothing: the runners resume from their checkpoints.
    service.stop(settings)
    service.start(settings)
    service.wait_drained(settings, timeout=120)
    assert_lake_matches(clients, settings, stream_complete=True)
