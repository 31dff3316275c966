/* DATE_ADD/DATE_SUB/DATE_TRUNC return DATEs; TIMESTAMP_ADD/SUB return TIMESTAMPs; */
/* TIMESTAMP_DIFF counts whole units (the BigQuery documentation's own example gives 0). */
SELECT
  CAST($run_date - INTERVAL '6' DAY AS DATE) AS week_start,
  CAST($run_date + INTERVAL '1' MONTH AS DATE) AS next_month,
  CAST(DATE_TRUNC('MONTH', $run_date) AS DATE) AS month_start,
  $run_time - INTERVAL '90' MINUTE AS earlier,
  CAST($run_date AS TIMESTAMPTZ) + INTERVAL '1' DAY AS day_end,
  DATE_DIFF('DAY', CAST('2024-01-01' AS DATE), $run_date) AS days_into_year,
  DATE_SUB(
    'HOUR',
    CAST('2001-02-01 00:00:01' AS TIMESTAMPTZ),
    CAST('2001-02-01 01:00:00' AS TIMESTAMPTZ)
  ) AS whole_hours,
  DATE_SUB('HOUR', CAST('2024-01-07 04:00:00' AS TIMESTAMPTZ), $run_time) AS hours_since_four
