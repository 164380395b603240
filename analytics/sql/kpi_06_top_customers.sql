-- title: Top 10 customers by revenue
-- Valid orders only; ties broken by customer_id so the list is stable.
SELECT
    customer_id,
    max(customer_name) AS customer_name,
    count(*) AS orders,
    sum(order_total) AS revenue
FROM sales_orders_current
WHERE status NOT IN ('CANCELLED', 'RETURNED')
GROUP BY customer_id
ORDER BY revenue DESC, customer_id
LIMIT 10
