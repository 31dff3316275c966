/* SELECT * EXCEPT / REPLACE from a CTE, and a project-qualified table (dropped locally). */
WITH narrow AS (
  SELECT
    event_id,
    track_id,
    ms_played
  FROM "fixture"."plays"
  WHERE
    event_id = 'e3'
)
SELECT
  *
  EXCLUDE (track_id)
  REPLACE (ms_played // 1000 AS ms_played)
FROM narrow
