/* LEFT JOIN UNNEST keeps rows with empty or NULL arrays; fields of a repeated RECORD. */
SELECT
  event_id,
  result.position,
  result.item_id
FROM fixture.plays
LEFT JOIN UNNEST(results) AS _t0(result)
  ON TRUE
ORDER BY
  event_id NULLS FIRST,
  result.position NULLS FIRST
