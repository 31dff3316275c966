/* COUNTIF, COUNT(*), COUNT(DISTINCT) and APPROX_COUNT_DISTINCT (exact on so few values). */
/* COUNTIF is 0, never NULL, when no condition is TRUE and all are NULL (DuckDB's COUNT_IF gives NULL). */
SELECT
  COUNT(*) AS plays,
  COALESCE(COUNT_IF(ms_played >= 30000), 0) AS streams,
  COALESCE(COUNT_IF(skipped), 0) AS skips,
  COUNT(DISTINCT user_pseudonym) AS listeners,
  APPROX_COUNT_DISTINCT(user_pseudonym) AS approx_listeners,
  COUNT(DISTINCT track_id) AS tracks,
  COALESCE(COUNT_IF(CAST(NULL AS BOOLEAN)), 0) AS none_known
FROM fixture.plays
