-- Playlist changes of the day @run_date, per action.
WITH changes AS (
  SELECT user_pseudonym, playlist_id, action, track_ids
  FROM events.playlist_modified_v1_dedup
  WHERE DATE(event_time) = @run_date
),
tracks AS (
  SELECT c.action, COUNT(*) AS track_slots, COUNT(DISTINCT track_id) AS distinct_tracks
  FROM changes AS c, UNNEST(c.track_ids) AS track_id
  GROUP BY c.action
)
SELECT
  @run_date AS date,
  c.action AS action,
  COUNT(*) AS changes,
  COUNT(DISTINCT c.playlist_id) AS playlists,
  COUNT(DISTINCT c.user_pseudonym) AS users,
  COALESCE(ANY_VALUE(t.track_slots), 0) AS track_slots,
  COALESCE(ANY_VALUE(t.distinct_tracks), 0) AS distinct_tracks
FROM changes AS c
LEFT JOIN tracks AS t ON t.action = c.action
GROUP BY c.action
