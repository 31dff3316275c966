/* SAFE_DIVIDE is NULL when the divisor is 0; COUNTIF ignores NULL conditions. */
SELECT
  track_id,
  CASE
    WHEN COALESCE(COUNT_IF(skipped), 0) <> 0
    THEN SUM(ms_played) / COALESCE(COUNT_IF(skipped), 0)
    ELSE NULL
  END AS ms_per_skip,
  CASE WHEN COUNT(*) <> 0 THEN COALESCE(COUNT_IF(skipped), 0) / COUNT(*) ELSE NULL END AS skip_rate
FROM fixture.plays
GROUP BY
  track_id
ORDER BY
  track_id NULLS FIRST
