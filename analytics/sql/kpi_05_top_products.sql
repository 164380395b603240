-- title: Top 10 products by revenue
-- Valid orders only; ties broken by product_id so the list is stable.
SELECT
    product_id,
    max(product_name) AS product_name,
    sum(quantity) AS units,
    sum(order_total) AS revenue
FROM sales_orders_current
WHERE status NOT IN ('CANCELLED', 'RETURNED')
GROUP BY product_id
ORDER BY revenue DESC, product_id
LIMIT 10
