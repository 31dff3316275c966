/* COUNTIF, COUNT(*), COUNT(DISTINCT) and APPROX_COUNT_DISTINCT (exact on so few values). */
SELECT
  COUNT(*) AS plays,
  COUNT_IF(ms_played >= 30000) AS streams,
  COUNT_IF(skipped) AS skips,
  COUNT(DISTINCT user_pseudonym) AS listeners,
  APPROX_COUNT_DISTINCT(user_pseudonym) AS approx_listeners,
  COUNT(DISTINCT track_id) AS tracks
FROM fixture.plays
