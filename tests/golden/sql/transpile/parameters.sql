/* @run_date and @run_time are bound as typed parameters (DATE and TIMESTAMP). */
SELECT
  $run_date AS date,
  $run_time AS run_time,
  COUNT(*) AS before_run
FROM fixture.plays
WHERE
  event_time < $run_time
