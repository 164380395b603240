-- title: Orders and revenue by channel, last 7 days of data
-- A sample of the queries/ folder: every .sql file here runs in `make analyze` beside the KPIs and gets
-- a table on the dashboard and in the terminal. Write Athena SQL (Trino dialect) over the catalog's
-- table (sales_orders_db.sales_orders_cdc) or the views sales_orders_cdc, sales_orders_current and
-- sales_daily; one query per file, the `-- title:` line names it.
--
-- The 7 days end at the latest order day in the lake (not today), so a lake seeded last month still
-- answers. Revenue counts orders that are neither cancelled nor returned, as the KPIs do.
WITH last_day AS (
    SELECT max(CAST(order_ts AS date)) AS day
    FROM sales_orders_current
)
SELECT
    o.channel,
    count(*) AS orders,
    count_if(o.status NOT IN ('CANCELLED', 'RETURNED')) AS valid_orders,
    sum(CASE WHEN o.status NOT IN ('CANCELLED', 'RETURNED') THEN o.order_total ELSE 0 END) AS revenue,
    min(CAST(o.order_ts AS date)) AS first_day,
    max(CAST(o.order_ts AS date)) AS last_day
FROM sales_orders_current AS o
CROSS JOIN last_day AS l
WHERE CAST(o.order_ts AS date) > date_add('day', -7, l.day)
GROUP BY o.channel
ORDER BY revenue DESC, o.channel
