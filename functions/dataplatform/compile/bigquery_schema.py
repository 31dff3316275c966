"""Event schema → the BigQuery table of its anonymized events (and the failed-events table).

The table is what analysts see, so it is compiled from the schema, never written by hand:
the anonymizer writes exactly these columns to the clean topic (see `compile/avro.py`, which
derives the Avro record from `event_table`), and the BigQuery subscription appends its four
metadata columns. Privacy policies change column types here, so the warehouse never holds a
field in clear that the schema marked as personal:

- `user_id` → `user_pseudonym STRING REQUIRED` at the same position (a random per-user id);
- `encrypt` / `encrypt_deterministic` → `BYTES` (Tink ciphertext). REQUIRED becomes NULLABLE,
  because the anonymizer writes NULL for users whose keys were erased (crypto-shredding);
- `hash` → `STRING` (hex keyed HMAC), `truncate_ip` → `STRING`, `drop` → no column. A RECORD
  whose fields are all dropped has no column either (BigQuery rejects empty RECORDs).

Pure: no I/O, no google-cloud imports; `infra/` and the local DuckDB warehouse turn a
`TableSpec` into a real table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dataplatform.definitions.models import (
    ENCRYPTING,
    EVENTS_DATASET,
    PLATFORM_DATASET,
    EventSchema,
    FieldDef,
)

API_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "STRING": "STRING",
        "INT64": "INTEGER",
        "FLOAT64": "FLOAT",
        "BOOL": "BOOLEAN",
        "TIMESTAMP": "TIMESTAMP",
        "DATE": "DATE",
        "BYTES": "BYTES",
        "RECORD": "RECORD",
        "NUMERIC": "NUMERIC",
    }
)
"""Standard SQL type names (used in `BqField.type`) → the names of the REST API's TableFieldSchema."""

MODES = ("NULLABLE", "REQUIRED", "REPEATED")

MAX_DESCRIPTION = 1024
"""BigQuery rejects column descriptions longer than 1024 characters."""

PSEUDONYM_COLUMN = "user_pseudonym"

FAILED_EVENTS_TABLE = "failed_events"

QUARANTINE_RETENTION_DAYS = 30
"""How long failed events (with their quarantined, encrypted payload) are kept.

Long enough to notice a broken producer, fix the schema or the client and replay the
events; short because the quarantined payload still holds personal data (encrypted under
the platform quarantine key, not the user's key, so erasure cannot shred it).
"""


@dataclass(frozen=True)
class BqField:
    """One column (or nested column) of a BigQuery table, types in standard SQL names."""

    name: str
    type: str
    mode: str = "NULLABLE"
    description: str = ""
    fields: tuple[BqField, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in API_TYPES:
            raise ValueError(f"unknown BigQuery type {self.type!r}; use one of {', '.join(API_TYPES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown BigQuery mode {self.mode!r}; use one of {', '.join(MODES)}")
        if (self.type == "RECORD") != bool(self.fields):
            raise ValueError(f"column {self.name!r}: a RECORD needs fields and only a RECORD has them")

    def to_api(self) -> dict:
        """The BigQuery REST `TableFieldSchema` JSON of this column."""
        out: dict = {"name": self.name, "type": API_TYPES[self.type], "mode": self.mode}
        if self.description:
            out["description"] = self.description
        if self.fields:
            out["fields"] = [f.to_api() for f in self.fields]
        return out


@dataclass(frozen=True)
class TableSpec:
    """Everything needed to create one partitioned warehouse table."""

    dataset: str
    table: str
    fields: tuple[BqField, ...]
    partition_field: str | None
    partition_type: str
    expiration_days: int | None
    clustering: tuple[str, ...]
    require_partition_filter: bool
    description: str
    labels: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.dataset}.{self.table}"

    def schema_api(self) -> list[dict]:
        """The table schema as the REST API (and `bq mk --schema`) takes it."""
        return [f.to_api() for f in self.fields]


# --------------------------------------------------------------------------- event tables

HEAD_COLUMNS: tuple[BqField, ...] = (
    BqField("event_id", "STRING", "REQUIRED", "Id the producer gave the event; unique per event, rows may repeat (at-least-once delivery): dedupe on it or read the _dedup view."),
    BqField("event_time", "TIMESTAMP", "REQUIRED", "When the event happened, by the producer's clock (UTC); the partitioning column."),
    BqField("received_at", "TIMESTAMP", "REQUIRED", "When the collect endpoint received the event's batch (UTC)."),
    BqField("schema_version", "INT64", "REQUIRED", "Major version of the event schema the payload was validated against."),
)
"""The platform's columns before the payload: identity and times of every event."""

METADATA_COLUMNS: tuple[BqField, ...] = (
    BqField("message_id", "STRING", "NULLABLE", "Pub/Sub message id of the clean event (written by the BigQuery subscription)."),
    BqField("publish_time", "TIMESTAMP", "NULLABLE", "When the clean event was published to Pub/Sub (written by the BigQuery subscription)."),
    BqField("subscription_name", "STRING", "NULLABLE", "Pub/Sub subscription that wrote the row (written by the BigQuery subscription)."),
    BqField("attributes", "STRING", "NULLABLE", "Pub/Sub message attributes as JSON text (written by the BigQuery subscription)."),
)
"""The BigQuery subscription's metadata columns (`write_metadata = true`), after the payload."""

METADATA_COLUMN_NAMES = tuple(f.name for f in METADATA_COLUMNS)


def event_table(schema: EventSchema) -> TableSpec:
    """The anonymized table `events.<name>_v<major>` of one event schema."""
    payload = _payload_columns(schema.fields, prefix="")
    return TableSpec(
        dataset=EVENTS_DATASET,
        table=schema.table,
        fields=(*HEAD_COLUMNS, *payload, *METADATA_COLUMNS),
        partition_field="event_time",
        partition_type=schema.partitioning,
        expiration_days=schema.retention_days,
        clustering=schema.clustering or default_clustering(schema),
        require_partition_filter=True,
        description=_clip(schema.description),
        labels=MappingProxyType({"owner": schema.owner, "domain": schema.domain}),
    )


def default_clustering(schema: EventSchema) -> tuple[str, ...]:
    """Cluster by the subject when it is a top-level column, else by `event_id`.

    Per-user reads (analysis, erasure checks) are the common access path. BigQuery only
    clusters on top-level columns, so a `user_id` nested in a RECORD does not qualify.
    """
    if any(f.privacy == "user_id" for f in schema.fields):
        return (PSEUDONYM_COLUMN,)
    return ("event_id",)


def _payload_columns(fields: tuple[FieldDef, ...], prefix: str) -> tuple[BqField, ...]:
    columns: list[BqField] = []
    for f in fields:
        column = _column(f, f"{prefix}{f.name}")
        if column is not None:
            columns.append(column)
    return tuple(columns)


def _column(f: FieldDef, path: str) -> BqField | None:
    mode = "REPEATED" if f.repeated else ("REQUIRED" if f.required else "NULLABLE")
    if f.privacy == "drop":
        return None
    if f.type == "RECORD":
        nested = _payload_columns(f.fields, f"{path}.")
        if not nested:
            return None
        return BqField(f.name, "RECORD", mode, _clip(f.description), nested)
    if f.privacy == "user_id":
        return BqField(
            PSEUDONYM_COLUMN,
            "STRING",
            "REQUIRED",
            _clip(f"Random per-user pseudonym replacing `{path}` (erasure makes it unlinkable). {f.description}"),
        )
    if f.privacy in ENCRYPTING:
        algorithm = "AES-SIV, deterministic" if f.privacy == "encrypt_deterministic" else "AES-256-GCM"
        erased = "empty" if f.repeated else "NULL"
        return BqField(
            f.name,
            "BYTES",
            "REPEATED" if f.repeated else "NULLABLE",
            _clip(f"{f.description} [encrypted with the user's key ({algorithm}), associated data '{path}'; {erased} after erasure]"),
        )
    if f.privacy == "hash":
        return BqField(f.name, "STRING", mode, _clip(f"{f.description} [keyed HMAC-SHA256, hex]"))
    if f.privacy == "truncate_ip":
        return BqField(f.name, "STRING", mode, _clip(f"{f.description} [IP address truncated]"))
    return BqField(f.name, f.type, mode, _clip(f.description))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


# --------------------------------------------------------------------------- failed events

FAILED_EVENT_COLUMNS: tuple[BqField, ...] = (
    BqField("event_id", "STRING", "NULLABLE", "Id of the failed event; NULL when the envelope had none."),
    BqField("event_type", "STRING", "NULLABLE", "Event type (schema name) the producer claimed; NULL when unknown."),
    BqField("schema_version", "INT64", "NULLABLE", "Major schema version the producer claimed; NULL when unknown."),
    BqField("reason", "STRING", "REQUIRED", "Why it failed: invalid_json, invalid_envelope, unknown_event_type, schema_violation, too_large, clock_skew, too_late, undecryptable or dead_lettered."),
    BqField("detail", "STRING", "REQUIRED", "What was wrong and where (field path and rule); never contains payload values."),
    BqField("event_time", "TIMESTAMP", "NULLABLE", "Event time the producer claimed; NULL when missing or unreadable."),
    BqField("received_at", "TIMESTAMP", "REQUIRED", "When the collect endpoint received the event's batch."),
    BqField("failed_at", "TIMESTAMP", "REQUIRED", "When the platform rejected the event; the partitioning column."),
    BqField("stage", "STRING", "REQUIRED", "Where it failed: collect, anonymize or load (the BigQuery subscription or the local sink)."),
    BqField("payload_ciphertext", "BYTES", "NULLABLE", "The original event JSON encrypted with the platform quarantine key (associated data: event_id or empty), for fix and replay."),
    BqField("quarantine_expires_at", "TIMESTAMP", "REQUIRED", "When the quarantined payload is deleted with its partition."),
)
"""Columns of a failed-event record, in the order of the failed-events JSON message."""


def failed_events_table() -> TableSpec:
    """`platform.failed_events`: every rejected event, its typed reason and quarantined payload.

    The subscription's metadata columns follow the record's columns (all NULLABLE, so a
    subscription without `write_metadata` loads into it too). No partition filter is
    required: operators scan it ad hoc and the 30-day expiry keeps it small.
    """
    return TableSpec(
        dataset=PLATFORM_DATASET,
        table=FAILED_EVENTS_TABLE,
        fields=(*FAILED_EVENT_COLUMNS, *METADATA_COLUMNS),
        partition_field="failed_at",
        partition_type="DAY",
        expiration_days=QUARANTINE_RETENTION_DAYS,
        clustering=("event_type", "reason"),
        require_partition_filter=False,
        description=(
            "Events the platform rejected, with a typed reason and the field path of the problem; "
            f"the original payload is kept encrypted (quarantine key) for {QUARANTINE_RETENTION_DAYS} days for replay."
        ),
        labels=MappingProxyType({"owner": "platform", "domain": "platform"}),
    )
