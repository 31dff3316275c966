/* Window functions: ROW_NUMBER, RANK, LAG, LEAD and a running SUM per track. */
SELECT
  event_id,
  track_id,
  ROW_NUMBER() OVER (PARTITION BY track_id ORDER BY event_time NULLS FIRST) AS nth,
  RANK() OVER (PARTITION BY track_id ORDER BY event_time NULLS FIRST) AS rank,
  LAG(event_id) OVER (PARTITION BY track_id ORDER BY event_time NULLS FIRST) AS previous,
  LEAD(event_id) OVER (PARTITION BY track_id ORDER BY event_time NULLS FIRST) AS next,
  SUM(ms_played) OVER (
    PARTITION BY track_id
    ORDER BY event_time NULLS FIRST
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ) AS running_ms
FROM fixture.plays
ORDER BY
  event_id NULLS FIRST
