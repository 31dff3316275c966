-- Top 100 tracks by streams over the seven days ending on @run_date (inclusive).
SELECT
  @run_date AS date,
  ROW_NUMBER() OVER (ORDER BY SUM(streams) DESC, track_id) AS chart_position,
  track_id,
  artist_id,
  SUM(streams) AS streams_7d,
  SUM(plays) AS plays_7d,
  COUNT(*) AS days_played
FROM endpoints.daily_track_plays
WHERE date BETWEEN DATE_SUB(@run_date, INTERVAL 6 DAY) AND @run_date
GROUP BY track_id, artist_id
QUALIFY ROW_NUMBER() OVER (ORDER BY SUM(streams) DESC, track_id) <= 100
