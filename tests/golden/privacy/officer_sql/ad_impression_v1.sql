-- Data-subject access: the events.ad_impression_v1 events of key record 5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c,
-- found by pseudonym; this event type has no encrypted fields, so no key is needed.

SELECT
  t.event_id,
  t.event_time,
  t.user_pseudonym
FROM `events.ad_impression_v1` AS t
WHERE
  t.user_pseudonym = 'a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3'
  AND t.event_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 400 DAY)
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY t.event_id ORDER BY t.publish_time) = 1
ORDER BY
  t.event_time;
