"""Rules that span fields or files, run after every file parsed into its model.

Each check returns `DefinitionError`s (never raises), so the loader reports all problems of
all files at once. This module runs them over the whole catalog and owns the rules that
need all of it (file names, duplicate names, the endpoint graph); the per-definition rules
live in `schema_checks` and `endpoint_checks`, and are re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dataplatform.compile import sql as sqlc
from dataplatform.definitions.endpoint_checks import (
    QUERY_PARAMETERS,
    check_endpoint,
    check_endpoint_settings,
    check_sql,
    output_columns,
    syntax_message,
    table_columns,
)
from dataplatform.definitions.models import Endpoint, EventSchema
from dataplatform.definitions.pending import BrokenEndpoint, BrokenSchema, Pending, Salvaged
from dataplatform.definitions.schema_checks import (
    MAX_CLUSTERING,
    MAX_PARTITIONS,
    POLICY_TYPES,
    RESERVED_COLUMNS,
    check_retention,
    check_schema,
    clean_columns,
)
from dataplatform.definitions.source import DefinitionError, Source

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog

__all__ = [
    "MAX_CLUSTERING",
    "MAX_PARTITIONS",
    "POLICY_TYPES",
    "QUERY_PARAMETERS",
    "RESERVED_COLUMNS",
    "BrokenEndpoint",
    "BrokenSchema",
    "Pending",
    "Salvaged",
    "check_catalog",
    "check_endpoint",
    "check_endpoint_settings",
    "check_file_name",
    "check_retention",
    "check_schema",
    "check_sql",
    "clean_columns",
    "endpoint_upstreams",
    "output_columns",
    "syntax_message",
    "table_columns",
]


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
        if salvaged is not None and isinstance(salvaged.model, Endpoint) and broken.sql is None:
            errors += salvaged.keep(check_endpoint_settings(salvaged.model, salvaged.source, catalog, pending))
        elif salvaged is not None and isinstance(salvaged.model, Endpoint):
            errors += salvaged.keep(check_endpoint(salvaged.model, salvaged.source, catalog, pending))
        elif broken.sql is not None:
            errors += check_sql(broken.name, broken.sql, broken.sql_path, catalog, pending)[0]
    errors += _check_cycles(catalog)
    return errors


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
