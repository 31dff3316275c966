/* EXTRACT as BigQuery numbers parts: DAYOFWEEK 1 = Sunday; WEEK counts Sunday weeks from 0 */
/* (days before the year's first Sunday are week 0); WEEK(MONDAY); ISOWEEK; DATE part. */
SELECT
  day,
  (
    EXTRACT(DAYOFWEEK FROM day) + 1
  ) AS weekday,
  CAST(STRFTIME(day, '%U') AS BIGINT) AS week,
  CAST(STRFTIME(day, '%W') AS BIGINT) AS monday_week,
  EXTRACT(WEEK FROM day) AS iso_week,
  EXTRACT(DAYOFYEAR FROM day) AS day_of_year,
  EXTRACT(YEAR FROM day) AS year,
  EXTRACT(MONTH FROM day) AS month,
  EXTRACT(HOUR FROM event_time) AS hour,
  CAST(event_time AS DATE) AS date
FROM fixture.plays
WHERE
  event_id IN ('e1', 'e2')
ORDER BY
  day NULLS FIRST
