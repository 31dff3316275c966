"""Schema evolution: compare two versions of the event schemas and classify every change.

An event schema is a contract with two sides: producers (whose events the validator must
keep accepting) and readers (whose queries on `events.<name>_v<major>` must keep working).
Within a major version a schema may only grow in ways both sides survive: new optional
fields, better descriptions, operational settings. Anything else is *breaking* and must
ship as a new major version, which gets its own key (`<name>_v<N>`), topic and table while
the old version keeps running. `diff_catalogs` reports every change with what changed and
why it matters; `EvolutionReport.breaking_without_bump` lists the breaking changes that
were made in place (the CI check fails on them).

Decisions written down here because they are the rule book:

- A rename cannot be told apart from remove + add, so one removed and one added field of
  the same type at the same position (among the same parent's fields) are reported as
  `renamed a → b`; both halves are breaking anyway.
- Privacy policies are ordered by `PRIVACY_STRENGTH`. Weakening is breaking (data already
  promised protection would land in weaker form). Strengthening is compatible *unless*
  the warehouse column changes type or a REQUIRED column would lose its value
  (e.g. `none → encrypt` turns a STRING column into BYTES, which the existing table and
  clean-topic schema cannot take): that is reported as `warehouse_type_changed`.
- `user_id` is not on the strength scale: it names the data subject, which drives
  pseudonyms, per-user keys and erasure, so any change to or from it is breaking.
- `required → optional` is compatible (producers may omit it; BigQuery relaxes the column
  to NULLABLE in place) but readers must now expect NULL, which the message says.
- Removing an event type is breaking (its producers lose their topic). When a newer major
  version of the same event exists, the removal is a deliberate retirement: still reported
  as breaking, but it came with its bump (`event_retired`), so it does not fail the check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol

from dataplatform.compile.bigquery_schema import BqField, event_table
from dataplatform.definitions.models import EventSchema, FieldDef, format_duration

Compatibility = Literal["compatible", "breaking"]

PRIVACY_STRENGTH: Mapping[str, int] = MappingProxyType(
    {
        "none": 0,
        "truncate_ip": 1,
        "hash": 2,
        "encrypt_deterministic": 3,
        "encrypt": 4,
        "drop": 5,
    }
)
"""How well each privacy policy protects a field in the warehouse, weakest first.

`none` stores the value in clear; `truncate_ip` keeps the network part; `hash` (keyed HMAC)
hides the value but stays linkable forever, even after erasure; `encrypt_deterministic`
hides it, allows equality joins, and is crypto-shredded on erasure; `encrypt` (randomized)
does not even reveal equality; `drop` stores nothing. `user_id` is deliberately absent:
changing the subject field is breaking in both directions.
"""

# Change kinds, one per class of change. Compatible:
EVENT_ADDED = "event_added"
MAJOR_VERSION_ADDED = "major_version_added"
FIELD_ADDED = "field_added"  # optional
DESCRIPTION_CHANGED = "description_changed"
OWNER_CHANGED = "owner_changed"
DOMAIN_CHANGED = "domain_changed"
READERS_CHANGED = "readers_changed"
RETENTION_CHANGED = "retention_changed"
LATENESS_CHANGED = "lateness_changed"
CLUSTERING_CHANGED = "clustering_changed"
MADE_OPTIONAL = "made_optional"
PRIVACY_STRENGTHENED = "privacy_strengthened"
# Breaking:
EVENT_REMOVED = "event_removed"
EVENT_RETIRED = "event_retired"  # breaking, but a newer major version exists: not a failure
REQUIRED_FIELD_ADDED = "required_field_added"
FIELD_REMOVED = "field_removed"
FIELD_RENAMED = "field_renamed"
TYPE_CHANGED = "type_changed"
MADE_REQUIRED = "made_required"
REPEATED_CHANGED = "repeated_changed"
PRIVACY_WEAKENED = "privacy_weakened"
SUBJECT_CHANGED = "subject_changed"
WAREHOUSE_TYPE_CHANGED = "warehouse_type_changed"
PARTITIONING_CHANGED = "partitioning_changed"

_ACCEPTED_AS = frozenset({("INT64", "FLOAT64")})
"""(old, new) type pairs whose old values the payload validator still accepts (ints are valid FLOAT64)."""

_KEY = re.compile(r"^(?P<name>.+)_v(?P<version>\d+)$")


@dataclass(frozen=True)
class Change:
    """One difference between two versions of an event schema, classified."""

    key: str
    """The event key (`track_played_v1`) the change is in."""
    path: str | None
    """Dotted field path (`context.ip`), or None for a change of the event itself."""
    kind: str
    compatibility: Compatibility
    what: str
    """What changed, e.g. `type changed STRING → INT64`."""
    why: str
    """Why that is compatible or breaking, and what it means in operation."""

    @property
    def breaking(self) -> bool:
        return self.compatibility == "breaking"

    @property
    def message(self) -> str:
        return f"{self.what} — {self.why}"

    def __str__(self) -> str:
        where = f"{self.key}: field {self.path!r}" if self.path else self.key
        return f"{where}: {self.what} — {self.compatibility}: {self.why}"


@dataclass(frozen=True)
class EvolutionReport:
    """Every change between two catalogs' event schemas, sorted by event key."""

    changes: tuple[Change, ...]
    current_keys: tuple[str, ...] = ()
    """Event keys of the new side (to suggest the next free major version)."""
    against: str | None = None
    """The git ref the new side was compared with, when there was one."""

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.breaking)

    @property
    def compatible(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not c.breaking)

    @property
    def breaking_without_bump(self) -> tuple[Change, ...]:
        """Breaking changes made in place, i.e. not shipped as a new major version."""
        return tuple(c for c in self.changes if c.breaking and c.kind != EVENT_RETIRED)

    @property
    def exit_code(self) -> int:
        return 1 if self.breaking_without_bump else 0

    def next_major(self, key: str) -> tuple[str, int]:
        """(`name`, next free major version) for the event of `key`."""
        name, version = split_key(key)
        versions = [split_key(k)[1] for k in self.current_keys if split_key(k)[0] == name]
        return name, max([version, *versions]) + 1


def split_key(key: str) -> tuple[str, int]:
    """`track_played_v1` → (`track_played`, 1)."""
    match = _KEY.match(key)
    if not match:
        raise ValueError(f"{key!r} is not an event key (<name>_v<major>)")
    return match.group("name"), int(match.group("version"))


class _HasSchemas(Protocol):
    schemas: tuple[EventSchema, ...]


SchemaSet = Mapping[str, EventSchema] | Iterable[EventSchema] | _HasSchemas


def diff_catalogs(old: SchemaSet, new: SchemaSet) -> EvolutionReport:
    """Compare two sets of event schemas (a key → schema mapping, schemas, or a Catalog)."""
    before, after = _by_key(old), _by_key(new)
    names_before = {s.name for s in before.values()}
    changes: list[Change] = []
    for key in sorted(before.keys() | after.keys()):
        old_schema, new_schema = before.get(key), after.get(key)
        if old_schema is None and new_schema is not None and new_schema.name in names_before:
            changes.append(_major_version_added(new_schema, before))
        elif new_schema is None and old_schema is not None:
            changes.append(_removed(old_schema, after))
        else:
            changes += diff_schemas(old_schema, new_schema)
    return EvolutionReport(tuple(changes), tuple(sorted(after)))


def diff_schemas(old: EventSchema | None, new: EventSchema | None) -> list[Change]:
    """Every change from `old` to `new` of one event key (either side may be absent)."""
    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        return [
            Change(
                new.key, None, EVENT_ADDED, "compatible", "new event type",
                f"producers can start sending it; it gets topics {new.raw_topic}/{new.clean_topic} "
                f"and table {new.table_ref}",
            )
        ]
    if new is None:
        return [_removed(old, {})]
    if old.key != new.key:
        raise ValueError(f"diff_schemas compares one key; got {old.key!r} and {new.key!r}")
    changes = _event_changes(old, new)
    columns_old, columns_new = field_columns(old), field_columns(new)
    changes += _field_list_changes(old.key, old.fields, new.fields, "", "", columns_old, columns_new)
    return changes


def _by_key(schemas: SchemaSet) -> dict[str, EventSchema]:
    if isinstance(schemas, Mapping):
        return dict(schemas)
    items = schemas.schemas if hasattr(schemas, "schemas") else schemas
    out: dict[str, EventSchema] = {}
    for schema in items:  # type: ignore[union-attr]
        out.setdefault(schema.key, schema)
    return out


def _major_version_added(schema: EventSchema, before: Mapping[str, EventSchema]) -> Change:
    previous = sorted(k for k, s in before.items() if s.name == schema.name)
    return Change(
        schema.key, None, MAJOR_VERSION_ADDED, "compatible",
        f"new major version {schema.version} of {schema.name} (before: {', '.join(previous)})",
        f"it gets its own topics and table {schema.table_ref}; the previous version keeps "
        "running until its producers have moved",
    )


def _removed(schema: EventSchema, after: Mapping[str, EventSchema]) -> Change:
    successors = sorted(
        (s for s in after.values() if s.name == schema.name and s.version > schema.version),
        key=lambda s: s.version,
    )
    if successors:
        return Change(
            schema.key, None, EVENT_RETIRED, "breaking",
            f"event type removed (retired in favour of {successors[-1].key})",
            f"producers still sending version {schema.version} lose topic {schema.raw_topic}; "
            f"make sure they all moved to {successors[-1].key} and export what {schema.table_ref} must keep",
        )
    return Change(
        schema.key, None, EVENT_REMOVED, "breaking", "event type removed",
        f"producers lose topic {schema.raw_topic} (their events fail as unknown_event_type) and "
        f"readers lose {schema.table_ref}",
    )


# --------------------------------------------------------------------------- event level


def _event_changes(old: EventSchema, new: EventSchema) -> list[Change]:
    key = new.key
    out: list[Change] = []
    if old.description != new.description:
        out.append(Change(key, None, DESCRIPTION_CHANGED, "compatible", "description changed",
                          "documentation only; the table description is updated on deploy"))
    if old.owner != new.owner:
        out.append(Change(key, None, OWNER_CHANGED, "compatible", f"owner changed {old.owner} → {new.owner}",
                          "the owner label changes and alerts go to the new team"))
    if old.domain != new.domain:
        out.append(Change(key, None, DOMAIN_CHANGED, "compatible", f"domain changed {old.domain} → {new.domain}",
                          "the domain label changes; cost reports and catalogs group it differently"))
    if old.readers != new.readers:
        added = [r for r in new.readers if r not in old.readers]
        removed = [r for r in old.readers if r not in new.readers]
        parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
        out.append(Change(key, None, READERS_CHANGED, "compatible", f"readers changed ({'; '.join(parts) or 'reordered'})",
                          "table access (IAM) changes on deploy" + ("; removed readers lose access to the table" if removed else "")))
    if old.retention_days != new.retention_days:
        shorter = new.retention_days < old.retention_days
        impact = (
            f"partitions older than {new.retention_days} days are deleted once deployed, irrecoverably"
            if shorter
            else "data is kept longer; check that the privacy notice allows it"
        )
        out.append(Change(key, None, RETENTION_CHANGED, "compatible",
                          f"retention changed {old.retention_days} → {new.retention_days} days", impact))
    if old.allowed_lateness != new.allowed_lateness:
        before, after = format_duration(old.allowed_lateness), format_duration(new.allowed_lateness)
        impact = (
            f"events more than {after} late are now rejected as too_late"
            if new.allowed_lateness < old.allowed_lateness
            else f"events up to {after} late are accepted; freshness checks wait longer for late data"
        )
        out.append(Change(key, None, LATENESS_CHANGED, "compatible", f"allowed lateness changed {before} → {after}", impact))
    if old.clustering != new.clustering:
        out.append(Change(
            key, None, CLUSTERING_CHANGED, "compatible",
            f"clustering changed {_list(old.clustering)} → {_list(new.clustering)}",
            "applies to newly written data; existing partitions keep their clustering until rewritten",
        ))
    if old.partitioning != new.partitioning:
        out.append(Change(
            key, None, PARTITIONING_CHANGED, "breaking",
            f"partitioning changed {old.partitioning} → {new.partitioning}",
            f"the partitioning of {new.table_ref} cannot change in place: the table would have to be "
            "recreated, and readers' partition filters change",
        ))
    return out


def _list(items: tuple[str, ...]) -> str:
    return f"[{', '.join(items)}]" if items else "(default)"


# --------------------------------------------------------------------------- field level


def field_columns(schema: EventSchema) -> dict[str, tuple[str, BqField]]:
    """Field path → (column path, warehouse column) in the anonymized table.

    The column is what `compile.bigquery_schema.event_table` makes of the field (a
    `user_id` field becomes `user_pseudonym`, encrypted fields BYTES, ...); dropped fields
    (and RECORDs whose fields are all dropped) have no entry.
    """
    out: dict[str, tuple[str, BqField]] = {}

    def walk(fields: tuple[FieldDef, ...], columns: tuple[BqField, ...], prefix: str, column_prefix: str) -> None:
        by_name = {c.name: c for c in columns}
        for f in fields:
            name = "user_pseudonym" if f.privacy == "user_id" else f.name
            column = by_name.get(name) if f.privacy != "drop" else None
            if column is None:
                continue
            out[f"{prefix}{f.name}"] = (f"{column_prefix}{name}", column)
            if f.fields:
                walk(f.fields, column.fields, f"{prefix}{f.name}.", f"{column_prefix}{name}.")

    walk(schema.fields, event_table(schema).fields, "", "")
    return out


def _field_list_changes(
    key: str,
    old: tuple[FieldDef, ...],
    new: tuple[FieldDef, ...],
    old_prefix: str,
    prefix: str,
    columns_old: Mapping[str, tuple[str, BqField]],
    columns_new: Mapping[str, tuple[str, BqField]],
) -> list[Change]:
    old_names = {f.name for f in old}
    new_names = {f.name for f in new}
    removed = {i: f for i, f in enumerate(old) if f.name not in new_names}
    added = {j: f for j, f in enumerate(new) if f.name not in old_names}
    renames = {i: added[i] for i, f in removed.items() if i in added and added[i].type == f.type}

    out: list[Change] = []
    new_by_name = {f.name: f for f in new}
    for i, f in enumerate(old):
        path, old_path = f"{prefix}{f.name}", f"{old_prefix}{f.name}"
        if i in renames:
            target = renames[i]
            out.append(Change(
                key, old_path, FIELD_RENAMED, "breaking", f"renamed {f.name} → {target.name}",
                f"producers still send {f.name!r}, which is now an unknown field (schema_violation), "
                f"and readers' queries on column {f.name!r} break",
            ))
            out += _field_changes(key, f, target, old_path, f"{prefix}{target.name}", columns_old, columns_new)
        elif i in removed:
            out.append(Change(
                key, old_path, FIELD_REMOVED, "breaking", "removed",
                "producers still sending it get schema_violation (unknown field), and readers of "
                "its column get no new values",
            ))
        else:
            out += _field_changes(key, f, new_by_name[f.name], old_path, path, columns_old, columns_new)
    for j, f in added.items():
        if j in renames:  # a rename pairs old and new fields at the same index
            continue
        out.append(_added(key, f, f"{prefix}{f.name}"))
    return out


def _added(key: str, f: FieldDef, path: str) -> Change:
    what = f"added ({f.type}{', repeated' if f.repeated else ''}{', ' + f.privacy if f.privacy != 'none' else ''})"
    if f.required:
        return Change(
            key, path, REQUIRED_FIELD_ADDED, "breaking", f"added as required ({f.type})",
            "producers of the current version do not send it, so their events would fail as "
            "schema_violation; add it as optional, or in a new major version",
        )
    return Change(
        key, path, FIELD_ADDED, "compatible", what,
        "optional, so existing producers keep validating; the table gets a NULLABLE column on deploy",
    )


def _field_changes(
    key: str,
    old: FieldDef,
    new: FieldDef,
    old_path: str,
    path: str,
    columns_old: Mapping[str, tuple[str, BqField]],
    columns_new: Mapping[str, tuple[str, BqField]],
) -> list[Change]:
    """Changes of one field present on both sides (`old_path` differs from `path` after a rename)."""
    out: list[Change] = []
    if old.type != new.type:
        producers = (
            f"producers' values still validate as {new.type}, but"
            if (old.type, new.type) in _ACCEPTED_AS
            else f"producers' {old.type} values fail validation as {new.type}, and"
        )
        out.append(Change(
            key, path, TYPE_CHANGED, "breaking", f"type changed {old.type} → {new.type}",
            f"{producers} the table column, the clean topic's Avro schema and readers' queries "
            f"expect {old.type}",
        ))
    if old.repeated != new.repeated:
        what = "made repeated (array)" if new.repeated else "no longer repeated"
        out.append(Change(
            key, path, REPEATED_CHANGED, "breaking", what,
            "a single value and an array are different shapes: producers' events fail validation "
            "and the column mode (REPEATED) cannot change in place",
        ))
    if old.required != new.required:
        if new.required:
            out.append(Change(
                key, path, MADE_REQUIRED, "breaking", "optional → required",
                "producers that omit it (allowed until now) would get schema_violation",
            ))
        else:
            out.append(Change(
                key, path, MADE_OPTIONAL, "compatible", "required → optional",
                "producers may now omit it; the column is relaxed to NULLABLE, so readers must expect NULL",
            ))
    if old.privacy != new.privacy:
        out += _privacy_change(key, old, new, path, columns_old.get(old_path), columns_new.get(path))
    if old.description != new.description:
        out.append(Change(key, path, DESCRIPTION_CHANGED, "compatible", "description changed",
                          "documentation only; the column description is updated on deploy"))
    if old.type == new.type == "RECORD":
        out += _field_list_changes(key, old.fields, new.fields, f"{old_path}.", f"{path}.", columns_old, columns_new)
    return out


def _privacy_change(
    key: str,
    old: FieldDef,
    new: FieldDef,
    path: str,
    column_old: tuple[str, BqField] | None,
    column_new: tuple[str, BqField] | None,
) -> list[Change]:
    what = f"privacy changed {old.privacy} → {new.privacy}"
    if "user_id" in (old.privacy, new.privacy):
        return [Change(
            key, path, SUBJECT_CHANGED, "breaking", what,
            "the data subject changes: pseudonyms, per-user encryption keys and erasure all "
            "follow the user_id field, so existing rows would belong to a different subject",
        )]
    if PRIVACY_STRENGTH[new.privacy] < PRIVACY_STRENGTH[old.privacy]:
        return [Change(
            key, path, PRIVACY_WEAKENED, "breaking", f"privacy weakened {old.privacy} → {new.privacy}",
            "the field would land in the warehouse less protected than readers and data subjects "
            "were promised; a weaker policy needs a new major version and a privacy review",
        )]
    if old.type != new.type:
        return []  # the type change is reported and is breaking already
    problem = _column_problem(column_old, column_new)
    if problem:
        return [Change(
            key, path, WAREHOUSE_TYPE_CHANGED, "breaking", f"privacy strengthened {old.privacy} → {new.privacy}",
            f"stronger protection is right, but {problem}; ship it as a new major version",
        )]
    return [Change(
        key, path, PRIVACY_STRENGTHENED, "compatible", f"privacy strengthened {old.privacy} → {new.privacy}",
        "new events are stored better protected; rows already stored keep the old form until their "
        "partitions expire",
    )]


def _column_problem(old: tuple[str, BqField] | None, new: tuple[str, BqField] | None) -> str | None:
    """Why the existing warehouse column cannot take the new form of a field, or None."""
    if old is None:
        return None  # no column before: nothing to break
    name, before = old
    if new is None:
        if before.mode == "REQUIRED":
            return f"the REQUIRED column {name!r} would get no value"
        return None  # the column stays and is NULL from now on
    after = new[1]
    if before.type != after.type:
        return f"the warehouse column {name!r} would change type {before.type} → {after.type}"
    return None


__all__ = [
    "PRIVACY_STRENGTH",
    "Change",
    "EvolutionReport",
    "diff_catalogs",
    "diff_schemas",
    "field_columns",
    "split_key",
]
