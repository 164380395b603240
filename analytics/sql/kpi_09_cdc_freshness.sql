-- title: CDC freshness (change to Firehose)
-- Delay from the change in DynamoDB (event_ts, the stream record's time) to the record's
-- arrival on the Kinesis stream Firehose reads (arrival_ts), in milliseconds, over every delivered row (redeliveries included: each one
-- is a real arrival). Percentiles are approximate, as Athena's approx_percentile is. Snapshot rows
-- (make backfill) are not changes: their event_ts is the snapshot's start, so they are left out.
SELECT
    count(*) AS events,
    approx_percentile(date_diff('millisecond', event_ts, arrival_ts), 0.5) AS p50_ms,
    approx_percentile(date_diff('millisecond', event_ts, arrival_ts), 0.95) AS p95_ms,
    max(date_diff('millisecond', event_ts, arrival_ts)) AS max_ms
FROM sales_orders_cdc
WHERE coalesce(event_type, '') <> 'SNAPSHOT'
