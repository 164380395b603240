"""A large, realistic lake written directly as Parquet in the lake layout (no pipeline needed).

Pushing millions of change events through the emulated pipeline would take hours; the analytics
figures need the lake, not the journey. Rows follow lake/schema.py ROW_SCHEMA and the order
lifecycle: each order is placed (INSERT) and moves PLACED -> PAID -> SHIPPED -> DELIVERED
(-> RETURNED), or is cancelled, or stalls; 3% are deleted at the end (REMOVE with the old
image). Customers, products and prices come from the generator's seeded catalog. Events land in
the partition of their event time, so lifecycles crossing midnight spill into the next day, and
each day is cut into `objects_per_day` objects named as Firehose names them.

Built column-wise with pyarrow.compute (take over small lookup arrays), one day at a time, so
memory stays at about one day of rows.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from generator.model import CHANNELS, DISCOUNTS, NO_DISCOUNT, PAYMENT_METHODS, build_catalog, order_total
from lake.schema import ROW_SCHEMA

DAY_MS = 86_400_000
STREAM = "sales-orders-firehose"
# (weight, statuses); DELETE is a REMOVE event carrying the previous state.
PATHS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (2, ("PLACED",)),
    (2, ("PLACED", "PAID")),
    (2, ("PLACED", "PAID", "SHIPPED")),
    (8, ("PLACED", "CANCELLED")),
    (4, ("PLACED", "PAID", "CANCELLED")),
    (70, ("PLACED", "PAID", "SHIPPED", "DELIVERED")),
    (6, ("PLACED", "PAID", "SHIPPED", "DELIVERED", "RETURNED")),
    (3, ("PLACED", "PAID", "SHIPPED", "DELIVERED", "DELETE")),
    (3, ("PLACED", "CANCELLED", "DELETE")),
)
QUANTITIES = ((1, 60), (2, 20), (3, 10), (4, 6), (5, 4))
DISCOUNT_SHARE = 0.30


def mean_events_per_order() -> float:
    total = sum(w for w, _ in PATHS)
    return sum(w * len(p) for w, p in PATHS) / total


def weighted_lookup(weights: list[float], size: int = 1000) -> list[int]:
    """Indexes repeated in proportion to their weights: a uniform draw into it is a weighted draw."""
    total = sum(weights)
    out: list[int] = []
    for i, w in enumerate(weights):
        out += [i] * round(size * w / total)
    return out or [0]


@dataclass(frozen=True)
class Lookups:
    """The small arrays every day's rows are taken from."""

    path_lookup: pa.Array
    path_len: pa.Array
    path_offset: pa.Array
    flat_status: pa.Array
    flat_type: pa.Array
    flat_back: pa.Array  # 1 for REMOVE: its updated_ts is the previous step's
    customers: pa.Table
    product_lookup: pa.Array
    products: pa.Table
    quantity_lookup: pa.Array
    discounts: pa.Array
    totals: pa.Array  # (product * 5 + quantity - 1) * len(discounts) + discount
    channel_lookup: pa.Array
    payment_lookup: pa.Array


def lookups(seed: int) -> Lookups:
    catalog = build_catalog(seed)
    flat_status, flat_type, flat_back, offsets = [], [], [], []
    for _, path in PATHS:
        offsets.append(len(flat_status))
        for j, status in enumerate(path):
            removed = status == "DELETE"
            flat_status.append(path[j - 1] if removed else status)
            flat_type.append("REMOVE" if removed else ("INSERT" if j == 0 else "MODIFY"))
            flat_back.append(1 if removed else 0)
    discounts = [NO_DISCOUNT, *DISCOUNTS]
    totals = [order_total(q, p.unit_price, d) for p in catalog.products for q, _ in QUANTITIES for d in discounts]
    weights = [b - a for a, b in zip((0.0, *catalog.product_cum_weights), catalog.product_cum_weights, strict=False)]
    return Lookups(
        path_lookup=pa.array(weighted_lookup([w for w, _ in PATHS]), pa.int32()),
        path_len=pa.array([len(p) for _, p in PATHS], pa.int32()),
        path_offset=pa.array(offsets, pa.int32()),
        flat_status=pa.array(flat_status), flat_type=pa.array(flat_type), flat_back=pa.array(flat_back, pa.int64()),
        customers=pa.table({"customer_id": [c.customer_id for c in catalog.customers],
                            "customer_name": [c.name for c in catalog.customers],
                            "customer_region": [c.region for c in catalog.customers]}),
        product_lookup=pa.array(weighted_lookup(weights, 5000), pa.int32()),
        products=pa.table({"product_id": [p.product_id for p in catalog.products],
                           "product_name": [p.name for p in catalog.products],
                           "category": [p.category for p in catalog.products],
                           "unit_price": pa.array([p.unit_price for p in catalog.products], pa.decimal128(12, 2))}),
        quantity_lookup=pa.array(weighted_lookup([w for _, w in QUANTITIES], 100), pa.int32()),
        discounts=pa.array([d.quantize(Decimal("0.0001")) for d in discounts], pa.decimal128(5, 4)),
        totals=pa.array(totals, pa.decimal128(14, 2)),
        channel_lookup=pa.array([list(CHANNELS)[i] for i in weighted_lookup(list(CHANNELS.values()), 100)]),
        payment_lookup=pa.array([list(PAYMENT_METHODS)[i]
                                 for i in weighted_lookup(list(PAYMENT_METHODS.values()), 100)]),
    )


def _draw(uniform: pa.Array, size: int) -> pa.Array:
    """Uniform doubles in [0, 1) -> int32 indexes in [0, size)."""
    return pc.cast(pc.floor(pc.multiply(uniform, size)), pa.int32())


def _ms(ts: pa.Array) -> pa.Array:
    return pc.cast(ts, pa.timestamp("ms"))


def day_events(day: datetime, orders: int, lk: Lookups, seed: int, first_sequence: int) -> pa.Table:
    """Every event of the orders placed on `day` (some fall on the next day), sorted by event time."""
    rng = random.Random(f"biglake/{seed}/{day:%Y%m%d}")
    u = pc.random(orders * 9, initializer=rng.getrandbits(63))
    col = [u.slice(i * orders, orders) for i in range(9)]
    path = pc.take(lk.path_lookup, _draw(col[0], len(lk.path_lookup)))
    lengths = pc.take(lk.path_len, path).to_pylist()
    order_of = pa.array([i for i, n in enumerate(lengths) for _ in range(n)], pa.int32())
    step = pa.array([j for n in lengths for j in range(n)], pa.int64())
    events = len(order_of)

    customer = _draw(col[1], lk.customers.num_rows)
    product = pc.take(lk.product_lookup, _draw(col[2], len(lk.product_lookup)))
    quantity_index = pc.take(lk.quantity_lookup, _draw(col[3], len(lk.quantity_lookup)))
    discount = pc.if_else(pc.less(col[4], DISCOUNT_SHARE),
                          pc.add(_draw(col[5], len(lk.discounts) - 1), 1), pa.scalar(0, pa.int32()))
    combo = pc.add(pc.multiply(pc.add(pc.multiply(pc.cast(product, pa.int64()), 5), pc.cast(quantity_index,
                                                                                            pa.int64())),
                               len(lk.discounts)), pc.cast(discount, pa.int64()))
    start_ms = int(day.replace(tzinfo=UTC).timestamp() * 1000)
    placed = pc.add(pc.cast(_draw(col[6], DAY_MS), pa.int64()), start_ms)
    gap = pc.add(pc.cast(_draw(col[7], 3_600_000), pa.int64()), 60_000)  # 1 min to 1 h between steps
    order_ids = pa.array([str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(orders)])

    flat = pc.add(pc.cast(pc.take(lk.path_offset, pc.take(path, order_of)), pa.int64()), step)
    back = pc.take(lk.flat_back, flat)
    e_gap = pc.take(gap, order_of)
    e_placed = pc.take(placed, order_of)
    event_ms = pc.add(e_placed, pc.multiply(step, e_gap))
    updated_ms = pc.subtract(event_ms, pc.multiply(back, e_gap))
    lag = pc.add(pc.cast(_draw(pc.random(events, initializer=rng.getrandbits(63)), 2800), pa.int64()), 200)
    e_product = pc.take(product, order_of)
    e_customer = pc.take(customer, order_of)
    columns: dict[str, Any] = {
        "order_id": pc.take(order_ids, order_of),
        "customer_id": pc.take(lk.customers["customer_id"], e_customer),
        "customer_name": pc.take(lk.customers["customer_name"], e_customer),
        "customer_region": pc.take(lk.customers["customer_region"], e_customer),
        "product_id": pc.take(lk.products["product_id"], e_product),
        "product_name": pc.take(lk.products["product_name"], e_product),
        "category": pc.take(lk.products["category"], e_product),
        "quantity": pc.cast(pc.add(pc.take(quantity_index, order_of), 1), pa.int64()),
        "unit_price": pc.take(lk.products["unit_price"], e_product),
        "discount": pc.take(lk.discounts, pc.take(discount, order_of)),
        "order_total": pc.take(lk.totals, pc.take(combo, order_of)),
        "currency": pa.repeat(pa.scalar("USD"), events),
        "status": pc.take(lk.flat_status, flat),
        "payment_method": pc.take(lk.payment_lookup, pc.take(_draw(col[8], len(lk.payment_lookup)), order_of)),
        "channel": pc.take(lk.channel_lookup, pc.take(_draw(col[5], len(lk.channel_lookup)), order_of)),
        "order_ts": _ms(e_placed),
        "updated_ts": _ms(updated_ms),
        "event_type": pc.take(lk.flat_type, flat),
        "event_id": pa.array([f"{rng.getrandbits(128):032x}" for _ in range(events)]),
        "sequence_number": pa.repeat(pa.scalar(""), events),  # set once sorted by event time
        "event_ts": _ms(event_ms),
        "arrival_ts": _ms(pc.add(event_ms, lag)),
        "is_deleted": pc.equal(pc.take(lk.flat_type, flat), "REMOVE"),
    }
    table = pa.table({f.name: pc.cast(columns[f.name], f.type) for f in ROW_SCHEMA}, schema=ROW_SCHEMA)
    table = table.sort_by([("event_ts", "ascending")])
    ranks = pc.add(pa.array(range(events), pa.int64()), first_sequence)
    sequence = pc.binary_join_element_wise("1", pc.utf8_lpad(pc.cast(ranks, pa.string()), 20, "0"), "")
    return table.set_column(ROW_SCHEMA.get_field_index("sequence_number"), "sequence_number", sequence)


def split_by_day(table: pa.Table) -> Iterator[tuple[datetime, pa.Table]]:
    """A table sorted by event_ts -> (UTC day, its rows) in order."""
    ms = pc.cast(table["event_ts"], pa.int64())
    start = 0
    while start < table.num_rows:
        first = ms[start].as_py()
        day_start = first - first % DAY_MS
        end = start + pc.sum(pc.less(ms.slice(start), day_start + DAY_MS)).as_py()
        yield datetime.fromtimestamp(day_start / 1000, UTC), table.slice(start, end - start)
        start = end


def object_key(day: datetime, last_event: datetime, token: str) -> str:
    """year=/month=/day=/<stream>-1-<time of the object's last event>-<token>.parquet, as Firehose names it."""
    return f"year={day:%Y}/month={day:%m}/day={day:%d}/{STREAM}-1-{last_event:%Y-%m-%d-%H-%M-%S}-{token}.parquet"


def write_objects(root: Path, day: datetime, rows: pa.Table, objects: int, rng: random.Random) -> list[str]:
    """Cut a day's rows into `objects` Parquet files under root/year=/month=/day=/; return their keys."""
    keys = []
    objects = max(1, min(objects, rows.num_rows))
    size, extra = divmod(rows.num_rows, objects)
    start = 0
    for i in range(objects):
        count = size + (1 if i < extra else 0)
        part = rows.slice(start, count)
        start += count
        last = part["event_ts"][-1].as_py()
        key = object_key(day, last, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path, compression="snappy")
        keys.append(key)
    return keys


@dataclass
class LakeSpec:
    events: int
    days: int
    objects_per_day: int
    small_files: int
    small_rows: int
    seed: int = 11
    first_day: datetime = datetime(2026, 1, 1)

    @property
    def small_day(self) -> datetime:
        """The many-small-files day, right after the regular ones."""
        return self.first_day + timedelta(days=self.days + 1)


def build(root: Path, spec: LakeSpec) -> dict[str, Any]:
    """Write the lake under `root`; return what was written (rows, objects, bytes, per day)."""
    lk = lookups(spec.seed)
    names = random.Random(f"biglake-names/{spec.seed}")
    per_order = mean_events_per_order()
    orders_per_day = max(int(spec.events / spec.days / per_order), 1)
    written: dict[str, Any] = {"rows": 0, "objects": 0, "bytes": 0, "days": {}}

    def emit(day: datetime, rows: pa.Table, objects: int) -> None:
        keys = write_objects(root, day, rows, objects, names)
        info = written["days"].setdefault(f"{day:%Y-%m-%d}", {"rows": 0, "objects": 0})
        info["rows"] += rows.num_rows
        info["objects"] += len(keys)
        written["rows"] += rows.num_rows
        written["objects"] += len(keys)

    sequence = 0
    for d in range(spec.days):
        day = spec.first_day + timedelta(days=d)
        table = day_events(day, orders_per_day, lk, spec.seed, sequence)
        sequence += table.num_rows
        for event_day, rows in split_by_day(table):
            # the placement day gets its share of objects; a spill past midnight is one object
            emit(event_day, rows, spec.objects_per_day if event_day.date() == day.date() else 1)
    if spec.small_files:
        orders = max(int(spec.small_files * spec.small_rows / per_order), 1)
        table = day_events(spec.small_day, orders, lk, spec.seed + 1, sequence)
        for event_day, rows in split_by_day(table):
            if event_day.date() == spec.small_day.date():
                emit(event_day, rows, spec.small_files)
    written["bytes"] = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    return written


def upload(s3: Any, bucket: str, prefix: str, root: Path, threads: int = 8) -> int:
    """PUT every file under root as s3://bucket/<prefix><relative path>; returns the object count."""
    paths = sorted(root.rglob("*.parquet"))

    def put(path: Path) -> None:
        s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(root).as_posix(), Body=path.read_bytes())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, paths))
    return len(paths)
