/* A dense calendar from GENERATE_DATE_ARRAY, left-joined to the plays of each day. */
WITH days AS (
  SELECT
    day
  FROM UNNEST(CAST(GENERATE_SERIES(
    CAST($run_date - INTERVAL '2' DAY AS DATE),
    CAST($run_date + INTERVAL '1' DAY AS DATE),
    INTERVAL '1' DAY
  ) AS DATE[])) AS _t0(day)
)
SELECT
  d.day,
  COUNT(p.event_id) AS plays
FROM days AS d
LEFT JOIN fixture.plays AS p
  ON CAST(p.event_time AS DATE) = d.day
GROUP BY
  d.day
ORDER BY
  d.day NULLS FIRST
