"""Typed, frozen models of the two kinds of definition: event schemas and data endpoints.

These models are the platform's user interface in code: everything downstream (compilers,
privacy, pipeline, infra) reads them, never the YAML. They check shape and local value
rules only; rules that span fields or files (one `user_id` field, policy fits the type,
unknown tables in SQL, cron syntax, ...) live in `definitions/checks.py` so that every
problem of every file is reported in one pass with its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints

# --------------------------------------------------------------------------- scalar types

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
"""Lower snake case: a BigQuery column/table name that is also a Pub/Sub and label-safe id."""

LabelValue = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
"""A GCP label value (owner, domain): lower case letters, digits, `-` and `_`."""

Member = Annotated[
    str, StringConstraints(pattern=r"^(user|group|serviceAccount|domain):[^\s:]+$")
]
"""An IAM member. Public members (`allUsers`, `allAuthenticatedUsers`) are never allowed."""

_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: object) -> object:
    """`"90m"`, `"2h"`, `"3d"` → timedelta; anything else is left for pydantic to reject."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(f"duration {value!r} must look like 30m, 2h or 3d")
        if int(match.group(1)) == 0:
            raise ValueError(f"duration {value!r} must be longer than zero")
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return value


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]

FieldType = Literal["STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "DATE", "RECORD"]
FIELD_TYPES: tuple[str, ...] = FieldType.__args__  # type: ignore[attr-defined]

Privacy = Literal[
    "none", "user_id", "encrypt", "encrypt_deterministic", "hash", "truncate_ip", "drop"
]
PRIVACY_POLICIES: tuple[str, ...] = Privacy.__args__  # type: ignore[attr-defined]

ENCRYPTING = frozenset({"encrypt", "encrypt_deterministic"})
"""Policies that need the user's per-user keyset (and so a `user_id` field in the event)."""

PII_POLICIES = frozenset(PRIVACY_POLICIES) - {"none"}

RETENTION_DAYS = (1, 3650)
"""Bounds for `retention_days` of event and endpoint tables: a day to ten years."""

EVENTS_DATASET = "events"
ENDPOINTS_DATASET = "endpoints"
PLATFORM_DATASET = "platform"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- event schemas


class FieldDef(_Strict):
    """One field of an event payload. `RECORD` fields nest `fields`; `repeated` makes an array."""

    name: Identifier
    type: FieldType
    description: str = Field(min_length=1)
    required: bool = False
    repeated: bool = False
    privacy: Privacy = "none"
    fields: tuple[FieldDef, ...] = ()


class EventSchema(_Strict):
    """An event type at one major version: the payload contract and its warehouse table."""

    name: Identifier
    version: int = Field(ge=1, le=99)
    owner: LabelValue
    domain: LabelValue
    description: str = Field(min_length=1)
    retention_days: int
    partitioning: Literal["DAY", "HOUR"] = "DAY"
    allowed_lateness: Duration = timedelta(hours=2)
    clustering: tuple[Identifier, ...] = ()
    readers: tuple[Member, ...] = ()
    fields: tuple[FieldDef, ...] = Field(min_length=1)

    @property
    def key(self) -> str:
        """`<name>_v<major>`: the id of the clean topic and of the warehouse table."""
        return f"{self.name}_v{self.version}"

    @property
    def table(self) -> str:
        return self.key

    @property
    def table_ref(self) -> str:
        return f"{EVENTS_DATASET}.{self.key}"

    @property
    def dedup_view(self) -> str:
        return f"{self.key}_dedup"

    @property
    def raw_topic(self) -> str:
        return f"{self.key}-raw"

    @property
    def clean_topic(self) -> str:
        return self.key

    def walk(self) -> Iterator[tuple[str, FieldDef]]:
        """Every field, depth first, with its dotted path (`context.device.os`)."""
        yield from walk_fields(self.fields)

    @property
    def user_id_field(self) -> str | None:
        """Dotted path of the field holding the data subject's id, if any."""
        return next((path for path, f in self.walk() if f.privacy == "user_id"), None)

    def pii_fields(self) -> list[tuple[str, FieldDef]]:
        return [(path, f) for path, f in self.walk() if f.privacy in PII_POLICIES]


def walk_fields(fields: tuple[FieldDef, ...], prefix: str = "") -> Iterator[tuple[str, FieldDef]]:
    for field in fields:
        path = f"{prefix}{field.name}"
        yield path, field
        if field.fields:
            yield from walk_fields(field.fields, f"{path}.")


# --------------------------------------------------------------------------- data endpoints


class _Check(_Strict):
    name: Identifier | None = None
    severity: Literal["error", "warn"] = "error"


class NotNullCheck(_Check):
    """Every listed column is non-NULL in the new partition."""

    type: Literal["not_null"]
    columns: tuple[Identifier, ...] = Field(min_length=1)


class UniqueCheck(_Check):
    """The combination of the listed columns is unique within the new partition."""

    type: Literal["unique"]
    columns: tuple[Identifier, ...] = Field(min_length=1)


class AcceptedValuesCheck(_Check):
    """`column` only takes the listed values (NULL is left to `not_null`)."""

    type: Literal["accepted_values"]
    column: Identifier
    values: tuple[Union[str, int, float, bool], ...] = Field(min_length=1)


class RowCountCheck(_Check):
    """The new partition has between `min` and `max` rows (either bound optional)."""

    type: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class RelationshipCheck(_Check):
    """Every non-NULL `column` value exists as `field` in the upstream table `to`."""

    type: Literal["relationship"]
    column: Identifier
    to: str
    field: Identifier


class SqlAssertionCheck(_Check):
    """A custom BigQuery SQL query returning the failing rows (may use `@run_date`)."""

    type: Literal["sql"]
    sql: str = Field(min_length=1)


Check = Annotated[
    Union[
        NotNullCheck,
        UniqueCheck,
        AcceptedValuesCheck,
        RowCountCheck,
        RelationshipCheck,
        SqlAssertionCheck,
    ],
    Field(discriminator="type"),
]
CHECK_TYPES = ("not_null", "unique", "accepted_values", "row_count", "relationship", "sql")


class Endpoint(_Strict):
    """A data endpoint: a table whose `@run_date` partition a scheduled query (re)writes.

    `sql` comes from the `<name>.sql` file next to the YAML. The destination is partitioned
    by the DATE column `partition_field`, which the query must return (usually
    `@run_date AS date`). `freshness_deadline` is measured from the end of the partition's
    day: `6h` means the partition for D must have succeeded by D+1 06:00 UTC.
    """

    name: Identifier
    owner: LabelValue
    domain: LabelValue
    description: str = Field(min_length=1)
    schedule: str
    sql: str = Field(min_length=1)
    partition_field: Identifier = "date"
    retention_days: int
    clustering: tuple[Identifier, ...] = ()
    readers: tuple[Member, ...] = ()
    freshness_deadline: Duration = timedelta(hours=6)
    checks: tuple[Check, ...] = ()

    @property
    def table(self) -> str:
        return self.name

    @property
    def table_ref(self) -> str:
        return f"{ENDPOINTS_DATASET}.{self.name}"
