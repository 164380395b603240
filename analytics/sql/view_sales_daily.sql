-- title: Daily facts over the current state
-- One row per order day: the UTC date of order_ts, so an order counts on the day it was placed,
-- with the status it has now.
--   orders           every current order placed that day, whatever its status
--   valid_orders     orders that are neither CANCELLED nor RETURNED: the ones that are sales
--   revenue          net revenue: sum(order_total) of valid orders (order_total is after discount;
--                    cancelled and returned orders bring no revenue)
--   units            sum(quantity) of valid orders
--   avg_order_value  revenue / valid_orders, a double rounded to cents (NULL without valid orders)
--   cancellations    orders whose current status is CANCELLED
--   returns          orders whose current status is RETURNED
SELECT
    CAST(order_ts AS date) AS order_date,
    count(*) AS orders,
    count_if(status NOT IN ('CANCELLED', 'RETURNED')) AS valid_orders,
    sum(CASE WHEN status NOT IN ('CANCELLED', 'RETURNED') THEN order_total ELSE 0 END) AS revenue,
    sum(CASE WHEN status NOT IN ('CANCELLED', 'RETURNED') THEN quantity ELSE 0 END) AS units,
    round(
        CAST(sum(CASE WHEN status NOT IN ('CANCELLED', 'RETURNED') THEN order_total ELSE 0 END) AS double)
        / nullif(count_if(status NOT IN ('CANCELLED', 'RETURNED')), 0),
        2
    ) AS avg_order_value,
    count_if(status = 'CANCELLED') AS cancellations,
    count_if(status = 'RETURNED') AS returns
FROM sales_orders_current
GROUP BY CAST(order_ts AS date)
