"""The `<table>_dedup` view of every event table: one row per event, in BigQuery SQL.

Delivery is at-least-once (a client retries a batch, Pub/Sub redelivers, the BigQuery
subscription rewrites after a timeout), so an event table may hold an event more than
once. Readers dedupe, and the view does it for them: of the rows of one `event_id` it keeps
the first one published (`publish_time`, then `message_id` to break ties; rows without
publish metadata sort first, as BigQuery sorts NULL; the local DuckDB view keeps that
order because sqlglot transpiles it as `NULLS FIRST`).

Two details that only matter in BigQuery, and why the SQL is not the shortest possible:

- The window is partitioned by `event_id, event_time`, not only `event_id`. Event tables
  have `require_partition_filter`, and readers put that filter on the view
  (`WHERE DATE(event_time) = @run_date`). BigQuery may only push a filter below a window
  function when the filter uses nothing but the window's PARTITION BY columns; with
  `event_time` among them, the filter reaches the table scan, so the query passes the
  partition-filter requirement and prunes partitions. Duplicates of an event always carry
  its `event_time` (it is part of the event), so the result is the same as deduplicating
  by `event_id` alone.
- `WHERE TRUE` before QUALIFY: BigQuery has required QUALIFY to come with a WHERE, GROUP
  BY or HAVING clause; the no-op filter keeps the view valid either way.

The view has no partition filter of its own: the filter comes with each query on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from dataplatform.compile.bigquery_schema import TableSpec, event_table
from dataplatform.compile.sql import DIALECT
from dataplatform.definitions.models import EventSchema

DEDUP_SUFFIX = "_dedup"
DEDUP_KEY = ("event_id", "event_time")
DEDUP_ORDER = ("publish_time", "message_id")


@dataclass(frozen=True)
class ViewSpec:
    """A view to create: where, its BigQuery SQL, and what it is for."""

    dataset: str
    view: str
    sql: str
    description: str

    @property
    def ref(self) -> str:
        return f"{self.dataset}.{self.view}"


def dedup_view_sql(table: TableSpec, *, pretty: bool = True) -> str:
    """`SELECT * FROM <table> WHERE TRUE QUALIFY ROW_NUMBER() OVER (...) = 1` (BigQuery SQL)."""
    missing = [c for c in (*DEDUP_KEY, *DEDUP_ORDER) if c not in {f.name for f in table.fields}]
    if missing:
        raise ValueError(f"table {table.ref} has no column(s) {', '.join(missing)}; only event tables get a dedup view")
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column(c) for c in DEDUP_KEY],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column(c), nulls_first=True) for c in DEDUP_ORDER]),
    )
    select = (
        exp.select(exp.Star())
        .from_(exp.Table(this=exp.to_identifier(table.table), db=exp.to_identifier(table.dataset)))
        .where(exp.true())
        .qualify(exp.EQ(this=window, expression=exp.Literal.number(1)))
    )
    return select.sql(dialect=DIALECT, pretty=pretty)


def dedup_view(schema: EventSchema) -> ViewSpec:
    """The `events.<key>_dedup` view of one event schema."""
    table = event_table(schema)
    return ViewSpec(
        dataset=table.dataset,
        view=schema.dedup_view,
        sql=dedup_view_sql(table),
        description=(
            f"{table.ref} with one row per event_id (the first published); read this instead of the table. "
            "Filter on event_time: the table requires a partition filter."
        ),
    )
