-- title: Order status funnel
-- How many orders ever reached each stage, read from the change log (every status an order
-- had, including orders since deleted). reached_rate is the fraction of placed orders.
WITH reached AS (
    SELECT status, count(DISTINCT order_id) AS orders
    FROM sales_orders_cdc
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
