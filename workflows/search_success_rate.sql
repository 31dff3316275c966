-- Search success for the day @run_date: a search succeeds when a result was opened.
SELECT
  @run_date AS date,
  COALESCE(filter, 'all') AS filter,
  COUNT(*) AS searches,
  COUNT(DISTINCT user_pseudonym) AS searchers,
  COUNTIF(clicked_position IS NOT NULL) AS successful_searches,
  SAFE_DIVIDE(COUNTIF(clicked_position IS NOT NULL), COUNT(*)) AS success_rate,
  COUNTIF(ARRAY_LENGTH(results) = 0) AS zero_result_searches,
  SAFE_DIVIDE(COUNTIF(ARRAY_LENGTH(results) = 0), COUNT(*)) AS zero_result_rate,
  AVG(ARRAY_LENGTH(results)) AS avg_results,
  AVG(clicked_position) AS avg_clicked_position,
  AVG(query_length) AS avg_query_length,
  AVG(latency_ms) AS avg_latency_ms
FROM events.search_performed_v1_dedup
WHERE DATE(event_time) = @run_date
GROUP BY COALESCE(filter, 'all')
