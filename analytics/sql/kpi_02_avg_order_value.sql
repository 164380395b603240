-- title: Average order value
-- Over all valid orders (neither cancelled nor returned): net revenue / valid orders.
SELECT
    coalesce(sum(valid_orders), 0) AS valid_orders,  -- 0, not NULL, on an empty lake
    coalesce(sum(revenue), 0) AS revenue,
    round(CAST(sum(revenue) AS double) / nullif(sum(valid_orders), 0), 2) AS avg_order_value
FROM sales_daily
