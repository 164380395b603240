-- title: Average order value
-- Over all valid orders (neither cancelled nor returned): net revenue / valid orders.
SELECT
    sum(valid_orders) AS valid_orders,
    sum(revenue) AS revenue,
    round(CAST(sum(revenue) AS double) / nullif(sum(valid_orders), 0), 2) AS avg_order_value
FROM sales_daily
