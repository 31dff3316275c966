/* DATE(timestamp) is the UTC date; comparing it with @run_date selects the day's events. */
SELECT
  event_id,
  CAST(event_time AS DATE) AS event_date,
  CAST(CAST(event_time AS TIMESTAMP) AT TIME ZONE 'UTC' AT TIME ZONE 'America/New_York' AS DATE) AS new_york_date
FROM fixture.plays
WHERE
  CAST(event_time AS DATE) = $run_date
ORDER BY
  event_id NULLS FIRST
