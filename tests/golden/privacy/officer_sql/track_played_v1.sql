-- Data-subject access: the events.track_played_v1 events of key record 5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c,
-- encrypted columns decrypted with the user's own keysets (unwrapped through Cloud KMS).
-- Needs roles/cloudkms.cryptoKeyDecrypterViaDelegation on the KMS key and read access to the table.

DECLARE user_aead_keyset BYTES DEFAULT AEAD.DECRYPT_BYTES(KEYS.KEYSET_CHAIN('gcp-kms://projects/demo/locations/europe-west1/keyRings/dataplatform/cryptoKeys/platform', FROM_BASE64('a21zLXdyYXBwZWQgcGxhdGZvcm0gd3JhcHBpbmcga2V5c2V0')), FROM_BASE64('d3JhcHBlZCBBRVMyNTZfR0NNIGtleXNldCBvZiB0aGUgdXNlcg=='), '5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c');

SELECT
  t.event_id,
  t.event_time,
  t.user_pseudonym,
  AEAD.DECRYPT_STRING(user_aead_keyset, t.context.location.lat, 'context.location.lat') AS context__location__lat,
  AEAD.DECRYPT_STRING(user_aead_keyset, t.context.location.lon, 'context.location.lon') AS context__location__lon
FROM `events.track_played_v1` AS t
WHERE
  t.user_pseudonym = 'a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3'
  AND t.event_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 395 DAY)
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY t.event_id ORDER BY t.publish_time) = 1
ORDER BY
  t.event_time;
