-- not_null_date_track_id_artist_id_plays_listeners (not_null, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    track_id,
    artist_id,
    plays,
    listeners
  FROM endpoints.daily_track_plays
  WHERE
    date = @run_date
    AND (
      date IS NULL
      OR track_id IS NULL
      OR artist_id IS NULL
      OR plays IS NULL
      OR listeners IS NULL
    )
) AS failing
LIMIT 5;

-- unique_date_track_id (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    track_id,
    COUNT(*) OVER (PARTITION BY date, track_id) AS duplicates
  FROM endpoints.daily_track_plays
  WHERE
    date = @run_date
  QUALIFY
    COUNT(*) OVER (PARTITION BY date, track_id) > 1
) AS failing
LIMIT 5;

-- row_count (row_count, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    *
  FROM (
    SELECT
      COUNT(*) AS row_count,
      1 AS min_rows,
      CAST(NULL AS INT64) AS max_rows
    FROM endpoints.daily_track_plays
    WHERE
      date = @run_date
  ) AS counted
  WHERE
    row_count < 1
) AS failing
LIMIT 5;

-- streams_within_plays (sql, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    track_id,
    plays,
    streams,
    skips
  FROM endpoints.daily_track_plays
  WHERE
    date = @run_date AND (
      streams > plays OR skips > plays OR listeners > plays
    )
) AS failing
LIMIT 5;
