"""`dataplatform lineage NAME`: where a table's data comes from and where it goes.

Lineage is derived, never typed in: an endpoint's upstreams are the tables its SQL reads
(`compile.lineage.upstreams`, `_dedup` views folded onto their table), and downstreams are
the endpoints whose SQL reads it. Event tables are the roots of the graph (their data comes
from producers through the raw topic and the anonymizer).

The graph is table-level. Trees are expanded recursively; a node already expanded
elsewhere in the same tree is shown again but not re-expanded (`see above`), which keeps
diamond-shaped graphs linear in size, and a node that is its own ancestor is cut
(`cycle`). Validation rejects cycles, but the walk must terminate on any input.

Column-level lineage (which upstream columns feed each output column of an endpoint)
comes from `compile.lineage.column_lineage`, included with `lineage(..., columns=True)`;
an output computed from no column (`@run_date`, `COUNT(*)`) shows `(no source column)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from dataplatform.compile.lineage import column_lineage, upstreams
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.messages import did_you_mean
from dataplatform.definitions.models import Endpoint, EventSchema
from dataplatform.errors import PlatformError

NodeKind = Literal["event", "endpoint", "external"]
Definition = EventSchema | Endpoint

SEE_ABOVE = "see above"
CYCLE = "cycle"


@dataclass(frozen=True)
class NodeRef:
    """One table of the graph: an event key, an endpoint name, or a table the catalog lacks."""

    name: str
    kind: NodeKind
    table: str

    def label(self) -> str:
        return f"{self.name} ({self.kind}: {self.table})"


@dataclass(frozen=True)
class TableGraph:
    """The catalog's tables and who reads whom; node ids are event keys and endpoint names."""

    nodes: Mapping[str, NodeRef]
    upstream: Mapping[str, tuple[str, ...]]
    """Node → the nodes its SQL reads, in order of appearance in the SQL."""
    downstream: Mapping[str, tuple[str, ...]]
    """Node → the endpoints that read it, sorted by name."""


def resolve(catalog: Catalog, name: str) -> Definition:
    """An event type (by key, or by name → highest major version), an endpoint, or a table ref."""
    if any(name in (s.key, s.name) for s in catalog.schemas):
        return catalog.schema(name)
    if any(e.name == name for e in catalog.endpoints):
        return catalog.endpoint(name)
    tables = catalog.tables()
    if name in tables:
        return tables[name]
    raise PlatformError(
        f"unknown event type or endpoint {name!r}{did_you_mean(name, [*catalog.names(), *tables])}; "
        "name an event (track_played or track_played_v1), an endpoint, or a table (events.track_played_v1)"
    )


def node_id(definition: Definition) -> str:
    return definition.key if isinstance(definition, EventSchema) else definition.name


def table_graph(catalog: Catalog) -> TableGraph:
    """Build the table-level dependency graph of a catalog from its endpoints' SQL."""
    nodes: dict[str, NodeRef] = {}
    by_table: dict[str, str] = {}
    for schema in catalog.schemas:
        nodes[schema.key] = NodeRef(schema.key, "event", schema.table_ref)
        by_table[schema.table_ref] = schema.key
    for endpoint in catalog.endpoints:
        nodes[endpoint.name] = NodeRef(endpoint.name, "endpoint", endpoint.table_ref)
        by_table[endpoint.table_ref] = endpoint.name
    upstream: dict[str, tuple[str, ...]] = {node: () for node in nodes}
    downstream: dict[str, list[str]] = {node: [] for node in nodes}
    for endpoint in catalog.endpoints:
        reads: list[str] = []
        for ref in upstreams(endpoint):
            target = by_table.get(ref)
            if target is None:  # not in the catalog: validation reports it; lineage still shows it
                target = ref
                nodes.setdefault(ref, NodeRef(ref, "external", ref))
                downstream.setdefault(ref, [])
            if target != endpoint.name and target not in reads:
                reads.append(target)
        upstream[endpoint.name] = tuple(reads)
        for target in reads:
            downstream[target].append(endpoint.name)
    upstream.update({node: () for node in nodes if node not in upstream})
    return TableGraph(
        MappingProxyType(nodes),
        MappingProxyType(upstream),
        MappingProxyType({node: tuple(sorted(set(readers))) for node, readers in downstream.items()}),
    )


# --------------------------------------------------------------------------- trees


@dataclass(frozen=True)
class LineageNode:
    """A table in a lineage tree with the tables it reads from (upstream) or feeds (downstream)."""

    ref: NodeRef
    children: tuple[LineageNode, ...] = ()
    note: str | None = None
    """`see above` (expanded elsewhere in this tree) or `cycle`; None when expanded here."""


@dataclass(frozen=True)
class LineageTree:
    root: NodeRef
    upstream: tuple[LineageNode, ...]
    downstream: tuple[LineageNode, ...]
    columns: Mapping[str, tuple[str, ...]] | None = None
    """Endpoint output column → upstream columns (`dataset.table.column`), when asked for."""


def lineage(catalog: Catalog, name: str, *, columns: bool = False) -> LineageTree:
    """Upstream and downstream trees of one event type or endpoint (table-level, recursive).

    With `columns=True` an endpoint's tree also carries its column-level lineage; for an
    event type there is none (its columns come from the schema, see `describe`).
    """
    definition = resolve(catalog, name)
    graph = table_graph(catalog)
    root = node_id(definition)
    column_map = None
    if columns and isinstance(definition, Endpoint):
        column_map = column_sources(definition, catalog)
    return LineageTree(
        graph.nodes[root],
        _subtrees(graph, graph.upstream, root),
        _subtrees(graph, graph.downstream, root),
        column_map,
    )


def column_sources(endpoint: Endpoint, catalog: Catalog) -> Mapping[str, tuple[str, ...]]:
    """Output column → its upstream columns, from `compile.lineage.column_lineage`."""
    found = column_lineage(endpoint, catalog)
    return MappingProxyType({column: tuple(sources) for column, sources in found.items()})


def _subtrees(graph: TableGraph, edges: Mapping[str, tuple[str, ...]], root: str) -> tuple[LineageNode, ...]:
    expanded: set[str] = {root}

    def build(node: str, ancestors: tuple[str, ...]) -> LineageNode:
        ref = graph.nodes[node]
        if node in ancestors:
            return LineageNode(ref, note=CYCLE)
        if node in expanded:
            return LineageNode(ref, note=SEE_ABOVE if edges.get(node) else None)
        expanded.add(node)
        path = (*ancestors, node)
        return LineageNode(ref, tuple(build(child, path) for child in edges.get(node, ())))

    return tuple(build(child, (root,)) for child in edges.get(root, ()))


# --------------------------------------------------------------------------- rendering


def render_text(tree: LineageTree) -> str:
    """An indented ASCII tree: the root, then its upstream and downstream trees."""
    lines = [tree.root.label(), "upstream"]
    lines += _branches(tree.upstream, "") or ["`-- (none)"]
    lines.append("downstream")
    lines += _branches(tree.downstream, "") or ["`-- (none)"]
    if tree.columns is not None:
        lines.append("columns")
        width = max((len(c) for c in tree.columns), default=0)
        for column, sources in tree.columns.items():
            lines.append(f"  {column.ljust(width)} <- {', '.join(sources) if sources else '(no source column)'}")
    return "\n".join(lines) + "\n"


def _branches(nodes: tuple[LineageNode, ...], indent: str) -> list[str]:
    out: list[str] = []
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        note = f" [{node.note}]" if node.note else ""
        out.append(f"{indent}{'`-- ' if last else '|-- '}{node.ref.label()}{note}")
        out += _branches(node.children, indent + ("    " if last else "|   "))
    return out


def node_json(node: LineageNode) -> dict[str, Any]:
    return {
        "name": node.ref.name,
        "kind": node.ref.kind,
        "table": node.ref.table,
        "note": node.note,
        "children": [node_json(child) for child in node.children],
    }


def to_json(tree: LineageTree) -> dict[str, Any]:
    return {
        "name": tree.root.name,
        "kind": tree.root.kind,
        "table": tree.root.table,
        "upstream": [node_json(n) for n in tree.upstream],
        "downstream": [node_json(n) for n in tree.downstream],
        "columns": None if tree.columns is None else {c: list(s) for c, s in tree.columns.items()},
    }
