"""Is partition D of an endpoint ready to run? `Ready`, or `Waiting` with every reason.

The rules are compiled into one BigQuery query by `compile/scheduled_query.readiness_sql`
(read its docstring): upstream event days past their allowed lateness, upstream endpoint
partitions recorded `succeeded` in `platform.partitions`. This module runs that query on
the warehouse with `@run_date` = D and `@now` = the clock's time, which is exactly what the
GCP script does with `CURRENT_TIMESTAMP()`. A test on DuckDB is a test of the cloud rule.

It also reads partition states (the newest row of `platform.partitions` per partition),
which runs, backfills, the scheduler and monitor share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, Union

from sqlglot import exp

from dataplatform.compile.scheduled_query import latest_partition_states_query, readiness_sql

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog
    from dataplatform.definitions.models import Endpoint


class QueryWarehouse(Protocol):
    """What reading needs: BigQuery SQL in, rows out (ports.Warehouse.query)."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Ready:
    """Every upstream partition the run reads is complete."""

    reasons: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return True


@dataclass(frozen=True)
class Waiting:
    """The run must wait; `reasons` says for what (table, partition, since when)."""

    reasons: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return False

    def describe(self) -> str:
        return "; ".join(self.reasons)


Readiness = Union[Ready, Waiting]


def check_readiness(
    endpoint: Endpoint, run_date: date, catalog: Catalog, warehouse: QueryWarehouse, now: datetime
) -> Readiness:
    """Ready, or Waiting with one reason per upstream day that is not complete (ordered)."""
    sql = readiness_sql(endpoint, catalog)
    if sql is None:
        return Ready()
    rows = warehouse.query(sql, {"run_date": run_date, "now": now})
    reasons = tuple(str(row["reason"]) for row in rows)
    return Waiting(reasons) if reasons else Ready()


@dataclass(frozen=True)
class PartitionState:
    """The newest recorded state of one partition."""

    table_ref: str
    partition: date
    status: str
    updated_at: datetime
    run_id: str | None = None
    row_count: int | None = None


def partition_states(
    warehouse: QueryWarehouse,
    table_refs: Sequence[str],
    *,
    first: date | None = None,
    last: date | None = None,
    status: str | None = None,
) -> list[PartitionState]:
    """Current states of the partitions of `table_refs` (optionally within [first, last] and
    only those whose newest state is `status`), ordered by table and partition."""
    if not table_refs:
        return []
    condition: exp.Expression = exp.In(
        this=exp.column("table_ref"), expressions=[exp.Literal.string(ref) for ref in table_refs]
    )
    params: dict[str, Any] = {}
    partition = exp.column("partition", quoted=True)
    if first is not None:
        condition = exp.and_(condition, exp.GTE(this=partition.copy(), expression=exp.Parameter(this=exp.var("first"))))
        params["first"] = first
    if last is not None:
        condition = exp.and_(condition, exp.LTE(this=partition.copy(), expression=exp.Parameter(this=exp.var("last"))))
        params["last"] = last
    query = exp.select(exp.Star()).from_(
        exp.Subquery(this=latest_partition_states_query(condition), alias=exp.TableAlias(this=exp.to_identifier("latest")))
    )
    if status is not None:
        query = query.where(exp.EQ(this=exp.column("status"), expression=exp.Literal.string(status)))
    query = query.order_by(exp.column("table_ref"), partition.copy())
    rows = warehouse.query(query.sql(dialect="bigquery"), params)
    return [
        PartitionState(
            table_ref=row["table_ref"],
            partition=row["partition"],
            status=row["status"],
            updated_at=row["updated_at"],
            run_id=row.get("run_id"),
            row_count=row.get("row_count"),
        )
        for row in rows
    ]


def partition_state(warehouse: QueryWarehouse, table_ref: str, partition: date) -> PartitionState | None:
    """The current state of one partition, or None when nothing was recorded for it."""
    found = partition_states(warehouse, [table_ref], first=partition, last=partition)
    return found[0] if found else None
