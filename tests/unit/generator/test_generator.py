"""The order generator without a server: catalog, lifecycle, batching, pacing, seed shell."""

from __future__ import annotations

import io
import queue
import re
import signal
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rich.console import Console as RichConsole

from common.config import load_settings
from common.console import Console
from common.errors import ConfigError, TerminalError, TransientError
from generator.lifecycle import (
    KINDS,
    LifecycleConfig,
    Operation,
    final_state,
    iso_ms,
    simulate,
    to_epoch_ms,
)
from generator.model import CATEGORIES, build_catalog, order_total
from generator.pacing import TokenBucket
from generator.seed import _progress, default_start, history_config, run_seed, validate_seed_args, writer_client
from generator.writer import (
    BatchPlanner,
    BatchWriter,
    RawBatchWrites,
    attribute_values,
    plan_batches,
    write_batch,
    write_request,
)

START = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ATTRIBUTES = {
    "order_id", "customer_id", "customer_name", "customer_region", "product_id", "product_name",
    "category", "quantity", "unit_price", "discount", "order_total", "currency", "status",
    "payment_method", "channel", "order_ts", "updated_ts",
}
STRINGS = ATTRIBUTES - {"quantity", "unit_price", "discount", "order_total"}
# (from, to) status moves; a correction keeps the status.
EDGES = {
    (None, "PLACED"), ("PLACED", "PAID"), ("PLACED", "CANCELLED"), ("PAID", "SHIPPED"),
    ("PAID", "CANCELLED"), ("SHIPPED", "DELIVERED"), ("DELIVERED", "RETURNED"),
    ("PLACED", "PLACED"), ("PAID", "PAID"),
}


@pytest.fixture(scope="module")
def ops() -> list[Operation]:
    return list(simulate(7, 2000, START))


def by_order(ops: list[Operation]) -> dict[str, list[Operation]]:
    grouped: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        grouped[op.order_id].append(op)
    return grouped


# --- model -------------------------------------------------------------------------------------

def test_order_total_rounds_half_up_to_cents() -> None:
    assert order_total(3, Decimal("19.99"), Decimal("0.15")) == Decimal("50.97")  # 50.9745
    assert order_total(1, Decimal("0.25"), Decimal("0.50")) == Decimal("0.13")  # 0.125: half up, not even
    assert order_total(2, Decimal("10.00"), Decimal("0.00")) == Decimal("20.00")
    assert str(order_total(1, Decimal("5"), Decimal("0"))) == "5.00"


def test_catalog_is_deterministic_and_priced_per_category() -> None:
    catalog = build_catalog(3)
    assert catalog == build_catalog(3)
    assert catalog != build_catalog(4)
    assert len(catalog.customers) == 1000 and len(catalog.products) == 30 * len(CATEGORIES)
    for product in catalog.products:
        low, high, _ = CATEGORIES[product.category]
        assert max(low, Decimal("0.99")) <= product.unit_price <= high + 1
        assert product.unit_price.as_tuple().exponent == -2


def test_timestamps_are_utc_milliseconds() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    moment = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert iso_ms(to_epoch_ms(moment)) == "2025-01-02T03:04:05.678Z"
    assert to_epoch_ms(datetime(2025, 1, 2, 3, 4, 5, 678901)) == to_epoch_ms(moment)  # naive = UTC


# --- lifecycle ---------------------------------------------------------------------------------

def test_same_seed_same_operations_and_other_seed_differs() -> None:
    first = list(simulate(11, 150, START))
    assert first == list(simulate(11, 150, START))
    other = list(simulate(12, 150, START))
    assert {op.order_id for op in first}.isdisjoint({op.order_id for op in other})
    shifted = list(simulate(11, 150, datetime(2025, 3, 1, 12, 0, 1, tzinfo=UTC)))
    assert [op.order_id for op in shifted] == [op.order_id for op in first]
    assert shifted[0].ts == "2025-03-01T12:00:01.000Z" and first[0].ts == "2025-03-01T12:00:00.000Z"


def test_every_put_matches_the_item_contract(ops: list[Operation]) -> None:
    regions = {"NA-EAST", "NA-WEST", "EU-CENTRAL", "EU-WEST", "APAC", "LATAM"}
    for op in ops:
        if op.item is None:
            continue
        item = op.item
        assert set(item) == ATTRIBUTES
        assert all(isinstance(item[k], str) for k in STRINGS)
        assert all(isinstance(item[k], Decimal) for k in ATTRIBUTES - STRINGS)
        assert item["order_id"] == op.order_id and item["updated_ts"] == op.ts
        assert item["status"] in {"PLACED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED"}
        assert item["customer_region"] in regions
        assert item["channel"] in {"web", "mobile_app", "marketplace", "store"}
        assert item["payment_method"] in {"card", "paypal", "apple_pay", "bank_transfer", "gift_card"}
        assert item["currency"] == "USD" and item["category"] in CATEGORIES
        quantity, price, discount = item["quantity"], item["unit_price"], item["discount"]
        assert quantity == int(quantity) and 1 <= quantity <= 5
        assert Decimal(0) <= discount <= Decimal("0.5")
        assert price.as_tuple().exponent == -2 and item["order_total"].as_tuple().exponent == -2
        assert item["order_total"] == (quantity * price * (1 - discount)).quantize(Decimal("0.01"),
                                                                                  "ROUND_HALF_UP")
        assert TS.match(item["order_ts"]) and TS.match(item["updated_ts"])


def test_lifecycles_follow_allowed_edges_in_time_order(ops: list[Operation]) -> None:
    for order_id, steps in by_order(ops).items():
        assert steps[0].kind == "placed"
        order_ts = steps[0].item["order_ts"]  # type: ignore[index]
        status, last_ts = None, ""
        for i, op in enumerate(steps):
            assert op.ts > last_ts, order_id  # ISO strings of one format sort by time
            last_ts = op.ts
            if op.item is None:
                assert op.kind == "deleted" and i == len(steps) - 1
                continue
            assert (status, op.item["status"]) in EDGES, (order_id, status, op.item["status"])
            assert op.item["order_ts"] == order_ts
            if op.kind == "corrected":
                previous = steps[i - 1].item
                assert previous is not None
                assert (op.item["quantity"], op.item["discount"]) != (previous["quantity"],
                                                                      previous["discount"])
            status = op.item["status"]


def test_orders_interleave_in_one_time_ordered_stream(ops: list[Operation]) -> None:
    assert [op.ts for op in ops] == sorted(op.ts for op in ops)
    first_paid = next(i for i, op in enumerate(ops) if op.kind == "paid")
    last_placed = max(i for i, op in enumerate(ops) if op.kind == "placed")
    assert first_paid < last_placed  # old orders progress while new ones arrive


def test_shares_are_roughly_as_configured(ops: list[Operation]) -> None:
    kinds = Counter(op.kind for op in ops)
    orders = kinds["placed"]
    assert orders == 2000
    config = LifecycleConfig()
    assert 0.6 * (config.cancel_placed + config.cancel_paid) < kinds["cancelled"] / orders < 0.16
    assert 0.04 < kinds["returned"] / kinds["delivered"] < 0.13
    assert 0.06 < kinds["corrected"] / orders < 0.14
    assert 0.01 < kinds["deleted"] / orders < 0.06
    assert 0.70 < kinds["delivered"] / orders < 0.90


def test_final_state_folds_puts_and_deletes() -> None:
    a1 = Operation("placed", "a", "t1", {"order_id": "a", "status": "PLACED"})
    b1 = Operation("placed", "b", "t2", {"order_id": "b", "status": "PLACED"})
    a2 = Operation("paid", "a", "t3", {"order_id": "a", "status": "PAID"})
    b2 = Operation("deleted", "b", "t4", None)
    assert final_state([a1, b1, a2, b2]) == {"a": {"order_id": "a", "status": "PAID"}}


# --- batching and writing ----------------------------------------------------------------------

def op(key: str, n: int = 1) -> Operation:
    return Operation("placed", key, f"t{n}", {"order_id": key, "quantity": Decimal(n)})


def test_requests_are_dynamodb_wire_format() -> None:
    item = {"order_id": "o-1", "quantity": Decimal("2"), "unit_price": Decimal("12.50")}
    assert attribute_values(item) == {"order_id": {"S": "o-1"}, "quantity": {"N": "2"},
                                      "unit_price": {"N": "12.50"}}
    assert write_request(Operation("deleted", "o-1", "t", None)) == {
        "DeleteRequest": {"Key": {"order_id": {"S": "o-1"}}}}


def test_a_repeated_key_goes_to_a_later_batch_without_cutting_the_current_one() -> None:
    a1, b1, a2, c1, a3, d1 = op("a", 1), op("b", 1), op("a", 2), op("c", 1), op("a", 3), op("d", 1)
    assert list(plan_batches([a1, b1, a2, c1, a3, d1])) == [[a1, b1, c1, d1], [a2], [a3]]
    sizes = [len(b) for b in plan_batches([op(f"k{i}") for i in range(60)])]
    assert sizes == [25, 25, 10]


def test_a_key_repeated_beyond_the_window_sends_the_oldest_batch_first() -> None:
    a0, a1, a2, a3, a4 = (op("a", n) for n in range(5))
    b = op("b")
    assert list(plan_batches([a0, a1, a2, a3, a4, b], window=2)) == [[a0], [a1], [a2], [a3, b], [a4]]


def per_key(batches: list[list[Operation]]) -> dict[str, list[Operation]]:
    return by_order([o for batch in batches for o in batch])


@pytest.mark.parametrize("days", [14, 0.05])
def test_batches_of_a_simulated_stream_keep_per_key_order_and_unique_keys(days: float) -> None:
    ops = list(simulate(7, 2000, START, LifecycleConfig(mean_gap_ms=days * 86_400_000 / 2000)))
    batches = list(plan_batches(ops))
    assert sorted(map(id, (o for batch in batches for o in batch))) == sorted(map(id, ops))
    assert per_key(batches) == by_order(ops)  # each order's steps in the order they happened
    for batch in batches:
        assert len(batch) <= 25 and len({o.order_id for o in batch}) == len(batch)


def test_make_seeds_default_history_fills_its_batches() -> None:
    """`make seed` (2,000 orders over DAYS=14: ~10 simulated minutes between orders, so each order's
    steps come one after another) once wrote batches of ~1.9 requests and ran at ~0.2x the bench."""
    fake = FakeDynamo()
    summary = run_seed(FakeClients(fake), SETTINGS, orders=2000, rate=None, duration=None, seed=42,  # type: ignore[arg-type]
                       console=Console(capture=True), config=history_config(14, 2000))
    assert summary.writes == sum(len(call) for call in fake.calls) == sum(summary.counts.values())
    assert summary.batches == len(fake.calls)
    assert summary.writes / len(fake.calls) >= 24  # 2 threads: all but each shard's last few batches are full
    assert fake.table == wire(summary.items_in_table_expected)


class FakeDynamo:
    """A thread-safe stand-in for the DynamoDB client: applies batches, can defer or fail some."""

    def __init__(self, unprocessed_first: int = 0, missing: bool = False, on_call: Any = None) -> None:
        self.table: dict[str, dict[str, Any]] = {}
        self.calls: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.unprocessed_first = unprocessed_first
        self.missing = missing
        self.on_call = on_call

    def describe_table(self, TableName: str) -> dict[str, Any]:
        if self.missing:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}},
                              "DescribeTable")
        return {"Table": {"TableName": TableName, "StreamSpecification": {"StreamEnabled": True}}}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        if self.missing:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}},
                              "BatchWriteItem")
        (table, requests), = RequestItems.items()
        keys = [self.key(r) for r in requests]
        assert len(requests) <= 25 and len(set(keys)) == len(keys)
        with self.lock:
            self.calls.append(requests)
            deferred: list[dict[str, Any]] = []
            if self.unprocessed_first and len(requests) > self.unprocessed_first:
                requests, deferred = requests[:-self.unprocessed_first], requests[-self.unprocessed_first:]
                self.unprocessed_first = 0
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    self.table[item["order_id"]["S"]] = item
                else:
                    self.table.pop(request["DeleteRequest"]["Key"]["order_id"]["S"], None)
        if self.on_call:
            self.on_call(len(self.calls))
        return {"UnprocessedItems": {table: deferred} if deferred else {}}

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        if "PutRequest" in request:
            return request["PutRequest"]["Item"]["order_id"]["S"]
        return request["DeleteRequest"]["Key"]["order_id"]["S"]


def wire(state: dict[str, Any]) -> dict[str, Any]:
    return {k: attribute_values(v) for k, v in state.items()}


@pytest.mark.parametrize("days", [None, 14])
def test_batch_writer_keeps_per_key_order_across_threads(ops: list[Operation], days: float | None) -> None:
    stream = ops[:3000] if days is None else list(simulate(7, 800, START, history_config(days, 800)))
    fake = FakeDynamo(unprocessed_first=3)
    with BatchWriter(fake, "t", threads=3, sleep=lambda s: None) as writer:
        for o in stream:
            writer.submit(o)
    assert writer.writes == len(stream)
    assert fake.table == wire(final_state(stream))
    sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in fake.calls:
        for request in call:
            sent[FakeDynamo.key(request)].append(request)
    for order_id, steps in by_order(stream).items():
        # The deferred requests were sent twice (first attempt dropped them); keep the last copy order.
        dedup = [r for i, r in enumerate(sent[order_id]) if r not in sent[order_id][i + 1:]]
        assert dedup == [write_request(o) for o in steps]


def interrupt_first_put(q: queue.Queue) -> None:
    """The queue's first put raises KeyboardInterrupt, as a second Ctrl-C during a blocked put does."""
    put = q.put
    state = {"interrupted": False}

    def interrupted_once(item: Any, block: bool = True, timeout: float | None = None) -> None:
        if not state["interrupted"] and item is not None:
            state["interrupted"] = True
            raise KeyboardInterrupt
        put(item, block, timeout)

    q.put = interrupted_once  # type: ignore[method-assign]


def test_an_interrupt_while_a_batch_waits_for_its_queue_loses_no_batch(ops: list[Operation]) -> None:
    """The ready batches had left the planner before the put: the interrupted one was lost, and close() then
    wrote the later ones, so an order could show DELIVERED with no SHIPPED before it."""
    stream = ops[:600]
    fake = FakeDynamo()
    writer = BatchWriter(fake, "t", threads=1, sleep=lambda s: None)
    interrupt_first_put(writer._queues[0])
    with pytest.raises(KeyboardInterrupt):
        for o in stream:
            writer.submit(o)
    writer.close()
    assert fake.table == wire(final_state(stream[:stream.index(o) + 1]))  # the interrupted op's batch included
    assert writer.writes == stream.index(o) + 1


def test_partial_batches_are_sent_only_once_old_enough() -> None:
    fake = FakeDynamo()
    with BatchWriter(fake, "tbl", threads=1) as writer:
        writer.submit(op("a"))
        writer.flush(wait=True, older_than=3600)  # too young: stays in the builder
        assert fake.calls == []
        writer.flush(wait=True)
        assert [FakeDynamo.key(r) for r in fake.calls[0]] == ["a"]


def test_partial_batches_leave_oldest_first_up_to_the_last_old_enough() -> None:
    now = [0.0]
    planner = BatchPlanner(size=3, clock=lambda: now[0])
    a1, b1, a2, c1, a3 = op("a", 1), op("b", 1), op("a", 2), op("c", 1), op("a", 3)
    assert planner.add(a1) == planner.add(b1) == []
    now[0] = 1.0
    assert planner.add(a2) == []  # opens a second batch at t=1
    now[0] = 2.0
    assert planner.add(a3) == []  # and a third at t=2
    assert planner.add(c1) == [[a1, b1, c1]]  # the first is full
    assert len(planner) == 2
    assert planner.take(older_than=0.5) == [[a2]]  # started at t=1: old enough at t=2; t=2 is not
    now[0] = 2.5
    assert planner.take(older_than=0.5) == [[a3]]
    assert planner.take() == [] and len(planner) == 0


def test_write_batch_gives_up_on_endless_unprocessed_items() -> None:
    class Stuck:
        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            return {"UnprocessedItems": RequestItems}

    with pytest.raises(TransientError, match=r"left 2 requests unprocessed on 't' after 3 attempts"):
        write_batch(Stuck(), "t", [op("a"), op("b")], attempts=3, sleep=lambda s: None)


def test_write_batch_on_a_missing_table_says_how_to_fix() -> None:
    with pytest.raises(TerminalError, match=r"table 'nope' does not exist; create it with `make up`"):
        write_batch(FakeDynamo(missing=True), "nope", [op("a")])


class RawFake:
    """Clients whose raw_json fails the first calls with `errors`, then answers `answer`."""

    def __init__(self, errors: list[BaseException], answer: dict[str, Any] | None = None) -> None:
        self.errors, self.answer = list(errors), answer or {"UnprocessedItems": {}}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def client(self, service: str, *, validated: bool = True) -> object:
        return object()

    def raw_json(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((service, operation, params))
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "BatchWriteItem")


def test_raw_batch_writes_send_the_wire_form_and_retry_what_botocore_would() -> None:
    fake = RawFake([_client_error("ProvisionedThroughputExceededException", 400), _client_error("Boom", 503)],
                   {"UnprocessedItems": {"t": [write_request(op("b"))]}})
    requests = {"t": [write_request(op("a")), write_request(op("b"))]}
    answer = RawBatchWrites(fake, sleep=lambda s: None).batch_write_item(RequestItems=requests)
    assert answer == {"UnprocessedItems": {"t": [write_request(op("b"))]}}
    assert fake.calls == [("dynamodb", "BatchWriteItem", {"RequestItems": requests})] * 3


def test_raw_batch_writes_raise_a_refusal_at_once() -> None:
    fake = RawFake([_client_error("ValidationException", 400)])
    with pytest.raises(ClientError, match="ValidationException"):
        RawBatchWrites(fake, sleep=lambda s: None).batch_write_item(RequestItems={"t": []})
    assert len(fake.calls) == 1


def test_raw_batch_writes_give_up_after_their_attempts() -> None:
    fake = RawFake([_client_error("ThrottlingException", 400)] * 9)
    with pytest.raises(ClientError, match="ThrottlingException"):
        RawBatchWrites(fake, attempts=3, sleep=lambda s: None).batch_write_item(RequestItems={"t": []})
    assert len(fake.calls) == 3


def test_the_writer_goes_raw_only_through_botocore_s_own_client() -> None:
    """A real client is replaced by the raw path; a stand-in (a fake, a recorder) is used as given."""
    from common.aws import Clients

    assert isinstance(writer_client(Clients(SETTINGS)), RawBatchWrites)
    fake = FakeDynamo()
    assert writer_client(FakeClients(fake)) is fake  # type: ignore[arg-type]


# --- pacing and the seed shell -----------------------------------------------------------------

def test_token_bucket_spaces_tokens_at_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(2.0, burst=1, clock=lambda: now[0])
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.5
    assert bucket.reserve() == 1.0  # still owed: two tokens ahead
    now[0] += 10.0  # long idle: refills only to the burst
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.5


def test_token_bucket_catches_up_within_its_burst_but_does_not_open_with_one() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, burst=3, clock=lambda: now[0])
    assert [bucket.reserve(), bucket.reserve()] == [0.0, 0.1]
    now[0] += 1.0  # a slow write: up to 3 placements may follow at once
    assert [bucket.reserve(), bucket.reserve(), bucket.reserve()] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-3, None, None, 1), "--orders must be a positive integer, got -3"),
        ((0, None, None, 1), "--orders must be a positive integer, got 0"),
        ((10, 0, None, 1), "--rate must be a positive number of orders per second (omit it for as "
                           "fast as possible), got 0"),
        ((10, float("nan"), None, 1), "--rate must be a positive number"),
        ((10, 5.0, -1, 1), "--duration must be a positive number of seconds (omit it to run until "
                           "every order is done), got -1"),
        ((10, None, None, -1), "--seed must be a non-negative integer, got -1"),
        ((10, None, None, 1, 0), "--threads must be an integer from 1 to 16, got 0"),
    ],
)
def test_bad_arguments_get_one_clear_line(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_seed_args(*args)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


class FakeClients:
    def __init__(self, dynamodb: FakeDynamo) -> None:
        self.dynamodb = dynamodb

    def client(self, service: str, *, validated: bool = True) -> FakeDynamo:
        assert service == "dynamodb"
        return self.dynamodb


SETTINGS = load_settings(env={}, table_name="unit_orders")


def test_run_seed_leaves_exactly_the_expected_table() -> None:
    fake, console = FakeDynamo(), Console(capture=True)
    summary = run_seed(FakeClients(fake), SETTINGS, orders=120, rate=None, duration=None, seed=5,  # type: ignore[arg-type]
                       console=console, start=START)
    expected_ops = list(simulate(5, 120, START))
    assert summary.stopped_by == "completed" and not summary.interrupted
    kinds = Counter(o.kind for o in expected_ops)
    assert summary.counts == {kind: kinds[kind] for kind in KINDS}
    assert summary.writes == len(expected_ops) == sum(summary.counts.values())
    assert summary.items_in_table_expected == final_state(expected_ops)
    assert fake.table == wire(summary.items_in_table_expected)
    assert console.lines[-1].startswith(f"✓ seeded 120 orders, {len(expected_ops)} writes into 'unit_orders'")


def test_run_seed_stops_at_the_duration_with_a_consistent_table() -> None:
    ticks = iter(range(10**6))
    fake = FakeDynamo()
    summary = run_seed(FakeClients(fake), SETTINGS, orders=500, rate=None, duration=50, seed=5,  # type: ignore[arg-type]
                       console=Console(capture=True), start=START, clock=lambda: float(next(ticks)))
    assert summary.stopped_by == "duration"
    assert 0 < summary.writes < len(list(simulate(5, 500, START)))
    assert fake.table == wire(summary.items_in_table_expected)


def test_ctrl_c_flushes_in_flight_writes_and_reports_interrupted() -> None:
    fake = FakeDynamo(on_call=lambda n: n == 2 and signal.raise_signal(signal.SIGINT))
    console, before = Console(capture=True), signal.getsignal(signal.SIGINT)
    summary = run_seed(FakeClients(fake), SETTINGS, orders=3000, rate=None, duration=None, seed=9,  # type: ignore[arg-type]
                       console=console, start=START, threads=1)
    assert summary.interrupted and summary.stopped_by == "interrupted"
    assert 0 < summary.placed < 3000
    assert summary.writes == sum(summary.counts.values())
    assert fake.table == wire(summary.items_in_table_expected)
    assert "seeding stopped (interrupted)" in console.lines[-1]
    assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again


def test_run_seed_on_a_missing_table_fails_before_writing() -> None:
    fake = FakeDynamo(missing=True)
    with pytest.raises(TerminalError, match="table 'unit_orders' does not exist"):
        run_seed(FakeClients(fake), SETTINGS, orders=5, rate=None, duration=None, seed=1,  # type: ignore[arg-type]
                 console=Console(capture=True))
    assert fake.calls == []


def test_the_simulators_wire_form_is_the_item_converted() -> None:
    """A step converts only what it changes; the result must be the whole item converted, in its key order."""
    for o in simulate(11, 300, START, history_config(2, 300)):
        expected = None if o.item is None else attribute_values(o.item)
        assert o.wire == expected and (o.wire is None or list(o.wire) == list(expected or {}))
        assert write_request(o) == write_request(Operation(o.kind, o.order_id, o.ts, o.item))


@pytest.mark.parametrize("seed", [9, 42, 47])
def test_the_simulated_history_never_reaches_past_now(seed: int) -> None:
    """The start was set from the average span of the arrivals, which vary by hours at DAYS=14: about half
    the seeds wrote timestamps up to 19 h in the future (SEED=47), and the daily KPIs showed tomorrow."""
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    config = history_config(14, 2000)
    start = default_start(2000, config, now, seed=seed)
    last = max(max(o.item["updated_ts"], o.item["order_ts"]) for o in simulate(seed, 2000, start, config)
               if o.item is not None)
    assert str(last) <= now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert (now - start).total_seconds() < 14.6 * 86_400  # still about DAYS of history


@pytest.mark.parametrize("terminal", [True, False])
def test_the_seed_bar_is_redrawn_by_a_thread_only_on_a_terminal(terminal: bool) -> None:
    """Off a terminal (a log file, the bench) nothing is drawn until the end, so no thread renders it meanwhile."""
    out = io.StringIO()
    progress = _progress(Console(_rich=RichConsole(file=out, force_terminal=terminal, width=100, color_system=None)))
    task = progress.add_task("seed", total=2, speed="")
    with progress:
        assert progress.live.auto_refresh is terminal  # rich starts its refresh thread only then
        progress.update(task, completed=2, speed="1/s")
    assert "2/2 orders  1/s" in out.getvalue()  # the final state is drawn either way
