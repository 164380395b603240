-- title: Revenue and orders per day
-- Net revenue and order counts per order day (see view_sales_daily.sql for the definitions).
SELECT
    order_date AS day,
    orders,
    valid_orders,
    revenue,
    units,
    avg_order_value
FROM sales_daily
ORDER BY order_date
