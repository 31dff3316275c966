"""Cross-checks of one data endpoint: schedule, its SQL, the columns it returns, its checks.

The SQL is read with sqlglot (never regular expressions): it must be one SELECT, use only
the parameters a scheduled query gets, read known tables (qualified, with "did you mean"),
and return every column the YAML names (partition, clustering, quality checks). Errors in
the SQL point into the `.sql` file; errors in a custom `sql` check point at its YAML key
and say which line of that query.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from croniter import croniter

from dataplatform.compile import sql as sqlc
from dataplatform.compile.transpile import unsupported_constructs
from dataplatform.definitions.messages import closest, did_you_mean
from dataplatform.definitions.models import (
    ENDPOINTS_DATASET,
    EVENTS_DATASET,
    Endpoint,
    EventSchema,
    RelationshipCheck,
    RowCountCheck,
    SqlAssertionCheck,
    format_duration,
)
from dataplatform.definitions.pending import Pending
from dataplatform.definitions.schema_checks import MAX_CLUSTERING, check_retention, clean_columns
from dataplatform.definitions.source import DefinitionError, Source

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog

QUERY_PARAMETERS = {"run_date": "DATE", "run_time": "TIMESTAMP"}
"""The parameters BigQuery scheduled queries (and the local runner) give an endpoint's SQL."""


def check_endpoint(
    endpoint: Endpoint, source: Source, catalog: Catalog, pending: Pending | None = None
) -> list[DefinitionError]:
    """Every rule for one endpoint: its settings, its SQL, and the columns the YAML names."""
    pending = pending or Pending()
    errors = check_endpoint_settings(endpoint, source, catalog, pending)
    sql_path = str(Path(source.path).with_suffix(".sql").as_posix())
    sql_errors, tree = check_sql(endpoint.name, endpoint.sql, sql_path, catalog, pending)
    errors += sql_errors
    columns = output_columns(tree) if tree is not None else None
    if columns is not None:
        errors += _check_output_columns(endpoint, columns, source, sql_path)
    if tree is not None:
        errors += _check_deadline_after_upstreams(endpoint, tree, source, catalog)
    return errors


def _check_deadline_after_upstreams(
    endpoint: Endpoint, tree: sqlc.exp.Expression, source: Source, catalog: Catalog
) -> list[DefinitionError]:
    """A partition runs only once its upstream event partitions are past their allowed
    lateness (directly, or through upstream endpoints). A freshness deadline at or before
    that moment would breach every day, so it is a definition error, not an alert."""
    tables = catalog.tables()
    errors: list[DefinitionError] = []
    for ref in sqlc.referenced_tables(tree):
        upstream = tables.get(ref.ref)
        if upstream is None or upstream is endpoint:
            continue
        ready_after, event_key = _earliest_ready(upstream, tables, frozenset({endpoint.name}))
        if event_key and endpoint.freshness_deadline <= ready_after:
            via = "" if isinstance(upstream, EventSchema) else f" (through {upstream.name})"
            errors.append(
                source.error(
                    ("freshness_deadline",),
                    f"freshness_deadline {format_duration(endpoint.freshness_deadline)} is not later than "
                    f"event {event_key}'s allowed_lateness ({format_duration(ready_after)}){via}: the partition "
                    "cannot run before then, so it would be late every day; raise the deadline or lower the lateness",
                )
            )
    return errors


def _earliest_ready(
    definition: EventSchema | Endpoint, tables: dict[str, Any], seen: frozenset[str]
) -> tuple[timedelta, str | None]:
    """How long after the end of a day its partition can be complete, and which event decides it."""
    if isinstance(definition, EventSchema):
        return definition.allowed_lateness, definition.key
    latest: tuple[timedelta, str | None] = (timedelta(0), None)
    if definition.name in seen:
        return latest  # a cycle is reported elsewhere
    try:
        refs = sqlc.referenced_tables(sqlc.parse(definition.sql))
    except sqlc.SqlSyntaxError:
        return latest
    for ref in refs:
        upstream = tables.get(ref.ref)
        if upstream is not None:
            latest = max(latest, _earliest_ready(upstream, tables, seen | {definition.name}), key=lambda x: x[0])
    return latest


def check_endpoint_settings(
    endpoint: Endpoint, source: Source, catalog: Catalog, pending: Pending | None = None
) -> list[DefinitionError]:
    """The rules that need only the YAML (so they run even when the `.sql` file is missing)."""
    errors = check_retention(endpoint.retention_days, source)
    if not croniter.is_valid(endpoint.schedule) or len(endpoint.schedule.split()) != 5:
        errors.append(
            source.error(
                ("schedule",),
                f"schedule {endpoint.schedule!r} is not a valid cron expression "
                "(5 fields: minute hour day-of-month month day-of-week, e.g. '0 4 * * *')",
            )
        )
    return errors + _check_quality_checks(endpoint, source, catalog, pending or Pending())


def check_sql(
    name: str, sql: str, sql_path: str, catalog: Catalog, pending: Pending | None = None
) -> tuple[list[DefinitionError], sqlc.exp.Expression | None]:
    """An endpoint's query on its own: syntax, one SELECT, parameters, tables it reads."""
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
    for line, construct in unsupported_constructs(sql):
        errors.append(
            DefinitionError(
                sql_path, line,
                f"{construct} cannot run on the local DuckDB warehouse, so the endpoint could not "
                "be run or tested locally; rewrite it with portable SQL",
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
        return [*clean_columns(definition), "message_id", "publish_time", "subscription_name", "attributes"]
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
    for line, construct in unsupported_constructs(sql):
        errors.append(
            source.error(
                loc,
                f"{where}: {construct} cannot run on the local DuckDB warehouse (line {line} of the query); "
                "rewrite the check with portable SQL",
            )
        )
    return errors
