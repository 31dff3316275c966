"""Lineage of data endpoints, from their SQL: which tables, and which columns, feed which.

Nobody types lineage in: it is read from the endpoint SQL with sqlglot, so it cannot drift
from what the queries do.

- Table level: `upstreams(endpoint)` are the `dataset.table`s its SQL reads (a `_dedup`
  view counts as its events table); `downstreams(catalog)` inverts that over a catalog.
- Column level: `column_lineage(endpoint, catalog)` maps each output column to the source
  columns `dataset.table.column[.field...]` its value is computed from. The walk runs over
  the query qualified by `compile/endpoint_schema.qualified_query`, follows CTEs, derived
  tables, set operations and UNNEST (an unnested element derives from its array column,
  `result.item_id` from `events.x.results.item_id`), and keeps struct paths
  (`device.os` → `events.app_session_started_v1.device.os`).

What counts as "derived from": the columns inside the output expression (including a
window's PARTITION BY/ORDER BY and a scalar subquery's columns), not the WHERE, JOIN or
GROUP BY columns that only select rows. `COUNT(*)` and `@run_date` read no column: their
lists are empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from dataplatform.compile import sql as sqlc
from dataplatform.compile.endpoint_schema import catalog_sqlglot_schema, qualified_query
from dataplatform.definitions.models import EVENTS_DATASET, Endpoint
from dataplatform.errors import PlatformError

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog

DEDUP_SUFFIX = "_dedup"


# --------------------------------------------------------------------------- table level


def upstreams(endpoint: Endpoint) -> list[str]:
    """`dataset.table`s the endpoint reads, in order of first mention, dedup views folded."""
    try:
        return sqlc.upstream_refs(endpoint.sql)
    except sqlc.SqlSyntaxError as exc:
        raise PlatformError(f"endpoint {endpoint.name!r} (workflows/{endpoint.name}.sql:{exc.line}): {exc}") from None


def downstreams(catalog: Catalog) -> dict[str, list[str]]:
    """`dataset.table` → endpoints (`endpoints.<name>`) that read it, for every catalog table."""
    out: dict[str, list[str]] = {s.table_ref: [] for s in catalog.schemas}
    out.update({e.table_ref: [] for e in catalog.endpoints})
    for endpoint in sorted(catalog.endpoints, key=lambda e: e.name):
        for ref in upstreams(endpoint):
            out.setdefault(ref, []).append(endpoint.table_ref)
    return out


# --------------------------------------------------------------------------- column level


def column_lineage(
    endpoint: Endpoint, catalog: Catalog, schema: Mapping | None = None
) -> dict[str, list[str]]:
    """Output column → sorted source columns `dataset.table.column[.field]` it derives from.

    `schema` is `catalog_sqlglot_schema(catalog)`; pass it when computing many endpoints.
    """
    schema = catalog_sqlglot_schema(catalog) if schema is None else schema
    tree = qualified_query(endpoint, schema)
    root = build_scope(tree)
    if root is None:
        raise PlatformError(f"endpoint {endpoint.name!r}: the SQL is not a query sqlglot can scope")
    found: dict[str, set[str]] = {}
    for name, projection in _named_projections(root):  # a set operation yields a name per branch
        found.setdefault(name, set()).update(_sources_of_expression(projection, root))
    return {name: sorted(sources) for name, sources in found.items()}


def catalog_column_lineage(catalog: Catalog) -> dict[str, dict[str, list[str]]]:
    """`column_lineage` of every endpoint, by endpoint name (the schema is inferred once)."""
    schema = catalog_sqlglot_schema(catalog)
    return {e.name: column_lineage(e, catalog, schema) for e in sorted(catalog.endpoints, key=lambda e: e.name)}


def _named_projections(scope: Scope) -> Iterator[tuple[str, exp.Expression]]:
    """(name, expression) of a scope's outputs; a set operation merges its branches."""
    if scope.set_operation_scopes:
        branches = [list(_named_projections(s)) for s in scope.set_operation_scopes]
        for position, (name, _) in enumerate(branches[0]):
            for branch in branches:
                if position < len(branch):
                    yield name, branch[position][1]
        return
    for projection in scope.expression.selects:
        yield projection.alias_or_name, projection.unalias() if isinstance(projection, exp.Alias) else projection


def _sources_of_expression(expression: exp.Expression, scope: Scope) -> Iterator[str]:
    """Source columns of the value of `expression`, evaluated in `scope`.

    A subquery inside it contributes the sources of its own outputs, not of its WHERE.
    """
    stack = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Column):
            yield from _resolve(node.name, node.table, _owning_scope(node, scope), _struct_path(node))
        elif isinstance(node, exp.Query) and node is not expression:
            inner = _scope_of(node, scope)
            if inner is not None:
                for _, projection in _named_projections(inner):
                    yield from _sources_of_expression(projection, inner)
        else:
            stack.extend(node.iter_expressions())


def _scope_of(query: exp.Expression, scope: Scope) -> Scope | None:
    for candidate in scope.traverse():
        if candidate.expression is query:
            return candidate
    return None


def _owning_scope(column: exp.Column, scope: Scope) -> Scope:
    """The scope whose SELECT the column belongs to (a scalar subquery has its own)."""
    select = column.find_ancestor(exp.Select)
    return (_scope_of(select, scope) if select is not None else None) or scope


def _resolve(name: str, table: str, scope: Scope | None, path: tuple[str, ...]) -> Iterator[str]:
    while scope is not None:
        source = scope.sources.get(table) if table else None
        if isinstance(source, exp.Table):
            yield _column_ref(source, name, path)
            return
        if isinstance(source, Scope) and isinstance(source.expression, exp.Unnest):
            yield from _resolve_unnest(source.expression, scope, name, path)
            return
        if isinstance(source, Scope):
            yield from _resolve_in_scope(source, name, path)
            return
        unnest = _unnest_named(scope, table or name)
        if unnest is not None:
            # `r.position` reads a field of the element `r`; a bare `track` is the element
            yield from _resolve_unnest(unnest, scope, name, path)
            return
        scope = scope.parent  # a correlated reference to an enclosing query


def _resolve_in_scope(scope: Scope, name: str, path: tuple[str, ...]) -> Iterator[str]:
    """The sources of output `name` of a CTE, derived table or set operation."""
    for output, projection in _named_projections(scope):
        if output != name:
            continue
        if path and isinstance(projection, exp.Column):
            owner = _owning_scope(projection, scope)
            yield from _resolve(projection.name, projection.table, owner, (*_struct_path(projection), *path))
        else:
            yield from _sources_of_expression(projection, scope)


def _unnest_names(unnest: exp.Unnest) -> tuple[set[str], str]:
    """(names of the element, name of the offset) of an UNNEST."""
    alias = unnest.args.get("alias")
    names = {c.name for c in alias.columns} if alias else set()
    if alias and alias.name:
        names.add(alias.name)
    offset = unnest.args.get("offset")
    return names, offset.name if isinstance(offset, exp.Expression) else ""


def _unnest_named(scope: Scope, name: str) -> exp.Unnest | None:
    """The UNNEST of this scope's FROM/JOINs whose element or offset is called `name`."""
    select = scope.expression
    if not isinstance(select, exp.Select):
        return None
    for unnest in select.find_all(exp.Unnest):
        if unnest.find_ancestor(exp.Select) is select:
            names, offset = _unnest_names(unnest)
            if name in names or name == offset:
                return unnest
    return None


def _resolve_unnest(unnest: exp.Unnest, scope: Scope, name: str, path: tuple[str, ...]) -> Iterator[str]:
    """An unnested element derives from the array it unnests; its offset from no column.

    `name` is the element's alias (the element itself), the offset's alias, or a field of
    the element (`r.position`), which then goes in front of `path`.
    """
    names, offset = _unnest_names(unnest)
    if name and name == offset:
        return
    inner = path if name in names else (name, *path)
    for array in unnest.expressions:
        column = array if isinstance(array, exp.Column) else None
        if isinstance(array, exp.Dot) and isinstance(array.find(exp.Column), exp.Column):
            column = array.find(exp.Column)
        if column is not None:
            yield from _resolve(column.name, column.table, scope, (*_struct_path(column), *inner))
        else:
            yield from _sources_of_expression(array, scope)


def _struct_path(column: exp.Column) -> tuple[str, ...]:
    """Field names accessed on a struct column: `t.device.os` → ("os",)."""
    path: list[str] = []
    node: exp.Expression = column
    while isinstance(node.parent, exp.Dot) and node.parent.this is node:
        path.append(node.parent.expression.name)
        node = node.parent
    return tuple(path)


def _column_ref(table: exp.Table, name: str, path: tuple[str, ...]) -> str:
    dataset, table_name = table.db, table.name
    if dataset == EVENTS_DATASET and table_name.endswith(DEDUP_SUFFIX):
        table_name = table_name.removesuffix(DEDUP_SUFFIX)
    return ".".join((dataset, table_name, name, *path)) if dataset else ".".join((table_name, name, *path))
