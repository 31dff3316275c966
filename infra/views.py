"""The `<table>_dedup` view of an event table, as BigQuery SQL built with sqlglot.

Delivery is at-least-once, so a row can repeat; readers (and every endpoint of the example
catalog) read `events.<key>_dedup`, which keeps the first delivery of each event:

    SELECT * FROM `project`.`events`.`<key>` WHERE TRUE
    QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id, event_time ORDER BY publish_time) = 1

Why `event_time` is in the window's PARTITION BY although `event_id` alone identifies an
event: the table requires a partition filter on `event_time`, and BigQuery only pushes a
query's filter through a window function when it is on the window's partitioning columns.
With `event_time` there, `WHERE DATE(event_time) = @run_date` on the view still prunes
partitions (and satisfies `require_partition_filter`); a redelivered event always carries
its original `event_time`, so the result is the same. `WHERE TRUE` keeps QUALIFY valid on
BigQuery versions that require a WHERE clause next to it.
"""

from __future__ import annotations

from sqlglot import exp

DIALECT = "bigquery"


def dedup_view_sql(project: str, dataset: str, table: str) -> str:
    """The view query over `project.dataset.table` (fully qualified, as views need)."""
    source = exp.table_(table, db=dataset, catalog=project, quoted=True)
    first = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("event_id"), exp.column("event_time")],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column("publish_time"), nulls_first=True)]),
    )
    query = (
        exp.select("*")
        .from_(source)
        .where(exp.true())
        .qualify(exp.EQ(this=first, expression=exp.Literal.number(1)))
    )
    return query.sql(dialect=DIALECT, pretty=True)
