-- title: Cancellation and return rates
-- Over the current state: the fraction of all current orders that are CANCELLED or RETURNED.
SELECT
    coalesce(sum(orders), 0) AS orders,  -- 0, not NULL, on an empty lake (the rates stay NULL)
    coalesce(sum(cancellations), 0) AS cancelled,
    coalesce(sum(returns), 0) AS returned,
    round(CAST(sum(cancellations) AS double) / nullif(sum(orders), 0), 4) AS cancellation_rate,
    round(CAST(sum(returns) AS double) / nullif(sum(orders), 0), 4) AS return_rate
FROM sales_daily
