-- title: Cancellation and return rates
-- Over the current state: the fraction of all current orders that are CANCELLED or RETURNED.
SELECT
    sum(orders) AS orders,
    sum(cancellations) AS cancelled,
    sum(returns) AS returned,
    round(CAST(sum(cancellations) AS double) / nullif(sum(orders), 0), 4) AS cancellation_rate,
    round(CAST(sum(returns) AS double) / nullif(sum(orders), 0), 4) AS return_rate
FROM sales_daily
