/* Aggregates and casts: SUM/AVG/MIN/MAX, LOGICAL_OR/AND, STRING_AGG, ANY_VALUE, NUMERIC, ROUND. */
SELECT
  track_id,
  SUM(ms_played) AS ms_played,
  AVG(ms_played) AS avg_ms,
  MIN(ms_played) AS min_ms,
  MAX(ms_played) AS max_ms,
  BOOL_OR(CAST(skipped AS BOOLEAN)) AS any_skip,
  BOOL_AND(CAST(skipped AS BOOLEAN)) AS all_skips,
  LISTAGG(event_id, ','
  ORDER BY
    event_id NULLS FIRST) AS events,
  SUM(price) AS price,
  ROUND(MAX(score), 0) AS max_score,
  CAST(SUM(ms_played) AS TEXT) AS ms_text,
  CAST(MAX(ms_played) / 1000 AS BIGINT) AS max_seconds,
  ANY_VALUE(track_id) AS any_track
FROM fixture.plays
GROUP BY
  track_id
ORDER BY
  track_id NULLS FIRST
