/* STRUCT construction with named fields, field access on RECORD columns and on a STRUCT. */
SELECT
  event_id,
  {'id': track_id, 'ms': ms_played} AS track,
  device.os AS os,
  {'id': track_id}.id AS track_id
FROM fixture.plays
WHERE
  event_id IN ('e1', 'e3')
ORDER BY
  event_id NULLS FIRST
