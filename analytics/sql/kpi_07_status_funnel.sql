-- title: Order status funnel
-- How many orders ever reached each stage, read from the change log (every status an order
-- had, including orders since deleted). reached_rate is the fraction of placed orders.
-- A snapshot row (make backfill) shows the status an order had then, not its history: an order found
-- SHIPPED was placed and paid, one found DELIVERED or RETURNED was also shipped and delivered, one
-- found CANCELLED was placed (whether it was paid first is not known), so it counts for those stages.
WITH reached AS (
    SELECT status, count(DISTINCT order_id) AS orders
    FROM (
        SELECT order_id, status
        FROM sales_orders_cdc
        WHERE coalesce(event_type, '') <> 'SNAPSHOT'
        UNION ALL
        SELECT c.order_id, implied.stage AS status
        FROM sales_orders_cdc AS c
        JOIN (VALUES ('PLACED', 'PLACED'), ('PAID', 'PLACED'), ('PAID', 'PAID'),
                     ('SHIPPED', 'PLACED'), ('SHIPPED', 'PAID'), ('SHIPPED', 'SHIPPED'),
                     ('DELIVERED', 'PLACED'), ('DELIVERED', 'PAID'), ('DELIVERED', 'SHIPPED'),
                     ('DELIVERED', 'DELIVERED'), ('RETURNED', 'PLACED'), ('RETURNED', 'PAID'),
                     ('RETURNED', 'SHIPPED'), ('RETURNED', 'DELIVERED'), ('CANCELLED', 'PLACED'))
            AS implied (status, stage) ON c.status = implied.status
        WHERE c.event_type = 'SNAPSHOT'
    ) AS statuses
    GROUP BY status
)
SELECT
    s.step,
    s.stage,
    coalesce(r.orders, 0) AS orders,
    round(
        CAST(coalesce(r.orders, 0) AS double)
        / nullif((SELECT max(orders) FROM reached WHERE status = 'PLACED'), 0),
        4
    ) AS reached_rate
FROM (VALUES (1, 'PLACED'), (2, 'PAID'), (3, 'SHIPPED'), (4, 'DELIVERED')) AS s (step, stage)
LEFT JOIN reached AS r ON r.status = s.stage
ORDER BY s.step
