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

CREATE TABLE IF NOT EXISTS "platform"."runs" (
  "run_id" TEXT NOT NULL,
  "endpoint" TEXT NOT NULL,
  "run_date" DATE NOT NULL,
  "run_time" TIMESTAMPTZ NOT NULL,
  "status" TEXT NOT NULL,
  "reason" TEXT,
  "started_at" TIMESTAMPTZ,
  "finished_at" TIMESTAMPTZ,
  "rows_written" BIGINT,
  "recorded_at" TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS "platform"."partitions" (
  "table_ref" TEXT NOT NULL,
  "partition" DATE NOT NULL,
  "status" TEXT NOT NULL,
  "updated_at" TIMESTAMPTZ NOT NULL,
  "run_id" TEXT,
  "row_count" BIGINT
);

CREATE TABLE IF NOT EXISTS "platform"."check_results" (
  "run_id" TEXT NOT NULL,
  "endpoint" TEXT NOT NULL,
  "partition" DATE NOT NULL,
  "check" TEXT NOT NULL,
  "type" TEXT NOT NULL,
  "status" TEXT NOT NULL,
  "severity" TEXT,
  "failing_rows" BIGINT,
  "sample" TEXT,
  "duration_ms" BIGINT,
  "checked_at" TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS "platform"."freshness" (
  "table_ref" TEXT NOT NULL,
  "kind" TEXT NOT NULL,
  "newest_complete_partition" DATE,
  "deadline" TIMESTAMPTZ,
  "lag_seconds" BIGINT,
  "breached" BOOLEAN NOT NULL,
  "checked_at" TIMESTAMPTZ NOT NULL
);
