/* TIMESTAMP_TRUNC keeps a TIMESTAMP (UTC); WEEK starts on Sunday, like BigQuery. */
SELECT
  event_id,
  DATE_TRUNC('HOUR', event_time) AS hour,
  DATE_TRUNC('DAY', event_time) AS day,
  DATE_TRUNC('WEEK', event_time + INTERVAL '1' DAY) + INTERVAL '-1' DAY AS week,
  DATE_TRUNC('MONTH', event_time) AS month
FROM fixture.plays
WHERE
  event_id IN ('e1', 'e3')
ORDER BY
  event_id NULLS FIRST
