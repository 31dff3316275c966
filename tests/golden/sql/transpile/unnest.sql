/* UNNEST of a repeated column, correlated; WITH OFFSET is 0-based. */
SELECT
  p.event_id,
  track,
  position
FROM fixture.plays AS p
CROSS JOIN (
  SELECT
    UNNEST(p.track_ids) AS track,
    GENERATE_SUBSCRIPTS(p.track_ids, 1) - 1 AS position
) AS _unnest0
ORDER BY
  p.event_id NULLS FIRST,
  position NULLS FIRST
