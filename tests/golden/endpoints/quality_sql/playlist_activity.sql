-- not_null_date_action_changes_playlists_users (not_null, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    action,
    changes,
    playlists,
    users
  FROM endpoints.playlist_activity
  WHERE
    date = @run_date
    AND (
      date IS NULL
      OR action IS NULL
      OR changes IS NULL
      OR playlists IS NULL
      OR users IS NULL
    )
) AS failing
LIMIT 5;

-- unique_date_action (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    action,
    COUNT(*) OVER (PARTITION BY date, action) AS duplicates
  FROM endpoints.playlist_activity
  WHERE
    date = @run_date
  QUALIFY
    COUNT(*) OVER (PARTITION BY date, action) > 1
) AS failing
LIMIT 5;

-- known_actions (accepted_values, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    action
  FROM endpoints.playlist_activity
  WHERE
    date = @run_date
    AND NOT action IS NULL
    AND NOT action IN ('create', 'rename', 'delete', 'add_tracks', 'remove_tracks', 'reorder')
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
      CAST(NULL AS INT64) AS min_rows,
      6 AS max_rows
    FROM endpoints.playlist_activity
    WHERE
      date = @run_date
  ) AS counted
  WHERE
    row_count > 6
) AS failing
LIMIT 5;
