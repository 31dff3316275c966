/* QUALIFY with ROW_NUMBER: each listener's latest play. */
SELECT
  user_pseudonym,
  event_id
FROM fixture.plays
WHERE
  NOT user_pseudonym IS NULL
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY user_pseudonym ORDER BY event_time DESC) = 1
ORDER BY
  user_pseudonym NULLS FIRST
