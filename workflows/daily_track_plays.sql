-- Plays per track for the day @run_date (UTC). A "stream" is a play of at least 30 seconds.
SELECT
  @run_date AS date,
  track_id,
  artist_id,
  COUNT(*) AS plays,
  COUNTIF(ms_played >= 30000) AS streams,
  COUNT(DISTINCT user_pseudonym) AS listeners,
  COUNTIF(skipped) AS skips,
  SAFE_DIVIDE(COUNTIF(skipped), COUNT(*)) AS skip_rate,
  SUM(ms_played) AS ms_played,
  COUNTIF(offline) AS offline_plays
FROM events.track_played_v1_dedup
WHERE DATE(event_time) = @run_date
GROUP BY track_id, artist_id
