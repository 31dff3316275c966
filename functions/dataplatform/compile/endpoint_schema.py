"""The output schema of an endpoint's query, inferred with sqlglot against the catalog.

An endpoint's table is created before its scheduled query first runs (BigQuery needs the
partitioned, expiring destination table to exist, and so does the local warehouse), so its
columns are derived from the SQL at compile time: sqlglot qualifies every column against
the schemas of the tables the query reads (`qualify`) and infers the type of each output
expression (`annotate_types`). Endpoints reading other endpoints are resolved in
dependency order, so a chain (events → daily_track_plays → weekly_top_tracks) types through.

Decisions:
- Output columns are NULLABLE (arrays REPEATED): query results are, and BigQuery refuses to
  WRITE_TRUNCATE a NULLABLE result into a REQUIRED column.
- No fallback type. A column whose type cannot be inferred (an untyped NULL, DATETIME,
  JSON, INTERVAL, ...) is an error naming the endpoint and column and saying which CAST to
  add, because guessing STRING would create a table the query then cannot write to.
- Query parameters are typed as the scheduler binds them: `@run_date` DATE, `@run_time`
  TIMESTAMP. Any other parameter is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from dataplatform.compile import sql as sqlc
from dataplatform.compile.bigquery_schema import BqField, TableSpec, event_table
from dataplatform.definitions.models import ENDPOINTS_DATASET, EVENTS_DATASET, Endpoint
from dataplatform.errors import PlatformError

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog

PARAMETER_TYPES: Mapping[str, str] = MappingProxyType({"run_date": "DATE", "run_time": "TIMESTAMP"})
"""Query parameters every endpoint run binds, with their BigQuery types."""

MAX_CLUSTERING_COLUMNS = 4
"""BigQuery clusters a table by at most four columns."""

CLUSTERABLE_TYPES = frozenset({"STRING", "INT64", "BOOL", "DATE", "TIMESTAMP", "NUMERIC"})
"""Column types BigQuery can cluster on (of those an endpoint column can have)."""

_SCALARS: Mapping[exp.DType, str] = MappingProxyType(
    {
        **{t: "INT64" for t in (exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT)},
        **{t: "FLOAT64" for t in (exp.DType.FLOAT, exp.DType.DOUBLE)},
        **{t: "STRING" for t in (exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.CHAR, exp.DType.NCHAR, exp.DType.NVARCHAR)},
        **{t: "BYTES" for t in (exp.DType.BINARY, exp.DType.VARBINARY, exp.DType.BLOB)},
        exp.DType.BOOLEAN: "BOOL",
        exp.DType.DATE: "DATE",
        exp.DType.TIMESTAMPTZ: "TIMESTAMP",
        exp.DType.TIMESTAMPLTZ: "TIMESTAMP",
        exp.DType.DECIMAL: "NUMERIC",
    }
)
"""sqlglot's inferred types → the BigQuery column types an endpoint table may have."""

_ADVICE: Mapping[exp.DType, str] = MappingProxyType(
    {
        exp.DType.UNKNOWN: "its type cannot be inferred; wrap it in CAST(... AS <type>)",
        exp.DType.NULL: "it is NULL in every row; write CAST(NULL AS <type>)",
        exp.DType.DATETIME: "DATETIME has no time zone; CAST it to TIMESTAMP (UTC) or DATE",
        exp.DType.TIMESTAMP: "DATETIME has no time zone; CAST it to TIMESTAMP (UTC) or DATE",
        exp.DType.TIME: "TIME columns are not supported; format it with FORMAT_TIME or CAST to STRING",
        exp.DType.JSON: "JSON columns are not supported; use TO_JSON_STRING(...)",
        exp.DType.INTERVAL: "INTERVAL columns are not supported; use a number of seconds or days",
        exp.DType.BIGDECIMAL: "BIGNUMERIC is not supported; CAST it to NUMERIC or FLOAT64",
    }
)


class EndpointSchemaError(PlatformError):
    """The output schema of an endpoint cannot be derived; `line` is 1-based in its SQL."""

    def __init__(self, endpoint: str, message: str, line: int = 1) -> None:
        super().__init__(f"endpoint {endpoint!r} (workflows/{endpoint}.sql:{line}): {message}")
        self.endpoint = endpoint
        self.line = line


# --------------------------------------------------------------------------- schema dict


def bigquery_type(field: BqField) -> str:
    """A column's type in BigQuery DDL syntax: `ARRAY<STRUCT<position INT64, id STRING>>`."""
    if field.type == "RECORD":
        inner = "STRUCT<" + ", ".join(f"`{f.name}` {bigquery_type(f)}" for f in field.fields) + ">"
    else:
        inner = field.type
    return f"ARRAY<{inner}>" if field.mode == "REPEATED" else inner


def table_columns(spec: TableSpec) -> dict[str, str]:
    """Column name → BigQuery type of one table, in column order."""
    return {f.name: bigquery_type(f) for f in spec.fields}


def catalog_sqlglot_schema(catalog: Catalog) -> dict[str, dict[str, dict[str, str]]]:
    """Every table a query may read, as sqlglot's schema mapping `{dataset: {table: {col: type}}}`.

    Event tables and their `_dedup` views (same columns), and every endpoint table with its
    inferred columns; endpoints are inferred in dependency order. Types are BigQuery syntax
    (read with `dialect="bigquery"`).
    """
    schema = _event_schema(catalog)
    for endpoint in dependency_order(catalog):
        fields = _infer(endpoint, schema)
        schema[ENDPOINTS_DATASET][endpoint.name] = {f.name: bigquery_type(f) for f in fields}
    return schema


def dependency_order(catalog: Catalog) -> list[Endpoint]:
    """Endpoints such that each comes after every endpoint it reads (ties by name)."""
    by_ref = {e.table_ref: e for e in catalog.endpoints}
    reads = {e.name: sorted({by_ref[r].name for r in _refs(e) if r in by_ref} - {e.name}) for e in catalog.endpoints}
    order: list[Endpoint] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise PlatformError(f"endpoints form a cycle: {' -> '.join((*path, name))}; break it in workflows/")
        state[name] = 1
        for upstream in reads[name]:
            visit(upstream, (*path, name))
        state[name] = 2
        order.append(catalog.endpoint(name))

    for name in sorted(reads):
        visit(name, ())
    return order


# --------------------------------------------------------------------------- one endpoint


def endpoint_fields(endpoint: Endpoint, catalog: Catalog) -> tuple[BqField, ...]:
    """The columns of the endpoint's table: name and type of each output of its query."""
    schema = _event_schema(catalog)
    for upstream in _upstream_endpoints(endpoint, catalog):
        schema[ENDPOINTS_DATASET][upstream.name] = {f.name: bigquery_type(f) for f in _infer(upstream, schema)}
    return _infer(endpoint, schema)


def endpoint_table(endpoint: Endpoint, catalog: Catalog) -> TableSpec:
    """The partitioned, expiring table `endpoints.<name>` the endpoint's runs write into."""
    fields = endpoint_fields(endpoint, catalog)
    _check_layout(endpoint, fields)
    return TableSpec(
        dataset=ENDPOINTS_DATASET,
        table=endpoint.table,
        fields=fields,
        partition_field=endpoint.partition_field,
        partition_type="DAY",
        expiration_days=endpoint.retention_days,
        clustering=endpoint.clustering,
        require_partition_filter=False,
        description=" ".join(endpoint.description.split())[:1024],
        labels=MappingProxyType({"owner": endpoint.owner, "domain": endpoint.domain}),
    )


def qualified_query(endpoint: Endpoint, schema: Mapping) -> exp.Expression:
    """The endpoint's query with every column qualified and typed (parameters typed too).

    Raises `EndpointSchemaError` for unknown columns or tables and unknown parameters.
    """
    try:
        tree = sqlc.parse(endpoint.sql)
    except sqlc.SqlSyntaxError as exc:
        raise EndpointSchemaError(endpoint.name, str(exc), exc.line) from None
    if not isinstance(tree, exp.Query):
        raise EndpointSchemaError(endpoint.name, "the SQL must be one SELECT query", _line(tree))
    _check_outputs(endpoint, tree)
    known_tables = {f"{dataset}.{table}" for dataset, tables in schema.items() for table in tables}
    for ref in sqlc.referenced_tables(tree):
        if ref.ref not in known_tables:
            raise EndpointSchemaError(endpoint.name, f"unknown table {ref.ref!r}", ref.line)
    for parameter in list(tree.find_all(exp.Parameter)):
        name = parameter.name
        if name not in PARAMETER_TYPES:
            known = ", ".join(f"@{p}" for p in PARAMETER_TYPES)
            raise EndpointSchemaError(
                endpoint.name, f"unknown query parameter @{name}; runs bind {known}", _line(parameter)
            )
        typed = exp.cast(parameter.copy(), PARAMETER_TYPES[name], dialect=sqlc.DIALECT)
        parameter.replace(typed)
    try:
        tree = qualify(tree, schema=dict(schema), dialect=sqlc.DIALECT, identify=False)
        return annotate_types(tree, schema=dict(schema), dialect=sqlc.DIALECT)
    except OptimizeError as exc:
        raise EndpointSchemaError(endpoint.name, f"{exc}; check the column and table names", _line_of_message(tree, str(exc))) from None
    except SqlglotError as exc:
        raise EndpointSchemaError(endpoint.name, f"cannot analyse the query: {exc}") from None


def _check_outputs(endpoint: Endpoint, tree: exp.Expression) -> None:
    """Every output column of the written query has a name, and a type other than bare NULL.

    BigQuery would call an unnamed column `f0_` and type a bare NULL as INT64; both are
    almost always mistakes that would become permanent columns of the endpoint table.
    """
    for index, projection in enumerate(_output_projections(tree), start=1):
        if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)):
            continue
        name = projection.alias if isinstance(projection, exp.Alias) else ""
        if isinstance(projection, (exp.Column, exp.Dot)):
            name = projection.name  # BigQuery names `t.a` and `s.device.os` by their last part
        if not name:
            raise EndpointSchemaError(
                endpoint.name, f"output column {index} has no name; add `AS <name>`", _line(projection)
            )
        if isinstance(projection.unalias(), exp.Null):
            raise EndpointSchemaError(
                endpoint.name, f"column {name!r}: {_ADVICE[exp.DType.NULL]}", _line(projection)
            )


def _infer(endpoint: Endpoint, schema: Mapping) -> tuple[BqField, ...]:
    tree = qualified_query(endpoint, schema)
    fields: list[BqField] = []
    seen: set[str] = set()
    for projection in _output_projections(tree):
        name = projection.alias_or_name
        if name in seen:
            raise EndpointSchemaError(endpoint.name, f"output column {name!r} appears twice", _line(projection))
        seen.add(name)
        fields.append(_field(endpoint, name, projection.type or exp.DataType.build("UNKNOWN"), projection))
    return tuple(fields)


def _output_projections(tree: exp.Expression) -> list[exp.Expression]:
    """The outermost SELECT's projections (for a set operation, those of its first branch)."""
    while isinstance(tree, exp.SetOperation):
        tree = tree.this
    if isinstance(tree, exp.Subquery):
        return _output_projections(tree.this)
    return list(tree.selects)


def _field(endpoint: Endpoint, name: str, dtype: exp.DataType, where: exp.Expression, mode: str = "NULLABLE") -> BqField:
    if dtype.this == exp.DType.ARRAY:
        inner = dtype.expressions[0] if dtype.expressions else exp.DataType.build("UNKNOWN")
        if mode == "REPEATED" or inner.this == exp.DType.ARRAY:
            raise EndpointSchemaError(endpoint.name, f"column {name!r} is an array of arrays, which BigQuery cannot store", _line(where))
        return _field(endpoint, name, inner, where, "REPEATED")
    if dtype.this == exp.DType.STRUCT:
        members = []
        for position, member in enumerate(dtype.expressions, start=1):
            if not isinstance(member, exp.ColumnDef) or not member.name:
                raise EndpointSchemaError(
                    endpoint.name, f"field {position} of STRUCT column {name!r} has no name; write STRUCT(x AS name)", _line(where)
                )
            members.append(_field(endpoint, member.name, member.args["kind"], where))
        if not members:
            raise EndpointSchemaError(endpoint.name, f"column {name!r} is an empty STRUCT", _line(where))
        return BqField(name, "RECORD", mode, fields=tuple(members))
    scalar = _SCALARS.get(dtype.this)
    if scalar is None:
        advice = _ADVICE.get(dtype.this, f"type {dtype.sql(sqlc.DIALECT)} cannot be stored in an endpoint table; CAST it")
        raise EndpointSchemaError(endpoint.name, f"column {name!r}: {advice}", _line(where))
    return BqField(name, scalar, mode)


def _check_layout(endpoint: Endpoint, fields: tuple[BqField, ...]) -> None:
    """The partition column is a DATE and clustering columns are top-level and clusterable."""
    by_name = {f.name: f for f in fields}
    partition = by_name.get(endpoint.partition_field)
    if partition is None or partition.type != "DATE" or partition.mode == "REPEATED":
        found = f"it is {bigquery_type(partition)}" if partition else "the query does not return it"
        raise EndpointSchemaError(
            endpoint.name,
            f"partition column {endpoint.partition_field!r} must be a DATE ({found}); "
            f"return e.g. `@run_date AS {endpoint.partition_field}`",
        )
    if len(endpoint.clustering) > MAX_CLUSTERING_COLUMNS:
        raise EndpointSchemaError(endpoint.name, f"clustering has {len(endpoint.clustering)} columns; BigQuery allows at most {MAX_CLUSTERING_COLUMNS}")
    for column in endpoint.clustering:
        field = by_name.get(column)
        if field is None:
            raise EndpointSchemaError(endpoint.name, f"clustering column {column!r} is not an output of the query (outputs: {', '.join(by_name)})")
        if field.mode == "REPEATED" or field.type not in CLUSTERABLE_TYPES:
            raise EndpointSchemaError(
                endpoint.name, f"clustering column {column!r} is {bigquery_type(field)}; BigQuery clusters on {', '.join(sorted(CLUSTERABLE_TYPES))} columns only"
            )


# --------------------------------------------------------------------------- helpers


def _event_schema(catalog: Catalog) -> dict[str, dict[str, dict[str, str]]]:
    events: dict[str, dict[str, str]] = {}
    for schema in catalog.schemas:
        columns = table_columns(event_table(schema))
        events[schema.table] = columns
        events[schema.dedup_view] = dict(columns)
    return {EVENTS_DATASET: events, ENDPOINTS_DATASET: {}}


def _refs(endpoint: Endpoint) -> list[str]:
    try:
        return sqlc.upstream_refs(endpoint.sql)
    except sqlc.SqlSyntaxError:
        return []


def _upstream_endpoints(endpoint: Endpoint, catalog: Catalog) -> list[Endpoint]:
    """The endpoints `endpoint` reads, transitively, in dependency order."""
    order = dependency_order(catalog)
    by_ref = {e.table_ref: e for e in catalog.endpoints}
    needed: set[str] = set()
    pending = [endpoint]
    while pending:
        current = pending.pop()
        for ref in _refs(current):
            upstream = by_ref.get(ref)
            if upstream and upstream.name not in needed and upstream.name != endpoint.name:
                needed.add(upstream.name)
                pending.append(upstream)
    return [e for e in order if e.name in needed]


def _line(node: exp.Expression) -> int:
    """The line of the node's first positioned descendant, else of its nearest ancestor's."""
    current: exp.Expression | None = node
    while current is not None:
        for child in current.walk():
            if child.meta and child.meta.get("line"):
                return int(child.meta["line"])
        current = current.parent
    return 1


def _line_of_message(tree: exp.Expression, message: str) -> int:
    """The line of the first column or table named in sqlglot's message, else 1."""
    for node in tree.find_all(exp.Column, exp.Table):
        if node.name and f"'{node.name}'" in message:
            return _line(node)
    return 1
