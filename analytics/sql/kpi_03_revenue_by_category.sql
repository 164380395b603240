-- title: Revenue by category
-- Valid orders (neither cancelled nor returned) of the current state, per product category.
SELECT
    category,
    count(*) AS orders,
    sum(quantity) AS units,
    sum(order_total) AS revenue
FROM sales_orders_current
WHERE status NOT IN ('CANCELLED', 'RETURNED')
GROUP BY category
ORDER BY revenue DESC, category
