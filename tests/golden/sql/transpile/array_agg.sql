/* ARRAY_AGG with ORDER BY, IGNORE NULLS and LIMIT; ARRAY_LENGTH; OFFSET/ORDINAL/SAFE_OFFSET. */
SELECT
  track_id,
  ARRAY_AGG(event_id ORDER BY event_time NULLS FIRST) AS events,
  LIST_SLICE(ARRAY_AGG(score ORDER BY score DESC) FILTER(WHERE score IS NOT NULL), 1, 1) AS best_score,
  ARRAY_LENGTH(ARRAY_AGG(event_id)) AS event_count,
  ARRAY_AGG(event_id ORDER BY event_time NULLS FIRST)[1] AS first_event,
  ARRAY_AGG(event_id ORDER BY event_time NULLS FIRST)[2] AS second_event,
  ARRAY_AGG(event_id ORDER BY event_time NULLS FIRST)[6] AS no_event
FROM fixture.plays
GROUP BY
  track_id
ORDER BY
  track_id NULLS FIRST
