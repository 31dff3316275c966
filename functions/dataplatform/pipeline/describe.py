"""`dataplatform describe NAME`: one event type or endpoint, everything a reader asks first.

What is in it (fields, types, modes, privacy, and for events the warehouse column each
field becomes after anonymization), how long it is kept, how it is partitioned, who owns
and who may read it, and where its data comes from and goes to. Everything is derived from
the definitions (the same compilers `plan` and `deploy` use), so the answer cannot drift
from what is deployed. `render_text` is plain and stable (golden-tested); the CLI adds
colour with rich.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dataplatform.compile.bigquery_schema import event_table
from dataplatform.compile.endpoint_schema import endpoint_fields
from dataplatform.compile.evolution import field_columns
from dataplatform.compile.lineage import column_lineage
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.models import (
    AcceptedValuesCheck,
    Check,
    Endpoint,
    EventSchema,
    NotNullCheck,
    RelationshipCheck,
    RowCountCheck,
    SqlAssertionCheck,
    UniqueCheck,
    format_duration,
)
from dataplatform.pipeline.lineage_tree import NodeRef, TableGraph, node_id, resolve, table_graph


@dataclass(frozen=True)
class FieldInfo:
    """One payload field of an event (or one output column of an endpoint)."""

    path: str
    type: str | None
    """Schema type (STRING, RECORD, ...); for endpoints the type inferred from the SQL."""
    mode: str | None
    """REQUIRED, NULLABLE or REPEATED."""
    privacy: str | None
    """The field's privacy policy; None for endpoint columns (they read anonymized data)."""
    description: str
    column: str | None
    """Warehouse column path after anonymization; None when the field is not stored (drop)."""
    column_type: str | None
    sources: tuple[str, ...] = ()
    """Endpoint columns: the upstream columns (`dataset.table.column`) the value is computed from."""


@dataclass(frozen=True)
class Related:
    """An upstream or downstream table; `via` names the direct neighbour a transitive one is reached through."""

    name: str
    kind: str
    table: str
    direct: bool
    via: str | None = None


@dataclass(frozen=True)
class Description:
    kind: Literal["event", "endpoint"]
    name: str
    """Event key (`track_played_v1`) or endpoint name."""
    description: str
    owner: str
    domain: str
    table: str
    source: str | None
    """The definition file, relative to the repository root."""
    retention_days: int
    partitioning: str
    """E.g. `HOUR on event_time` or `DAY on date`."""
    clustering: tuple[str, ...]
    readers: tuple[str, ...]
    fields: tuple[FieldInfo, ...]
    upstreams: tuple[Related, ...]
    downstreams: tuple[Related, ...]
    version: int | None = None
    topics: tuple[str, ...] = ()
    """Events: the raw topic producers' batches land on, then the clean (schema-enforced) topic."""
    dedup_view: str | None = None
    allowed_lateness: str | None = None
    schedule: str | None = None
    freshness_deadline: str | None = None
    checks: tuple[str, ...] = ()


def describe(catalog: Catalog, name: str) -> Description:
    """Describe an event type (by name or key), an endpoint, or a table (`events.x_v1`)."""
    definition = resolve(catalog, name)
    graph = table_graph(catalog)
    node = node_id(definition)
    upstreams = _related(graph, graph.upstream, node)
    downstreams = _related(graph, graph.downstream, node)
    source = catalog.sources[node].path if node in catalog.sources else None
    if isinstance(definition, EventSchema):
        return _describe_event(definition, source, upstreams, downstreams)
    return _describe_endpoint(definition, catalog, source, upstreams, downstreams)


def _describe_event(
    schema: EventSchema, source: str | None, upstreams: tuple[Related, ...], downstreams: tuple[Related, ...]
) -> Description:
    columns = field_columns(schema)
    fields = []
    for path, f in schema.walk():
        column = columns.get(path)
        fields.append(
            FieldInfo(
                path=path,
                type=f.type,
                mode="REPEATED" if f.repeated else ("REQUIRED" if f.required else "NULLABLE"),
                privacy=f.privacy,
                description=f.description,
                column=column[0] if column else None,
                column_type=f"{column[1].type} {column[1].mode}" if column else None,
            )
        )
    table = event_table(schema)
    return Description(
        kind="event",
        name=schema.key,
        description=schema.description,
        owner=schema.owner,
        domain=schema.domain,
        table=schema.table_ref,
        source=source,
        retention_days=schema.retention_days,
        partitioning=f"{schema.partitioning} on {table.partition_field}",
        clustering=table.clustering,
        readers=schema.readers,
        fields=tuple(fields),
        upstreams=upstreams,
        downstreams=downstreams,
        version=schema.version,
        topics=(schema.raw_topic, schema.clean_topic),
        dedup_view=f"events.{schema.dedup_view}",
        allowed_lateness=format_duration(schema.allowed_lateness),
    )


def _describe_endpoint(
    endpoint: Endpoint,
    catalog: Catalog,
    source: str | None, upstreams: tuple[Related, ...], downstreams: tuple[Related, ...]
) -> Description:
    sources = column_lineage(endpoint, catalog)
    fields = tuple(
        FieldInfo(
            path=c.name,
            type=c.type,
            mode=c.mode,
            privacy=None,
            description=c.description,
            column=c.name,
            column_type=f"{c.type} {c.mode}",
            sources=tuple(sources.get(c.name, ())),
        )
        for c in endpoint_fields(endpoint, catalog)
    )
    return Description(
        kind="endpoint",
        name=endpoint.name,
        description=endpoint.description,
        owner=endpoint.owner,
        domain=endpoint.domain,
        table=endpoint.table_ref,
        source=source,
        retention_days=endpoint.retention_days,
        partitioning=f"DAY on {endpoint.partition_field}",
        clustering=endpoint.clustering,
        readers=endpoint.readers,
        fields=fields,
        upstreams=upstreams,
        downstreams=downstreams,
        schedule=endpoint.schedule,
        freshness_deadline=format_duration(endpoint.freshness_deadline),
        checks=tuple(check_summary(c) for c in endpoint.checks),
    )


def _related(graph: TableGraph, edges: Mapping[str, tuple[str, ...]], start: str) -> tuple[Related, ...]:
    """Breadth first: direct neighbours first (in graph order), then transitive ones."""
    out: list[Related] = []
    seen = {start}
    queue: deque[tuple[str, str | None]] = deque((n, None) for n in edges.get(start, ()))
    while queue:
        node, via = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        ref: NodeRef = graph.nodes[node]
        out.append(Related(ref.name, ref.kind, ref.table, direct=via is None, via=via))
        queue.extend((child, via or node) for child in edges.get(node, ()))
    return tuple(out)


def check_summary(check: Check) -> str:
    """One line per quality check, e.g. `unique(date, artist_id)`."""
    if isinstance(check, NotNullCheck):
        text = f"not_null({', '.join(check.columns)})"
    elif isinstance(check, UniqueCheck):
        text = f"unique({', '.join(check.columns)})"
    elif isinstance(check, AcceptedValuesCheck):
        text = f"accepted_values({check.column}: {', '.join(map(str, check.values))})"
    elif isinstance(check, RowCountCheck):
        bounds = [f"min {check.min}"] if check.min is not None else []
        bounds += [f"max {check.max}"] if check.max is not None else []
        text = f"row_count({', '.join(bounds) or 'any'})"
    elif isinstance(check, RelationshipCheck):
        text = f"relationship({check.column} → {check.to}.{check.field})"
    elif isinstance(check, SqlAssertionCheck):
        text = "sql(custom assertion)"
    else:  # a check type added to the models later still shows up, by its type
        text = f"{check.type}()"
    if check.name:
        text = f"{check.name}: {text}"
    return f"{text} [warn]" if check.severity == "warn" else text


# --------------------------------------------------------------------------- rendering


def render_text(d: Description) -> str:
    """Plain, stable text (the golden-tested form; the CLI renders the same data with rich)."""
    title = f"{d.kind} {d.name}" + (f" (version {d.version})" if d.version is not None else "")
    lines = [title, f"  {d.description}", ""]
    rows: list[tuple[str, str]] = [("owner", f"{d.owner} (domain {d.domain})")]
    if d.source:
        rows.append(("defined in", d.source))
    rows.append(("table", d.table))
    if d.dedup_view:
        rows.append(("dedup view", d.dedup_view))
    if d.topics:
        rows.append(("topics", " → ".join(d.topics)))
    if d.schedule:
        rows.append(("schedule", d.schedule))
    rows.append(("partitioning", d.partitioning))
    rows.append(("clustering", ", ".join(d.clustering) or "(none)"))
    rows.append(("retention", f"{d.retention_days} days"))
    if d.allowed_lateness:
        rows.append(("lateness", f"events up to {d.allowed_lateness} late are accepted"))
    if d.freshness_deadline:
        rows.append(("freshness", f"a day's partition is due {d.freshness_deadline} after the day ends"))
    rows.append(("readers", ", ".join(d.readers) or "(owner only)"))
    width = max(len(k) for k, _ in rows)
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]

    lines += ["", "fields" if d.kind == "event" else "columns"]
    lines += _field_table(d)
    if d.checks:
        lines += ["", "checks", *(f"  {c}" for c in d.checks)]
    lines += ["", "upstreams", *_related_lines(d.upstreams)]
    lines += ["", "downstreams", *_related_lines(d.downstreams)]
    return "\n".join(lines) + "\n"


def _field_table(d: Description) -> list[str]:
    if d.kind == "endpoint":
        rows = [("column", "type", "mode", "computed from")] + [
            (f.path, f.type or "", f.mode or "", ", ".join(f.sources) or "(no source column)")
            for f in d.fields
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    header = ("path", "type", "mode", "privacy", "stored as", "description")
    rows = [
        (
            f.path,
            f.type or "",
            f.mode or "",
            f.privacy or "",
            _stored_as(f),
            f.description,
        )
        for f in d.fields
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1]
        for row in (header, *rows)
    ]


def _stored_as(f: FieldInfo) -> str:
    """The warehouse column type, with its name when anonymization renames the field."""
    if not f.column:
        return "(not stored)"
    return f"{f.column_type}" if f.column == f.path else f"{f.column} {f.column_type}"


def _related_lines(related: tuple[Related, ...]) -> list[str]:
    if not related:
        return ["  (none)"]
    return [
        f"  {r.name} ({r.kind}: {r.table})" + ("" if r.direct else f", via {r.via}") for r in related
    ]


def to_json(d: Description) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "name": d.name,
        "version": d.version,
        "description": d.description,
        "owner": d.owner,
        "domain": d.domain,
        "source": d.source,
        "table": d.table,
        "dedup_view": d.dedup_view,
        "topics": list(d.topics),
        "schedule": d.schedule,
        "partitioning": d.partitioning,
        "clustering": list(d.clustering),
        "retention_days": d.retention_days,
        "allowed_lateness": d.allowed_lateness,
        "freshness_deadline": d.freshness_deadline,
        "readers": list(d.readers),
        "fields": [
            {
                "path": f.path,
                "type": f.type,
                "mode": f.mode,
                "privacy": f.privacy,
                "description": f.description,
                "column": f.column,
                "column_type": f.column_type,
                "sources": list(f.sources),
            }
            for f in d.fields
        ],
        "checks": list(d.checks),
        "upstreams": [_related_json(r) for r in d.upstreams],
        "downstreams": [_related_json(r) for r in d.downstreams],
    }


def _related_json(r: Related) -> dict[str, Any]:
    return {"name": r.name, "kind": r.kind, "table": r.table, "direct": r.direct, "via": r.via}
