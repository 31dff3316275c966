-- not_null_date_os_sessions_active_users (not_null, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    os,
    sessions,
    active_users
  FROM endpoints.daily_active_users
  WHERE
    date = @run_date
    AND (
      date IS NULL OR os IS NULL OR sessions IS NULL OR active_users IS NULL
    )
) AS failing
LIMIT 5;

-- unique_date_os (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    os,
    COUNT(*) OVER (PARTITION BY date, os) AS duplicates
  FROM endpoints.daily_active_users
  WHERE
    date = @run_date
  QUALIFY
    COUNT(*) OVER (PARTITION BY date, os) > 1
) AS failing
LIMIT 5;

-- known_operating_systems (accepted_values, severity warn)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    os
  FROM endpoints.daily_active_users
  WHERE
    date = @run_date
    AND NOT os IS NULL
    AND NOT os IN ('android', 'ios', 'web', 'windows', 'macos')
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
      20 AS max_rows
    FROM endpoints.daily_active_users
    WHERE
      date = @run_date
  ) AS counted
  WHERE
    row_count < 1 OR row_count > 20
) AS failing
LIMIT 5;

-- listeners_are_active_users (sql, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    os,
    active_users,
    listening_users
  FROM endpoints.daily_active_users
  WHERE
    date = @run_date AND listening_users > active_users
) AS failing
LIMIT 5;
