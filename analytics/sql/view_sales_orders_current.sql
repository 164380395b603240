-- title: Current state of every order
-- The latest event per order_id wins. Stream events compare by sequence number: decimal strings of
-- up to 40 digits, compared left-padded to 40 characters, which orders them as numbers. The same
-- event delivered twice (at-least-once delivery) carries the same sequence number and event_id:
-- ranking by arrival_ts last keeps the first arrival and collapses the duplicates.
-- Snapshot rows (event_type 'SNAPSHOT', written by make backfill) hold an order as the table held it
-- when the snapshot began (event_ts, floored to the second); among them the latest snapshot wins. A
-- snapshot row is older than every stream change made after the snapshot began: it wins over the
-- order's latest stream event only when its second is later than that event's, so a stream change in
-- the snapshot's own second wins (docs/backfill.md argues why nothing is lost or resurrected).
-- An order whose winning row is a delete (is_deleted) is excluded.
SELECT
    order_id,
    customer_id,
    customer_name,
    customer_region,
    product_id,
    product_name,
    category,
    quantity,
    unit_price,
    discount,
    order_total,
    currency,
    status,
    payment_method,
    channel,
    order_ts,
    updated_ts,
    event_type,
    event_id,
    sequence_number,
    event_ts,
    arrival_ts
FROM (
    SELECT
        latest.*,
        row_number() OVER (
            PARTITION BY latest.order_id
            ORDER BY date_trunc('second', latest.event_ts) DESC, latest.is_snapshot ASC
        ) AS event_rank
    FROM (
        SELECT
            kinds.*,
            row_number() OVER (
                PARTITION BY kinds.order_id, kinds.is_snapshot
                ORDER BY CASE WHEN kinds.is_snapshot THEN kinds.event_ts END DESC,
                         lpad(kinds.sequence_number, 40, '0') DESC, kinds.event_id DESC, kinds.arrival_ts ASC
            ) AS kind_rank
        FROM (
            SELECT c.*, coalesce(c.event_type = 'SNAPSHOT', false) AS is_snapshot
            FROM sales_orders_cdc AS c
        ) AS kinds
    ) AS latest
    WHERE latest.kind_rank = 1
) AS ranked
WHERE event_rank = 1
  AND NOT coalesce(is_deleted, false)
