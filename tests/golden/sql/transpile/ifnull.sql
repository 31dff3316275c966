/* IFNULL, COALESCE, IF, NULLIF and CASE. */
SELECT
  event_id,
  COALESCE(user_pseudonym, 'anonymous') AS listener,
  COALESCE(score, 0.0) AS score,
  CASE
    WHEN skipped IS NULL
    THEN 'unknown'
    ELSE CASE WHEN skipped THEN 'skip' ELSE 'play' END
  END AS outcome,
  NULLIF(ms_played, 0) AS ms_played,
  CASE WHEN ms_played >= 30000 THEN 'long' ELSE 'short' END AS length
FROM fixture.plays
WHERE
  event_id IN ('e3', 'e4')
ORDER BY
  event_id NULLS FIRST
