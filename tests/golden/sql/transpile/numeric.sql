/* NUMERIC keeps BigQuery's precision and scale (38, 9), not DuckDB's default DECIMAL(18, 3). */
SELECT
  CAST('1.123456789' AS DECIMAL(38, 9)) AS precise,
  SUM(price) AS total
FROM fixture.plays
