/* String functions, printf-style FORMAT, TO_HEX of BYTES, REGEXP_CONTAINS, SAFE_CAST. */
SELECT
  UPPER(event_id) AS id,
  device.os || '/' || device.version AS client,
  SUBSTRING(event_id, 1, 1) AS prefix,
  CASE TYPEOF(event_id)
    WHEN 'BLOB'
    THEN OCTET_LENGTH(CAST(event_id AS BLOB))
    ELSE LENGTH(CAST(event_id AS TEXT))
  END AS id_length,
  STARTS_WITH(event_id, 'e') AS starts_with_e,
  REGEXP_MATCHES(event_id, '^e[0-9]+$') AS well_formed,
  LOWER(HEX(payload)) AS payload_hex,
  PRINTF('%s has %d tracks', event_id, ARRAY_LENGTH(track_ids)) AS summary,
  STR_SPLIT('a,b', ',') AS parts,
  TRY_CAST('seven' AS BIGINT) AS not_a_number,
  CAST('7' AS BIGINT) AS seven
FROM fixture.plays
WHERE
  event_id = 'e1'
