/* FORMAT_DATE / FORMAT_TIMESTAMP (UTC) with strftime-style elements; PARSE_DATE; SAFE. prefix. */
SELECT
  STRFTIME(CAST(day AS DATE), '%Y-%m') AS month,
  STRFTIME(CAST($run_date AS DATE), '%A %d %B %Y') AS long_date,
  STRFTIME(CAST(event_time AS TIMESTAMP), '%Y-%m-%d %H:%M:%S') AS stamp,
  CAST(STRPTIME('1970 ' || '20240107', '%Y ' || '%Y%m%d') AS DATE) AS parsed,
  TRY(CAST(STRPTIME('1970 ' || 'not a date', '%Y ' || '%Y-%m-%d') AS DATE)) AS unparsable
FROM fixture.plays
WHERE
  event_id = 'e3'
