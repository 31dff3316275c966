-- Data-subject access: the events.mixtape_shared_v2 events of key record 5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c,
-- encrypted columns decrypted with the user's own keysets (unwrapped through Cloud KMS).
-- Needs roles/cloudkms.cryptoKeyDecrypterViaDelegation on the KMS key and read access to the table.

DECLARE user_aead_keyset BYTES DEFAULT AEAD.DECRYPT_BYTES(KEYS.KEYSET_CHAIN('gcp-kms://projects/demo/locations/europe-west1/keyRings/dataplatform/cryptoKeys/platform', FROM_BASE64('a21zLXdyYXBwZWQgcGxhdGZvcm0gd3JhcHBpbmcga2V5c2V0')), FROM_BASE64('d3JhcHBlZCBBRVMyNTZfR0NNIGtleXNldCBvZiB0aGUgdXNlcg=='), '5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c');

DECLARE user_daead_keyset BYTES DEFAULT AEAD.DECRYPT_BYTES(KEYS.KEYSET_CHAIN('gcp-kms://projects/demo/locations/europe-west1/keyRings/dataplatform/cryptoKeys/platform', FROM_BASE64('a21zLXdyYXBwZWQgcGxhdGZvcm0gd3JhcHBpbmcga2V5c2V0')), FROM_BASE64('d3JhcHBlZCBBRVMyNTZfU0lWIGtleXNldCBvZiB0aGUgdXNlcg=='), '5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c');

SELECT
  t.event_id,
  t.event_time,
  t.user_pseudonym,
  ARRAY(
    SELECT
      AEAD.DECRYPT_STRING(user_aead_keyset, e0, 'recipients')
    FROM UNNEST(t.recipients) AS e0 WITH OFFSET AS o0
    ORDER BY
      o0
  ) AS recipients,
  ARRAY(
    SELECT AS STRUCT
      o0 AS tracks_offset,
      AEAD.DECRYPT_STRING(user_aead_keyset, e0.title, 'tracks.title') AS value
    FROM UNNEST(t.tracks) AS e0 WITH OFFSET AS o0
    ORDER BY
      o0
  ) AS tracks__title,
  ARRAY(
    SELECT AS STRUCT
      o0 AS tracks_offset,
      o1 AS order_offset,
      DETERMINISTIC_DECRYPT_STRING(user_daead_keyset, e1, 'tracks.notes.order') AS value
    FROM UNNEST(t.tracks) AS e0 WITH OFFSET AS o0
    CROSS JOIN UNNEST(e0.notes.`order`) AS e1 WITH OFFSET AS o1
    ORDER BY
      o0,
      o1
  ) AS tracks__notes__order
FROM `events.mixtape_shared_v2` AS t
WHERE
  t.user_pseudonym = 'a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3'
  AND t.event_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 90 DAY)
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY t.event_id ORDER BY t.publish_time) = 1
ORDER BY
  t.event_time;
