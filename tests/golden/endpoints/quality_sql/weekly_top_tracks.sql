-- not_null_date_chart_position_track_id_streams_7d (not_null, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    chart_position,
    track_id,
    streams_7d
  FROM endpoints.weekly_top_tracks
  WHERE
    date = @run_date
    AND (
      date IS NULL OR chart_position IS NULL OR track_id IS NULL OR streams_7d IS NULL
    )
) AS failing
LIMIT 5;

-- unique_date_chart_position (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    chart_position,
    COUNT(*) OVER (PARTITION BY date, chart_position) AS duplicates
  FROM endpoints.weekly_top_tracks
  WHERE
    date = @run_date
  QUALIFY
    COUNT(*) OVER (PARTITION BY date, chart_position) > 1
) AS failing
LIMIT 5;

-- one_position_per_track (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    track_id,
    COUNT(*) OVER (PARTITION BY date, track_id) AS duplicates
  FROM endpoints.weekly_top_tracks
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
      100 AS max_rows
    FROM endpoints.weekly_top_tracks
    WHERE
      date = @run_date
  ) AS counted
  WHERE
    row_count < 1 OR row_count > 100
) AS failing
LIMIT 5;

-- charted_tracks_were_played (relationship, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    child.track_id
  FROM endpoints.weekly_top_tracks AS child
  LEFT JOIN (
    SELECT DISTINCT
      track_id AS key
    FROM endpoints.daily_track_plays
    WHERE
      date BETWEEN DATE_SUB(@run_date, INTERVAL 6 DAY) AND @run_date
  ) AS parent
    ON parent.key = child.track_id
  WHERE
    child.date = @run_date AND NOT child.track_id IS NULL AND parent.key IS NULL
) AS failing
LIMIT 5;
