-- Per-artist totals for the day @run_date, from the per-track endpoint of the same day.
SELECT
  @run_date AS date,
  artist_id,
  COUNT(*) AS tracks_played,
  SUM(plays) AS plays,
  SUM(streams) AS streams,
  SUM(skips) AS skips,
  SAFE_DIVIDE(SUM(skips), SUM(plays)) AS skip_rate,
  SUM(ms_played) AS ms_played,
  MAX(listeners) AS top_track_listeners
FROM endpoints.daily_track_plays
WHERE date = @run_date
GROUP BY artist_id
