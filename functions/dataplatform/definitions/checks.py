"""Rules that span fields or files, run after every file parsed into its model.

Each check returns `DefinitionError`s (never raises), so the loader reports all problems of
all files at once. Kept apart from the models because they need the source line map and
the whole catalog (names, SQL references, the endpoint dependency graph).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from croniter import croniter

from dataplatform.compile import sql as sqlc
from dataplatform.definitions.messages import did_you_mean
from dataplatform.definitions.models import (
    ENCRYPTING,
    RETENTION_DAYS,
    Endpoint,
    EventSchema,
    FieldDef,
    RelationshipCheck,
)

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog, DefinitionError, Source

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


def check_file_name(definition: EventSchema | Endpoint, path: Path, source: Source) -> list[DefinitionError]:
    """`schemas/<name>.yaml` (or `<name>_v<N>.yaml`), `workflows/<name>.yaml`."""
    allowed = {definition.name}
    if isinstance(definition, EventSchema):
        allowed.add(definition.key)
    if path.stem in allowed:
        return []
    return [source.error(("name",), f"name {definition.name!r} does not match the file name {path.name!r}; rename one of them")]


def check_catalog(catalog: Catalog) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    for schema in catalog.schemas:
        errors += check_schema(schema, catalog.source(schema.key))
    errors += _check_duplicate_names(catalog)
    for endpoint in catalog.endpoints:
        errors += check_endpoint(endpoint, catalog.source(endpoint.name), catalog)
    errors += _check_cycles(catalog)
    return errors


# --------------------------------------------------------------------------- event schemas


def check_schema(schema: EventSchema, source: Source) -> list[DefinitionError]:
    errors = _check_retention(schema.retention_days, source)
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

    columns = _clean_columns(schema)
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


def _clean_columns(schema: EventSchema) -> list[str]:
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
) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    seen: set[str] = set()
    for i, field in enumerate(fields):
        here = (*loc, i)
        if field.name in seen:
            errors.append(source.error((*here, "name"), f"duplicate field name {field.name!r}"))
        seen.add(field.name)
        if top_level and field.name in RESERVED_COLUMNS:
            errors.append(
                source.error(
                    (*here, "name"),
                    f"field name {field.name!r} is reserved: the platform adds it to every table",
                )
            )
        if field.type == "RECORD" and not field.fields:
            errors.append(source.error((*here, "type"), f"RECORD field {field.name!r} needs a list of fields"))
        if field.type != "RECORD" and field.fields:
            errors.append(
                source.error((*here, "fields"), f"field {field.name!r} of type {field.type} cannot have fields; use type: RECORD")
            )
        errors += _check_policy(field, here, source, in_repeated=in_repeated)
        if field.fields:
            errors += _check_fields(
                field.fields, (*here, "fields"), source, top_level=False, in_repeated=in_repeated or field.repeated
            )
    return errors


def _check_policy(field: FieldDef, loc: tuple[str | int, ...], source: Source, *, in_repeated: bool) -> list[DefinitionError]:
    policy = field.privacy
    if policy in ("none", "drop"):
        return []
    where = (*loc, "privacy")
    if field.type == "RECORD":
        return [source.error(where, f"privacy: {policy} cannot apply to RECORD field {field.name!r}; put it on the record's fields")]
    allowed = POLICY_TYPES[policy]
    if field.type not in allowed:
        return [
            source.error(
                where,
                f"privacy: {policy} cannot apply to {field.type} field {field.name!r}; "
                f"it applies to {', '.join(sorted(allowed))}",
            )
        ]
    if policy == "user_id" and (field.repeated or in_repeated):
        return [source.error(where, f"privacy: user_id field {field.name!r} cannot be repeated: an event has one subject")]
    if policy == "user_id" and not field.required:
        return [source.error(where, f"privacy: user_id field {field.name!r} must be required: true")]
    return []


def _check_retention(days: int, source: Source) -> list[DefinitionError]:
    low, high = RETENTION_DAYS
    if low <= days <= high:
        return []
    return [source.error(("retention_days",), f"retention_days {days} is out of bounds: use {low} to {high} days")]


def _check_duplicate_names(catalog: Catalog) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    owners: dict[str, str] = {}
    for schema in catalog.schemas:
        source = catalog.source(schema.key)
        if schema.key in owners and owners[schema.key] != source.path:
            errors.append(source.error(("name",), f"duplicate event type {schema.key!r}: also defined in {owners[schema.key]}"))
        owners.setdefault(schema.key, source.path)
        owners.setdefault(schema.name, source.path)
    for endpoint in catalog.endpoints:
        source = catalog.source(endpoint.name)
        if endpoint.name in owners and owners[endpoint.name] != source.path:
            errors.append(
                source.error(("name",), f"duplicate name {endpoint.name!r}: also defined in {owners[endpoint.name]}")
            )
        owners.setdefault(endpoint.name, source.path)
    return errors


# --------------------------------------------------------------------------- data endpoints


def check_endpoint(endpoint: Endpoint, source: Source, catalog: Catalog) -> list[DefinitionError]:
    errors = _check_retention(endpoint.retention_days, source)
    if not croniter.is_valid(endpoint.schedule) or len(endpoint.schedule.split()) != 5:
        errors.append(
            source.error(
                ("schedule",),
                f"schedule {endpoint.schedule!r} is not a valid cron expression "
                "(5 fields: minute hour day-of-month month day-of-week, e.g. '0 4 * * *')",
            )
        )
    sql_path = str(Path(source.path).with_suffix(".sql"))
    tables = catalog.tables()
    try:
        tree = sqlc.parse(endpoint.sql)
    except sqlc.SqlSyntaxError as exc:
        from dataplatform.definitions.loader import DefinitionError

        return [*errors, DefinitionError(sql_path, exc.line, str(exc))]
    errors += _check_sql_tables(endpoint, tree, sql_path, tables)
    selects = tree.named_selects if hasattr(tree, "named_selects") else []
    if "*" not in selects and endpoint.partition_field not in selects:
        from dataplatform.definitions.loader import DefinitionError

        errors.append(
            DefinitionError(
                sql_path,
                1,
                f"the query must return the partition column {endpoint.partition_field!r} "
                f"(e.g. `@run_date AS {endpoint.partition_field}`)",
            )
        )
    for i, check in enumerate(endpoint.checks):
        if isinstance(check, RelationshipCheck) and check.to not in tables:
            errors.append(
                source.error(
                    ("checks", i, "to"),
                    f"relationship check refers to unknown table {check.to!r}{did_you_mean(check.to, tables)}",
                )
            )
    return errors


def _check_sql_tables(endpoint: Endpoint, tree, sql_path: str, tables: dict) -> list[DefinitionError]:
    from dataplatform.definitions.loader import DefinitionError

    errors: list[DefinitionError] = []
    for ref in sqlc.referenced_tables(tree):
        if ref.ref == endpoint.table_ref:
            errors.append(DefinitionError(sql_path, ref.line, f"endpoint {endpoint.name!r} reads its own table"))
        elif not ref.dataset:
            errors.append(
                DefinitionError(sql_path, ref.line, f"table {ref.table!r} must be qualified with its dataset (events. or endpoints.)")
            )
        elif ref.ref not in tables:
            errors.append(
                DefinitionError(sql_path, ref.line, f"unknown table {ref.ref!r}{did_you_mean(ref.ref, tables)}")
            )
    return errors


def endpoint_upstreams(catalog: Catalog) -> dict[str, list[str]]:
    """Endpoint name → names of endpoints it reads (the scheduling graph)."""
    names = {e.table_ref: e.name for e in catalog.endpoints}
    graph: dict[str, list[str]] = {}
    for endpoint in catalog.endpoints:
        try:
            refs = sqlc.upstream_refs(endpoint.sql)
        except sqlc.SqlSyntaxError:
            refs = []
        graph[endpoint.name] = [names[r] for r in refs if r in names and names[r] != endpoint.name]
    return graph


def _check_cycles(catalog: Catalog) -> list[DefinitionError]:
    graph = endpoint_upstreams(catalog)
    errors: list[DefinitionError] = []
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for upstream in graph.get(node, []):
            if state.get(upstream) == 1:
                cycle = stack[stack.index(upstream):] + [upstream] if upstream in stack else [node, upstream]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    errors.append(
                        catalog.source(node).error(("name",), f"endpoints form a cycle: {' -> '.join(cycle)}")
                    )
            elif upstream not in state:
                visit(upstream, [*stack, upstream])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return errors
