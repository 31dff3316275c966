-- Data-subject access: the events.user_registered_v1 events of key record 5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c,
-- encrypted columns decrypted with the user's own keysets (unwrapped through Cloud KMS).
-- Needs roles/cloudkms.cryptoKeyDecrypterViaDelegation on the KMS key and read access to the table.

DECLARE user_aead_keyset BYTES DEFAULT AEAD.DECRYPT_BYTES(KEYS.KEYSET_CHAIN('gcp-kms://projects/demo/locations/europe-west1/keyRings/dataplatform/cryptoKeys/platform', FROM_BASE64('a21zLXdyYXBwZWQgcGxhdGZvcm0gd3JhcHBpbmcga2V5c2V0')), FROM_BASE64('d3JhcHBlZCBBRVMyNTZfR0NNIGtleXNldCBvZiB0aGUgdXNlcg=='), '5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c5f0c');

SELECT
  t.event_id,
  t.event_time,
  t.user_pseudonym,
  AEAD.DECRYPT_STRING(user_aead_keyset, t.email, 'email') AS email,
  AEAD.DECRYPT_STRING(user_aead_keyset, t.display_name, 'display_name') AS display_name,
  AEAD.DECRYPT_STRING(user_aead_keyset, t.birth_date, 'birth_date') AS birth_date
FROM `events.user_registered_v1` AS t
WHERE
  t.user_pseudonym = 'a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3'
  AND t.event_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1095 DAY)
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY t.event_id ORDER BY t.publish_time) = 1
ORDER BY
  t.event_time;
