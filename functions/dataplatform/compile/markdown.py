"""Event schema → its Markdown catalog page (`dataplatform catalog build`).

The page is for the people who use the data, not the people who send it: who owns the
event, how long it is kept, who may read it, where it lands, and for every payload field
what the warehouse holds instead (a pseudonym, ciphertext, a hash, nothing). It is compiled
from the same `event_table` as the real table, so the page cannot drift from the warehouse.
"""

from __future__ import annotations

from dataplatform.compile.bigquery_schema import (
    HEAD_COLUMNS,
    METADATA_COLUMNS,
    PSEUDONYM_COLUMN,
    BqField,
    event_table,
)
from dataplatform.definitions.models import EventSchema, FieldDef, format_duration

PRIVACY_TEXT = {
    "none": "",
    "user_id": "pseudonymized",
    "encrypt": "encrypted (user key)",
    "encrypt_deterministic": "encrypted, deterministic (user key)",
    "hash": "keyed hash",
    "truncate_ip": "IP truncated",
    "drop": "dropped",
}
"""How each privacy policy reads in the fields table."""

PRIVACY_LEGEND = (
    "- **pseudonymized**: replaced by `user_pseudonym`, a random id per user; erasing the user "
    "deletes the link for good.\n"
    "- **encrypted (user key)**: BYTES, AES-256-GCM under the user's own key (associated data: the "
    "field path); NULL once the user is erased (crypto-shredding).\n"
    "- **encrypted, deterministic (user key)**: like encrypted, but AES-SIV: equal values of one "
    "user give equal ciphertext, so the column can be joined and grouped.\n"
    "- **keyed hash**: hex HMAC-SHA256 with a platform secret; equal values give equal hashes.\n"
    "- **IP truncated**: the address with its host part removed.\n"
    "- **dropped**: never stored."
)


def schema_markdown(schema: EventSchema) -> str:
    """The catalog page of one event schema, ending with a newline."""
    spec = event_table(schema)
    lines = [
        f"# {schema.name} (v{schema.version})",
        "",
        schema.description.strip(),
        "",
        "| | |",
        "|---|---|",
        f"| Owner | `{schema.owner}` |",
        f"| Domain | `{schema.domain}` |",
        f"| Retention | {schema.retention_days} days (partition expiration) |",
        f"| Partitioning | {spec.partition_type} on `{spec.partition_field}` |",
        f"| Clustering | {', '.join(f'`{c}`' for c in spec.clustering)} |",
        f"| Allowed lateness | {format_duration(schema.allowed_lateness)} |",
        f"| Readers | {', '.join(f'`{r}`' for r in schema.readers) or 'dataset readers only'} |",
        "",
        "## Where it lands",
        "",
        f"- Warehouse table: `{spec.ref}`; deduplicated view: `{spec.dataset}.{schema.dedup_view}` "
        "(delivery is at-least-once: read the view, or dedupe on `event_id`).",
        f"- Raw topic: `{schema.raw_topic}` (batches from collect); clean topic: `{schema.clean_topic}` "
        "(one anonymized event per message, Avro binary).",
        f"- Rejected events: `platform.failed_events` with `event_type = '{schema.name}'`.",
        "",
        "```sql",
        f"SELECT * FROM `{spec.dataset}.{schema.dedup_view}`",
        "WHERE event_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)  -- a partition filter is required",
        "```",
        "",
        "## Payload fields",
        "",
        "| Path | Type | Mode | Privacy | Warehouse column | Description |",
        "|---|---|---|---|---|---|",
    ]
    lines += _field_rows(schema.fields, spec.fields, prefix="", column_prefix="")
    lines += [
        "",
        "## Platform columns",
        "",
        "| Column | Type | Mode | Description |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{c.name}` | {c.type} | {c.mode} | {_cell(c.description)} |" for c in (*HEAD_COLUMNS, *METADATA_COLUMNS)]
    if any(f.privacy != "none" for _, f in schema.walk()):
        lines += ["", "## Privacy", "", PRIVACY_LEGEND]
    return "\n".join(lines) + "\n"


def _field_rows(fields: tuple[FieldDef, ...], columns: tuple[BqField, ...], prefix: str, column_prefix: str) -> list[str]:
    by_name = {c.name: c for c in columns}
    rows: list[str] = []
    for f in fields:
        path = f"{prefix}{f.name}"
        column = by_name.get(PSEUDONYM_COLUMN if f.privacy == "user_id" else f.name)
        mode = "REPEATED" if f.repeated else ("REQUIRED" if f.required else "NULLABLE")
        where = f"`{column_prefix}{column.name}` {column.type}" if column else "—"
        privacy = PRIVACY_TEXT[f.privacy] if column or f.privacy == "drop" else "dropped (no field is stored)"
        rows.append(f"| `{path}` | {f.type} | {mode} | {privacy} | {where} | {_cell(f.description)} |")
        if f.fields:
            nested = column.fields if column else ()
            rows += _field_rows(f.fields, nested, f"{path}.", f"{column_prefix}{f.name}.")
    return rows


def _cell(text: str) -> str:
    """One table cell: a single line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
