-- events.ad_impression_v1_dedup
SELECT
  *
FROM events.ad_impression_v1
WHERE
  TRUE
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time, message_id) = 1;

-- events.app_session_started_v1_dedup
SELECT
  *
FROM events.app_session_started_v1
WHERE
  TRUE
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time, message_id) = 1;

-- events.playlist_modified_v1_dedup
SELECT
  *
FROM events.playlist_modified_v1
WHERE
  TRUE
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time, message_id) = 1;

-- events.search_performed_v1_dedup
SELECT
  *
FROM events.search_performed_v1
WHERE
  TRUE
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time, message_id) = 1;

-- events.subscription_changed_v1_dedup
SELECT
  *
FROM events.subscription_changed_v1
WHERE
  TRUE
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time, message_id) = 1;

-- events.track_played_v1_dedup
SELECT
  *
FROM events.track_played_v1
WHERE
  TRUE
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time, message_id) = 1;

-- events.user_registered_v1_dedup
SELECT
  *
FROM events.user_registered_v1
WHERE
  TRUE
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time, message_id) = 1;
