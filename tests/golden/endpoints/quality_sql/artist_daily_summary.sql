-- not_null_date_artist_id_tracks_played_plays_streams (not_null, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    artist_id,
    tracks_played,
    plays,
    streams
  FROM endpoints.artist_daily_summary
  WHERE
    date = @run_date
    AND (
      date IS NULL
      OR artist_id IS NULL
      OR tracks_played IS NULL
      OR plays IS NULL
      OR streams IS NULL
    )
) AS failing
LIMIT 5;

-- unique_date_artist_id (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    artist_id,
    COUNT(*) OVER (PARTITION BY date, artist_id) AS duplicates
  FROM endpoints.artist_daily_summary
  WHERE
    date = @run_date
  QUALIFY
    COUNT(*) OVER (PARTITION BY date, artist_id) > 1
) AS failing
LIMIT 5;

-- artists_come_from_track_plays (relationship, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    child.artist_id
  FROM endpoints.artist_daily_summary AS child
  LEFT JOIN (
    SELECT DISTINCT
      artist_id AS key
    FROM endpoints.daily_track_plays
    WHERE
      date = @run_date
  ) AS parent
    ON parent.key = child.artist_id
  WHERE
    child.date = @run_date AND NOT child.artist_id IS NULL AND parent.key IS NULL
) AS failing
LIMIT 5;

-- plays_add_up (sql, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    summary.plays,
    tracks.plays AS track_plays
  FROM (
    SELECT
      SUM(plays) AS plays
    FROM endpoints.artist_daily_summary
    WHERE
      date = @run_date
  ) AS summary
  CROSS JOIN (
    SELECT
      SUM(plays) AS plays
    FROM endpoints.daily_track_plays
    WHERE
      date = @run_date
  ) AS tracks
  WHERE
    summary.plays <> tracks.plays
) AS failing
LIMIT 5;
