-- Active users of the day @run_date: a user is active with at least one app session;
-- a listener is an active user who also played a track that day.
WITH sessions AS (
  SELECT user_pseudonym, device.os AS os, cold_start
  FROM events.app_session_started_v1_dedup
  WHERE DATE(event_time) = @run_date
),
listeners AS (
  SELECT DISTINCT user_pseudonym
  FROM events.track_played_v1_dedup
  WHERE DATE(event_time) = @run_date
)
SELECT
  @run_date AS date,
  s.os AS os,
  COUNT(*) AS sessions,
  COUNT(DISTINCT s.user_pseudonym) AS active_users,
  COUNT(DISTINCT l.user_pseudonym) AS listening_users,
  COUNTIF(s.cold_start) AS cold_starts
FROM sessions AS s
LEFT JOIN listeners AS l ON l.user_pseudonym = s.user_pseudonym
GROUP BY s.os
