-- title: Revenue by region
-- Valid orders (neither cancelled nor returned) of the current state, per customer region.
SELECT
    customer_region,
    count(*) AS orders,
    sum(order_total) AS revenue
FROM sales_orders_current
WHERE status NOT IN ('CANCELLED', 'RETURNED')
GROUP BY customer_region
ORDER BY revenue DESC, customer_region
