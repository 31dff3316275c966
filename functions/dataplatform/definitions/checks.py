"""Rules that span fields or files, run after every file parsed into its model.

Each check returns `DefinitionError`s (never raises), so the loader reports all problems of
all files at once. Kept apart from the models because they need the source line map and
the whole catalog (names, SQL references, the endpoint dependency graph).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from croniter import croniter

from dataplatform.compile import sql as sqlc
from dataplatform.definitions.messages import closest, did_you_mean
from dataplatform.definitions.models import (
    ENCRYPTING,
    ENDPOINTS_DATASET,
    EVENTS_DATASET,
    RETENTION_DAYS,
    Endpoint,
    EventSchema,
    FieldDef,
    RelationshipCheck,
    RowCountCheck,
    SqlAssertionCheck,
    format_duration,
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

MAX_PARTITIONS = 10_000
"""BigQuery's limit of partitions per table: bounds retention of HOUR-partitioned tables."""

QUERY_PARAMETERS = {"run_date": "DATE", "run_time": "TIMESTAMP"}
"""The parameters BigQuery scheduled queries (and the local runner) give an endpoint's SQL."""


def check_file_name(definition: EventSchema | Endpoint, path: Path, source: Source) -> list[DefinitionError]:
    """`schemas/<name>.yaml` (or `<name>_v<N>.yaml`), `workflows/<name>.yaml`."""
    allowed = {definition.name}
    if isinstance(definition, EventSchema):
        allowed.add(definition.key)
    if path.stem in allowed:
        return []
    return [source.error(("name",), f"name {definition.name!r} does not match the file name {path.name!r}; rename one of them")]


def check_catalog(catalog: Catalog, pending: Pending | None = None) -> list[DefinitionError]:
    """Every cross-check over the loaded catalog; `pending` = files that did not load."""
    pending = pending or Pending()
    errors: list[DefinitionError] = []
    for schema in catalog.schemas:
        errors += check_schema(schema, catalog.source(schema.key))
    errors += _check_duplicate_names(catalog)
    for endpoint in catalog.endpoints:
        errors += check_endpoint(endpoint, catalog.source(endpoint.name), catalog, pending)
    for schema in pending.schemas:
        if schema.salvaged is not None and isinstance(schema.salvaged.model, EventSchema):
            errors += schema.salvaged.keep(check_schema(schema.salvaged.model, schema.salvaged.source))
    for broken in pending.endpoints:
        salvaged = broken.salvaged
        if salvaged is not None and isinstance(salvaged.model, Endpoint) and broken.sql is not None:
            errors += salvaged.keep(check_endpoint(salvaged.model, salvaged.source, catalog, pending))
        elif broken.sql is not None:
            errors += check_sql(broken.name, broken.sql, broken.sql_path, catalog, pending)[0]
    errors += _check_cycles(catalog)
    return errors


# --------------------------------------------------------------------------- files that did not load


@dataclass(frozen=True)
class Salvaged:
    """A best-effort repair of a file that did not load (see `definitions.repair`).

    Its cross-checks run like any other file's, except on `reported_lines`, the lines that
    already have a shape error: a check there would judge the repair, not the file.
    """

    model: EventSchema | Endpoint
    source: Source
    reported_lines: frozenset[int]

    def keep(self, errors: list[DefinitionError]) -> list[DefinitionError]:
        return [e for e in errors if e.path != self.source.path or e.line not in self.reported_lines]


@dataclass(frozen=True)
class BrokenSchema:
    """What can still be read of a schema file that did not load.

    Endpoints that read its table then get no follow-on "unknown table" error: the
    schema's own errors are the ones to fix.
    """

    name: str
    version: int | None
    salvaged: Salvaged | None = None

    @classmethod
    def guess(cls, data: Any, stem: str, salvaged: Salvaged | None = None) -> BrokenSchema:
        data = data if isinstance(data, dict) else {}
        name, version = data.get("name"), data.get("version")
        if not isinstance(name, str):
            match = re.fullmatch(r"(.+)_v(\d+)", stem)
            name = match.group(1) if match else stem
        if not isinstance(version, int) or isinstance(version, bool):
            version = None
        return cls(name, version, salvaged)

    def covers(self, ref: str) -> bool:
        match = re.fullmatch(rf"{EVENTS_DATASET}\.(.+)_v(\d+)(_dedup)?", ref)
        return bool(match) and match.group(1) == self.name and (
            self.version is None or int(match.group(2)) == self.version
        )


@dataclass(frozen=True)
class BrokenEndpoint:
    """What can still be read of an endpoint whose YAML did not load (or has no SQL).

    Its SQL is still parsed and checked, so one pass shows the SQL's mistakes too.
    """

    name: str
    sql_path: str
    sql: str | None
    salvaged: Salvaged | None = None

    @classmethod
    def guess(
        cls, data: Any, stem: str, sql_path: str, sql: str | None, salvaged: Salvaged | None = None
    ) -> BrokenEndpoint:
        name = data.get("name") if isinstance(data, dict) else None
        return cls(name if isinstance(name, str) else stem, sql_path, sql, salvaged)

    def covers(self, ref: str) -> bool:
        return ref == f"{ENDPOINTS_DATASET}.{self.name}"


@dataclass
class Pending:
    """The definitions that did not load, kept so their names still resolve."""

    schemas: list[BrokenSchema] = dc_field(default_factory=list)
    endpoints: list[BrokenEndpoint] = dc_field(default_factory=list)

    def covers(self, ref: str) -> bool:
        return any(b.covers(ref) for b in [*self.schemas, *self.endpoints])

    def tables(self) -> list[str]:
        """The table names these definitions would have had, for "did you mean"."""
        out = [f"{ENDPOINTS_DATASET}.{b.name}" for b in self.endpoints]
        for b in self.schemas:
            if b.version is not None:
                out += [f"{EVENTS_DATASET}.{b.name}_v{b.version}", f"{EVENTS_DATASET}.{b.name}_v{b.version}_dedup"]
        return out


# --------------------------------------------------------------------------- event schemas


def check_schema(schema: EventSchema, source: Source) -> list[DefinitionError]:
    errors = _check_retention(schema.retention_days, source)
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
            errors.append(source.error(("name",), f"duplicate event type {schema.key!r}: also defined in {owners[schema.key]}; rename or remove one"))
        owners.setdefault(schema.key, source.path)
        owners.setdefault(schema.name, source.path)
    for endpoint in catalog.endpoints:
        source = catalog.source(endpoint.name)
        if endpoint.name in owners and owners[endpoint.name] != source.path:
            errors.append(
                source.error(("name",), f"duplicate name {endpoint.name!r}: also defined in {owners[endpoint.name]}; rename or remove one")
            )
        owners.setdefault(endpoint.name, source.path)
    return errors


# --------------------------------------------------------------------------- data endpoints


def check_endpoint(
    endpoint: Endpoint, source: Source, catalog: Catalog, pending: Pending | None = None
) -> list[DefinitionError]:
    pending = pending or Pending()
    errors = _check_retention(endpoint.retention_days, source)
    if not croniter.is_valid(endpoint.schedule) or len(endpoint.schedule.split()) != 5:
        errors.append(
            source.error(
                ("schedule",),
                f"schedule {endpoint.schedule!r} is not a valid cron expression "
                "(5 fields: minute hour day-of-month month day-of-week, e.g. '0 4 * * *')",
            )
        )
    sql_path = str(Path(source.path).with_suffix(".sql").as_posix())
    sql_errors, tree = check_sql(endpoint.name, endpoint.sql, sql_path, catalog, pending)
    errors += sql_errors
    columns = output_columns(tree) if tree is not None else None
    if columns is not None:
        errors += _check_output_columns(endpoint, columns, source, sql_path)
    errors += _check_quality_checks(endpoint, source, catalog, pending)
    return errors


def check_sql(
    name: str, sql: str, sql_path: str, catalog: Catalog, pending: Pending | None = None
) -> tuple[list[DefinitionError], sqlc.exp.Expression | None]:
    """An endpoint's query on its own: syntax, one SELECT, parameters, tables it reads."""
    from dataplatform.definitions.loader import DefinitionError

    pending = pending or Pending()
    try:
        tree = sqlc.parse(sql)
    except sqlc.SqlSyntaxError as exc:
        return [DefinitionError(sql_path, exc.line, syntax_message(exc))], None
    if not isinstance(tree, sqlc.exp.Query):
        found = (
            f"{len(tree.expressions)} statements"
            if isinstance(tree, sqlc.exp.Block)
            else f"a {tree.key.upper()} statement"
        )
        return [
            DefinitionError(
                sql_path, 1,
                f"the SQL must be one SELECT query, found {found}; the platform writes the "
                "query's result into the endpoint's partition itself",
            )
        ], None
    errors: list[DefinitionError] = []
    used = _parameters(sql)
    for parameter, line in used:
        if parameter not in QUERY_PARAMETERS:
            errors.append(
                DefinitionError(
                    sql_path, line,
                    f"unknown query parameter @{parameter}{_did_you_mean_parameter(parameter)}; "
                    "an endpoint's query gets @run_date (DATE) and @run_time (TIMESTAMP)",
                )
            )
    if not any(p in QUERY_PARAMETERS for p, _ in used):
        errors.append(
            DefinitionError(
                sql_path, 1,
                "the query uses neither @run_date nor @run_time, so every run would write the same "
                "rows into its own day; filter the input by @run_date (e.g. WHERE DATE(event_time) = @run_date)",
            )
        )
    tables = catalog.tables()
    for ref in sqlc.referenced_tables(tree):
        if ref.ref == f"{ENDPOINTS_DATASET}.{name}":
            errors.append(DefinitionError(sql_path, ref.line, f"endpoint {name!r} reads its own table"))
        elif not ref.dataset:
            errors.append(
                DefinitionError(
                    sql_path, ref.line,
                    f"table {ref.table!r} must be qualified with its dataset "
                    f"({EVENTS_DATASET}. or {ENDPOINTS_DATASET}.){_did_you_mean_qualified(ref.table, tables)}",
                )
            )
        elif ref.ref not in tables and not pending.covers(ref.ref):
            errors.append(
                DefinitionError(
                    sql_path, ref.line, f"unknown table {ref.ref!r}{did_you_mean(ref.ref, [*tables, *pending.tables()])}"
                )
            )
    return errors, tree


_TOKEN = re.compile(r"<Token token_type: TokenType\.\w+, text: (.*?), line: \d+.*?>")
_REQUIRED = re.compile(r"Required keyword: '\w+' missing for <class '[\w.]*?(\w+)'>")


def syntax_message(exc: sqlc.SqlSyntaxError) -> str:
    """sqlglot's parse error without its internals (token reprs, class paths)."""
    if "No expression was parsed" in str(exc) or str(exc).endswith("SQL is empty"):
        return "SQL is empty: write one SELECT query"
    text = _TOKEN.sub(lambda m: repr(m.group(1)), str(exc))
    text = _REQUIRED.sub(lambda m: f"incomplete {m.group(1).upper()} clause", text)
    return " ".join(text.split())  # one line: errors are rendered one per line


def _did_you_mean_parameter(name: str) -> str:
    return did_you_mean(f"@{name}", [f"@{p}" for p in QUERY_PARAMETERS])


def _did_you_mean_qualified(table: str, tables: dict[str, Any]) -> str:
    """`track_played_v1_dedup` → ` (did you mean 'events.track_played_v1_dedup'?)`."""
    bare = {ref.split(".", 1)[1]: ref for ref in tables}
    guess = closest(table, bare)
    return f" (did you mean {bare[guess]!r}?)" if guess else ""


def _parameters(sql: str) -> list[tuple[str, int]]:
    """`@name` query parameters in order, with their lines (sqlglot's tree has no lines for them)."""
    tokens = sqlc.sqlglot.Dialect.get_or_raise(sqlc.DIALECT).tokenize(sql)
    found: list[tuple[str, int]] = []
    for at, name in zip(tokens, tokens[1:]):
        if at.token_type.name == "PARAMETER" and at.text == "@" and name.text != "@":
            found.append((name.text, name.line))
    return found


def output_columns(tree: sqlc.exp.Expression) -> list[str] | None:
    """Column names the query returns, or None when it returns `*` (unknown without types)."""
    names = list(tree.named_selects) if isinstance(tree, sqlc.exp.Query) else []
    return None if "*" in names else names


def _check_output_columns(
    endpoint: Endpoint, columns: list[str], source: Source, sql_path: str
) -> list[DefinitionError]:
    from dataplatform.definitions.loader import DefinitionError

    errors: list[DefinitionError] = []
    for position, name in enumerate(columns, start=1):
        if not name:
            errors.append(
                DefinitionError(sql_path, 1, f"column {position} of the query has no name; give it one with AS")
            )
    for name in sorted({c for c in columns if c and columns.count(c) > 1}):
        errors.append(DefinitionError(sql_path, 1, f"the query returns column {name!r} more than once"))
    if endpoint.partition_field not in columns:
        errors.append(
            DefinitionError(
                sql_path, 1,
                f"the query must return the partition column {endpoint.partition_field!r} "
                f"(e.g. `@run_date AS {endpoint.partition_field}`)",
            )
        )

    def need(column: str, loc: tuple[str | int, ...], what: str) -> None:
        if column not in columns:
            errors.append(
                source.error(
                    loc,
                    f"{what} {column!r} is not a column the query returns{did_you_mean(column, columns)}",
                )
            )

    if len(endpoint.clustering) > MAX_CLUSTERING:
        errors.append(source.error(("clustering",), f"at most {MAX_CLUSTERING} clustering columns"))
    for i, column in enumerate(endpoint.clustering):
        need(column, ("clustering", i), "clustering column")
    for i, check in enumerate(endpoint.checks):
        for j, column in enumerate(getattr(check, "columns", ())):
            need(column, ("checks", i, "columns", j), f"{check.type} check column")
        if hasattr(check, "column"):
            need(check.column, ("checks", i, "column"), f"{check.type} check column")
    return errors


def _check_quality_checks(
    endpoint: Endpoint, source: Source, catalog: Catalog, pending: Pending
) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    tables = catalog.tables()
    names: dict[str, int] = {}
    for i, check in enumerate(endpoint.checks):
        if check.name is not None:
            if check.name in names:
                errors.append(
                    source.error(
                        ("checks", i, "name"),
                        f"duplicate check name {check.name!r}: also checks[{names[check.name]}]",
                    )
                )
            names.setdefault(check.name, i)
        if isinstance(check, RowCountCheck):
            if check.min is None and check.max is None:
                errors.append(source.error(("checks", i), "row_count check needs min, max or both"))
            elif check.min is not None and check.max is not None and check.min > check.max:
                errors.append(source.error(("checks", i, "min"), f"row_count min {check.min} is above max {check.max}"))
        elif isinstance(check, RelationshipCheck):
            if check.to not in tables:
                if not pending.covers(check.to):
                    errors.append(
                        source.error(
                            ("checks", i, "to"),
                            f"relationship check refers to unknown table {check.to!r}"
                            f"{did_you_mean(check.to, [*tables, *pending.tables()])}",
                        )
                    )
                continue
            target = table_columns(tables[check.to])
            if target is not None and check.field not in target:
                errors.append(
                    source.error(
                        ("checks", i, "field"),
                        f"relationship check field {check.field!r} is not a column of {check.to}"
                        f"{did_you_mean(check.field, target)}",
                    )
                )
        elif isinstance(check, SqlAssertionCheck):
            errors += _check_assertion_sql(check.sql, ("checks", i, "sql"), source, tables, pending)
    return errors


def table_columns(definition: EventSchema | Endpoint) -> list[str] | None:
    """Top-level columns of a table a relationship check may compare with (None: unknown)."""
    if isinstance(definition, EventSchema):
        return [*_clean_columns(definition), "message_id", "publish_time", "subscription_name", "attributes"]
    try:
        return output_columns(sqlc.parse(definition.sql))
    except sqlc.SqlSyntaxError:
        return None


def _check_assertion_sql(
    sql: str, loc: tuple[str | int, ...], source: Source, tables: dict[str, Any], pending: Pending
) -> list[DefinitionError]:
    """A custom `sql` check's query: reported at its key in the YAML, with the query's line."""
    where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    try:
        tree = sqlc.parse(sql)
    except sqlc.SqlSyntaxError as exc:
        return [source.error(loc, f"{where}: {syntax_message(exc)} (line {exc.line} of the query)")]
    errors: list[DefinitionError] = []
    for parameter, line in _parameters(sql):
        if parameter not in QUERY_PARAMETERS:
            errors.append(
                source.error(
                    loc,
                    f"{where}: unknown query parameter @{parameter}{_did_you_mean_parameter(parameter)} "
                    f"(line {line} of the query); checks get @run_date and @run_time",
                )
            )
    for ref in sqlc.referenced_tables(tree):
        if ref.ref not in tables and not pending.covers(ref.ref):
            errors.append(
                source.error(
                    loc,
                    f"{where}: unknown table {ref.ref!r}{did_you_mean(ref.ref, [*tables, *pending.tables()])} "
                    f"(line {ref.line} of the query)",
                )
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
                        catalog.source(cycle[0]).error(("name",), f"endpoints form a cycle: {' -> '.join(cycle)}")
                    )
            elif upstream not in state:
                visit(upstream, [*stack, upstream])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return errors
