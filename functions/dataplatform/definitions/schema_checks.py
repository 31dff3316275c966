"""Cross-checks of one event schema: fields, privacy policies, the data subject, table layout.

Rules that pydantic cannot state field by field: a policy fits its field's type, exactly
one required `user_id` field when anything is encrypted with the user's key, no payload
field named like a platform column, clustering by columns the anonymized table has,
retention that BigQuery can keep. Each returns `DefinitionError`s with the line.
"""

from __future__ import annotations

from dataplatform.definitions.messages import did_you_mean
from dataplatform.definitions.models import ENCRYPTING, RETENTION_DAYS, EventSchema, FieldDef, format_duration
from dataplatform.definitions.source import DefinitionError, Source

RESERVED_COLUMNS = frozenset(
    {
        "event_id",
        "event_time",
        "received_at",
        "schema_version",
        "user_pseudonym",
        "message_id",
        "publish_time",
        "subscription_name",
        "attributes",
    }
)
"""Columns the platform adds to every event table; payload fields may not use these names."""

POLICY_TYPES: dict[str, frozenset[str]] = {
    "user_id": frozenset({"STRING"}),
    "encrypt": frozenset({"STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "DATE"}),
    "encrypt_deterministic": frozenset({"STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "DATE"}),
    "hash": frozenset({"STRING", "INT64"}),
    "truncate_ip": frozenset({"STRING"}),
}
"""Which field types each privacy policy applies to (`drop` and `none` apply to any)."""

MAX_CLUSTERING = 4

MAX_PARTITIONS = 10_000
"""BigQuery's limit of partitions per table: bounds retention of HOUR-partitioned tables."""


def check_schema(schema: EventSchema, source: Source) -> list[DefinitionError]:
    errors = check_retention(schema.retention_days, source)
    if schema.partitioning == "HOUR" and schema.retention_days * 24 > MAX_PARTITIONS:
        errors.append(
            source.error(
                ("retention_days",),
                f"retention_days {schema.retention_days} with partitioning: HOUR needs "
                f"{schema.retention_days * 24} hourly partitions, more than BigQuery's {MAX_PARTITIONS} "
                f"a table; use at most {MAX_PARTITIONS // 24} days or partitioning: DAY",
            )
        )
    if not errors and schema.allowed_lateness.total_seconds() > schema.retention_days * 86400:
        errors.append(
            source.error(
                ("allowed_lateness",),
                f"allowed_lateness {format_duration(schema.allowed_lateness)} is longer than "
                f"retention_days {schema.retention_days}: late events would land in expired partitions",
            )
        )
    errors += _check_fields(schema.fields, ("fields",), source, top_level=True, in_repeated=False)

    user_ids = [(path, f) for path, f in schema.walk() if f.privacy == "user_id"]
    encrypted = [path for path, f in schema.walk() if f.privacy in ENCRYPTING]
    if len(user_ids) > 1:
        errors.append(
            source.error(
                _field_loc(schema, user_ids[1][0]),
                f"more than one field has privacy: user_id ({', '.join(p for p, _ in user_ids)}); "
                "an event has exactly one data subject",
            )
        )
    if encrypted and not user_ids:
        errors.append(
            source.error(
                _field_loc(schema, encrypted[0]),
                f"field {encrypted[0]!r} is encrypted with the user's key but no field has "
                "privacy: user_id; mark the subject's id field with privacy: user_id",
            )
        )

    columns = clean_columns(schema)
    if len(schema.clustering) > MAX_CLUSTERING:
        errors.append(source.error(("clustering",), f"at most {MAX_CLUSTERING} clustering columns"))
    for i, column in enumerate(schema.clustering):
        if column not in columns:
            errors.append(
                source.error(
                    ("clustering", i),
                    f"clustering column {column!r} is not a top-level scalar column of the table"
                    f"{did_you_mean(column, columns)}",
                )
            )
    return errors


def clean_columns(schema: EventSchema) -> list[str]:
    """Top-level scalar columns of the anonymized table a table can be clustered by."""
    columns = ["event_id", "event_time", "received_at", "schema_version"]
    for field in schema.fields:
        if field.privacy == "user_id":
            columns.append("user_pseudonym")
        elif field.type != "RECORD" and not field.repeated and field.privacy not in ("drop", *ENCRYPTING):
            columns.append(field.name)
    return columns


def _field_loc(schema: EventSchema, dotted: str) -> tuple[str | int, ...]:
    loc: tuple[str | int, ...] = ()
    fields = schema.fields
    for part in dotted.split("."):
        index = next(i for i, f in enumerate(fields) if f.name == part)
        loc = (*loc, "fields", index)
        fields = fields[index].fields
    return loc


def _check_fields(
    fields: tuple[FieldDef, ...],
    loc: tuple[str | int, ...],
    source: Source,
    *,
    top_level: bool,
    in_repeated: bool,
    prefix: str = "",
) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    seen: set[str] = set()
    for i, field in enumerate(fields):
        here = (*loc, i)
        path = f"{prefix}{field.name}"
        if field.name in seen:
            errors.append(source.error((*here, "name"), f"duplicate field name {path!r}"))
        seen.add(field.name)
        if top_level and field.name in RESERVED_COLUMNS:
            errors.append(
                source.error(
                    (*here, "name"),
                    f"field name {field.name!r} is reserved: the platform adds it to every table",
                )
            )
        if field.type == "RECORD" and not field.fields:
            errors.append(source.error((*here, "type"), f"RECORD field {path!r} needs a list of fields"))
        if field.type != "RECORD" and field.fields:
            errors.append(
                source.error((*here, "fields"), f"field {path!r} of type {field.type} cannot have fields; use type: RECORD")
            )
        errors += _check_policy(field, path, here, source, in_repeated=in_repeated)
        if field.fields:
            errors += _check_fields(
                field.fields,
                (*here, "fields"),
                source,
                top_level=False,
                in_repeated=in_repeated or field.repeated,
                prefix=f"{path}.",
            )
    return errors


def _check_policy(
    field: FieldDef, path: str, loc: tuple[str | int, ...], source: Source, *, in_repeated: bool
) -> list[DefinitionError]:
    policy = field.privacy
    if policy in ("none", "drop"):
        return []
    where = (*loc, "privacy")
    if field.type == "RECORD":
        return [source.error(where, f"privacy: {policy} cannot apply to RECORD field {path!r}; put it on the record's fields")]
    allowed = POLICY_TYPES[policy]
    if field.type not in allowed:
        return [
            source.error(
                where,
                f"privacy: {policy} cannot apply to {field.type} field {path!r}; "
                f"it applies to {', '.join(sorted(allowed))}",
            )
        ]
    if policy == "user_id" and (field.repeated or in_repeated):
        return [source.error(where, f"privacy: user_id field {path!r} cannot be repeated: an event has one subject")]
    if policy == "user_id" and not field.required:
        return [source.error(where, f"privacy: user_id field {path!r} must be required: true")]
    return []


def check_retention(days: int, source: Source) -> list[DefinitionError]:
    low, high = RETENTION_DAYS
    if low <= days <= high:
        return []
    return [source.error(("retention_days",), f"retention_days {days} is out of bounds: use {low} to {high} days")]
