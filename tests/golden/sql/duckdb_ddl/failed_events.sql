CREATE TABLE IF NOT EXISTS "platform"."failed_events" (
  "event_id" TEXT,
  "event_type" TEXT,
  "schema_version" BIGINT,
  "reason" TEXT NOT NULL,
  "detail" TEXT NOT NULL,
  "event_time" TIMESTAMPTZ,
  "received_at" TIMESTAMPTZ NOT NULL,
  "failed_at" TIMESTAMPTZ NOT NULL,
  "stage" TEXT NOT NULL,
  "payload_ciphertext" BLOB,
  "quarantine_expires_at" TIMESTAMPTZ NOT NULL,
  "message_id" TEXT,
  "publish_time" TIMESTAMPTZ,
  "subscription_name" TEXT,
  "attributes" TEXT
);
