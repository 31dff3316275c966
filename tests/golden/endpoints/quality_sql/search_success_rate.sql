-- not_null_date_filter_searches_success_rate (not_null, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    filter,
    searches,
    success_rate
  FROM endpoints.search_success_rate
  WHERE
    date = @run_date
    AND (
      date IS NULL OR filter IS NULL OR searches IS NULL OR success_rate IS NULL
    )
) AS failing
LIMIT 5;

-- unique_date_filter (unique, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    date,
    filter,
    COUNT(*) OVER (PARTITION BY date, filter) AS duplicates
  FROM endpoints.search_success_rate
  WHERE
    date = @run_date
  QUALIFY
    COUNT(*) OVER (PARTITION BY date, filter) > 1
) AS failing
LIMIT 5;

-- known_filters (accepted_values, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    filter
  FROM endpoints.search_success_rate
  WHERE
    date = @run_date
    AND NOT filter IS NULL
    AND NOT filter IN ('all', 'tracks', 'artists', 'albums', 'playlists', 'podcasts')
) AS failing
LIMIT 5;

-- rates_are_fractions (sql, severity error)
SELECT
  failing.*,
  COUNT(*) OVER () AS _dp_failing_rows
FROM (
  SELECT
    filter,
    success_rate,
    zero_result_rate
  FROM endpoints.search_success_rate
  WHERE
    date = @run_date
    AND (
      NOT success_rate BETWEEN 0 AND 1 OR NOT zero_result_rate BETWEEN 0 AND 1
    )
) AS failing
LIMIT 5;
