"""A pure order-lifecycle simulator: a seeded, time-ordered stream of put/delete operations.

Orders arrive on a simulated clock (exponential gaps) and each one follows a path drawn at
placement: PLACED -> PAID -> SHIPPED -> DELIVERED (-> RETURNED), or CANCELLED from PLACED or
PAID, or left open, with an optional quantity/discount correction while PLACED or PAID and an
optional delete at the end. Steps of all open orders are merged by time, so new orders keep
arriving while older ones progress, as in a real shop.

Every operation carries the order's complete new item (the DynamoDB item contract) because
the writer stores it with a PutRequest: a put that replaces an item yields a MODIFY stream
record with both images, and DynamoDB emits no record for a write that changes nothing, so
each step moves `updated_ts` forward by at least one millisecond.
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from generator.model import (
    CHANNELS,
    CURRENCY,
    DISCOUNTS,
    NO_DISCOUNT,
    PAYMENT_METHODS,
    Catalog,
    build_catalog,
    order_total,
)

Item = dict[str, str | Decimal]

# Operation kinds, in the order a summary lists them; "deleted" is the only non-put.
KINDS = ("placed", "paid", "shipped", "delivered", "cancelled", "returned", "corrected", "deleted")
STATUS_OF = {"placed": "PLACED", "paid": "PAID", "shipped": "SHIPPED", "delivered": "DELIVERED",
             "cancelled": "CANCELLED", "returned": "RETURNED"}
# Allowed status moves (a correction keeps the status; a delete may follow any state).
TRANSITIONS: Mapping[str, frozenset[str]] = MappingProxyType({
    "PLACED": frozenset({"PAID", "CANCELLED", "PLACED"}),
    "PAID": frozenset({"SHIPPED", "CANCELLED", "PAID"}),
    "SHIPPED": frozenset({"DELIVERED"}),
    "DELIVERED": frozenset({"RETURNED"}),
    "CANCELLED": frozenset(),
    "RETURNED": frozenset(),
})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUANTITIES = (1, 2, 3, 4, 5)
QUANTITY_WEIGHTS = (60, 20, 10, 6, 4)
# random.choices with cum_weights draws exactly what it draws with weights (it accumulates them itself
# first): accumulated once here instead of at every order.
_QUANTITY_CUM = tuple(itertools.accumulate(QUANTITY_WEIGHTS))
_PAYMENT_METHODS = tuple(PAYMENT_METHODS)
_PAYMENT_CUM = tuple(itertools.accumulate(PAYMENT_METHODS.values()))
_CHANNELS = tuple(CHANNELS)
_CHANNEL_CUM = tuple(itertools.accumulate(CHANNELS.values()))

# Simulated delay before each step, in ms: a fast-forward shop (a lifecycle spans minutes).
DEFAULT_DELAYS_MS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "paid": (1_000, 60_000),
    "shipped": (10_000, 600_000),
    "delivered": (60_000, 1_800_000),
    "returned": (300_000, 3_600_000),
    "cancelled": (1_000, 300_000),
    "corrected": (1_000, 60_000),
    "deleted": (1_000, 600_000),
})


@dataclass(frozen=True)
class LifecycleConfig:
    """Shares of each path (fractions of all orders unless said otherwise) and simulated delays."""

    cancel_placed: float = 0.08
    cancel_paid: float = 0.04
    stall: float = 0.06  # left open at PLACED, PAID or SHIPPED
    returned: float = 0.08  # of delivered orders
    corrected: float = 0.10
    deleted: float = 0.03
    discounted: float = 0.30
    mean_gap_ms: float = 200.0
    delays_ms: Mapping[str, tuple[int, int]] = field(default_factory=lambda: DEFAULT_DELAYS_MS)

    def __post_init__(self) -> None:
        for name in ("cancel_placed", "cancel_paid", "stall", "returned", "corrected", "deleted",
                     "discounted"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"LifecycleConfig.{name} must be a share between 0 and 1")
        if self.cancel_placed + self.cancel_paid + self.stall > 1:
            raise ValueError("LifecycleConfig: cancel_placed + cancel_paid + stall must not exceed 1")
        if self.mean_gap_ms <= 0:
            raise ValueError("LifecycleConfig.mean_gap_ms must be positive")
        for kind, (low, high) in self.delays_ms.items():
            if not 1 <= low <= high:
                raise ValueError(f"LifecycleConfig.delays_ms[{kind!r}] must satisfy 1 <= low <= high")

    def longest_lifecycle_ms(self) -> int:
        """An upper bound of one order's lifecycle: every step's longest delay, one after the other."""
        return sum(high for _, high in self.delays_ms.values())


def arrival_gaps(seed: int, config: LifecycleConfig) -> Iterator[int]:
    """The gaps between order arrivals (ms), from a random stream of their own: the history's exact span is
    known before the first order is simulated (history_span_ms), so no timestamp lands after now."""
    rng = random.Random(f"arrivals/{seed}")
    rate = 1 / config.mean_gap_ms
    while True:
        yield int(rng.expovariate(rate))


def history_span_ms(seed: int, orders: int, config: LifecycleConfig) -> int:
    """At most how long `orders` orders of `seed` last: their arrivals, then the longest lifecycle."""
    return sum(itertools.islice(arrival_gaps(seed, config), max(orders - 1, 0))) + config.longest_lifecycle_ms()


Wire = dict[str, dict[str, str]]


def attribute_values(item: Mapping[str, str | Decimal]) -> Wire:
    """An item in DynamoDB's wire format (only strings and numbers occur in the contract)."""
    return {k: {"S": v} if isinstance(v, str) else {"N": str(v)} for k, v in item.items()}


@dataclass(frozen=True, slots=True)
class Operation:
    """One write: the order's full new item (put), or its key alone (delete, item None).

    `wire` is the item in DynamoDB's wire format when the simulator built it along (a step converts only
    the attributes it changes); None means "convert `item` when sending" (generator/writer.py).
    """

    kind: str
    order_id: str
    ts: str  # when it happened: the put's updated_ts, or the deletion time
    item: Item | None
    wire: Wire | None = field(default=None, compare=False, repr=False)


DAY_MS = 86_400_000


@functools.lru_cache(maxsize=1024)
def _day_prefix(day: int) -> str:
    """'YYYY-MM-DDT' of a day since the epoch: formatted once per simulated day, not per step."""
    return f"{EPOCH + timedelta(days=day):%Y-%m-%d}T"


def iso_ms(epoch_ms: int) -> str:
    """'YYYY-MM-DDTHH:MM:SS.sssZ' in UTC, the contract's timestamp format.

    The time of day is plain arithmetic and the date comes from a cache: a strftime per step
    was a fifth of the simulator's CPU.
    """
    day, ms = divmod(epoch_ms, DAY_MS)
    seconds, millis = divmod(ms, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_day_prefix(day)}{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def to_epoch_ms(moment: datetime) -> int:
    """A datetime as whole UTC milliseconds (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def plan_path(rng: random.Random, config: LifecycleConfig) -> list[str]:
    """The kinds of the steps after placement, in order (draws from `rng` in a fixed order)."""
    roll = rng.random()
    if roll < config.cancel_placed:
        path = ["cancelled"]
    elif roll < config.cancel_placed + config.cancel_paid:
        path = ["paid", "cancelled"]
    elif roll < config.cancel_placed + config.cancel_paid + config.stall:
        path = [[], ["paid"], ["paid", "shipped"]][rng.randrange(3)]
    else:
        path = ["paid", "shipped", "delivered"]
        if rng.random() < config.returned:
            path.append("returned")
    if rng.random() < config.corrected:
        # A correction happens while the order is still PLACED (slot 0) or PAID (slot 1).
        slots = [0, 1] if path[:1] == ["paid"] else [0]
        path.insert(rng.choice(slots), "corrected")
    if rng.random() < config.deleted:
        path.append("deleted")
    return path


def new_order(rng: random.Random, catalog: Catalog, config: LifecycleConfig, placed: str) -> Item:
    """The PLACED item of a fresh order, drawn from the catalog."""
    customer = rng.choice(catalog.customers)
    product = rng.choices(catalog.products, cum_weights=catalog.product_cum_weights)[0]
    quantity = rng.choices(QUANTITIES, cum_weights=_QUANTITY_CUM)[0]
    discount = rng.choice(DISCOUNTS) if rng.random() < config.discounted else NO_DISCOUNT
    return {
        "order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer_id": customer.customer_id,
        "customer_name": customer.name,
        "customer_region": customer.region,
        "product_id": product.product_id,
        "product_name": product.name,
        "category": product.category,
        "quantity": Decimal(quantity),
        "unit_price": product.unit_price,
        "discount": discount,
        "order_total": order_total(quantity, product.unit_price, discount),
        "currency": CURRENCY,
        "status": "PLACED",
        "payment_method": rng.choices(_PAYMENT_METHODS, cum_weights=_PAYMENT_CUM)[0],
        "channel": rng.choices(_CHANNELS, cum_weights=_CHANNEL_CUM)[0],
        "order_ts": placed,
        "updated_ts": placed,
    }


def corrected(rng: random.Random, item: Item) -> dict[str, Decimal]:
    """A quantity or discount change (never a no-op) with order_total recomputed."""
    quantity, discount = item["quantity"], item["discount"]
    assert isinstance(quantity, Decimal) and isinstance(discount, Decimal)
    if rng.random() < 0.5:
        quantity = Decimal(rng.choice([q for q in QUANTITIES if q != quantity]))
    else:
        discount = rng.choice([d for d in (NO_DISCOUNT, *DISCOUNTS) if d != discount])
    price = item["unit_price"]
    assert isinstance(price, Decimal)
    return {"quantity": quantity, "discount": discount, "order_total": order_total(quantity, price, discount)}


class _OpenOrder:
    """An order in flight: its current item (and its wire form) and the (kind, time) steps still to come."""

    __slots__ = ("item", "steps", "wire")

    def __init__(self, item: Item, steps: deque[tuple[str, int]]) -> None:
        self.item = item
        self.wire = attribute_values(item)
        self.steps = steps


def _open(rng: random.Random, catalog: Catalog, config: LifecycleConfig, at_ms: int) -> _OpenOrder:
    item = new_order(rng, catalog, config, iso_ms(at_ms))
    steps: deque[tuple[str, int]] = deque([("placed", at_ms)])
    t = at_ms
    for kind in plan_path(rng, config):
        low, high = config.delays_ms[kind]
        t += rng.randint(low, high)
        steps.append((kind, t))
    return _OpenOrder(item, steps)


def _advance(rng: random.Random, order: _OpenOrder, kind: str, at_ms: int) -> Operation:
    """Apply one step to an open order and return its operation."""
    ts = iso_ms(at_ms)
    order_id = str(order.item["order_id"])
    if kind == "deleted":
        return Operation(kind, order_id, ts, None)
    if kind == "placed":
        return Operation(kind, order_id, ts, order.item, order.wire)
    changes: dict[str, str | Decimal] = {"updated_ts": ts}
    if kind == "corrected":
        changes.update(corrected(rng, order.item))
    else:
        changes["status"] = STATUS_OF[kind]
    order.item = {**order.item, **changes}
    order.wire = {**order.wire, **attribute_values(changes)}
    return Operation(kind, order_id, ts, order.item, order.wire)


def simulate(
    seed: int,
    orders: int,
    start: datetime,
    config: LifecycleConfig | None = None,
    catalog: Catalog | None = None,
) -> Iterator[Operation]:
    """All operations of `orders` orders, time-ordered; the same arguments give the same stream.

    Lazy: only open orders are held, so memory follows the orders in flight, not the run.
    """
    config = config or LifecycleConfig()
    catalog = catalog or build_catalog(seed)
    rng = random.Random(f"orders/{seed}")
    gaps = arrival_gaps(seed, config)
    start_ms = to_epoch_ms(start)
    heap: list[tuple[int, int, _OpenOrder]] = []
    next_arrival, opened = start_ms, 0
    while opened < orders or heap:
        if opened < orders and (not heap or next_arrival <= heap[0][0]):
            order = _open(rng, catalog, config, next_arrival)
            heapq.heappush(heap, (next_arrival, opened, order))
            opened += 1
            next_arrival += next(gaps)
            continue
        at_ms, index, order = heapq.heappop(heap)
        kind, _ = order.steps.popleft()
        yield _advance(rng, order, kind, at_ms)
        if order.steps:
            heapq.heappush(heap, (order.steps[0][1], index, order))


def apply_operation(state: dict[str, Item], op: Operation) -> None:
    """Fold one operation into a {order_id: item} table, as DynamoDB would."""
    if op.item is None:
        state.pop(op.order_id, None)
    else:
        state[op.order_id] = op.item


def final_state(ops: Iterable[Operation]) -> dict[str, Item]:
    """The live items after `ops`: what a Scan of the table must return, keyed by order_id."""
    state: dict[str, Item] = {}
    for op in ops:
        apply_operation(state, op)
    return {order_id: dict(item) for order_id, item in state.items()}
