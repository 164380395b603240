-- title: Current state of every order
-- The latest event per order_id wins. Sequence numbers are decimal strings of up to 40 digits,
-- so they are compared left-padded to 40 characters, which orders them as numbers. The same
-- event delivered twice (at-least-once delivery) carries the same sequence number and event_id:
-- ranking by arrival_ts last keeps the first arrival and collapses the duplicates. An order whose
-- latest event is a REMOVE (is_deleted) is excluded.
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
        c.*,
        row_number() OVER (
            PARTITION BY c.order_id
            ORDER BY lpad(c.sequence_number, 40, '0') DESC, c.event_id DESC, c.arrival_ts ASC
        ) AS event_rank
    FROM sales_orders_cdc AS c
) AS ranked
WHERE event_rank = 1
  AND NOT coalesce(is_deleted, false)
