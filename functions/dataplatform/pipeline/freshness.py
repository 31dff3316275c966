"""Freshness: how far behind each event table and endpoint is, and which missed their deadline.

Definitions (the same for both kinds, only the allowance differs):

- A day partition D is *due* at `D + 1 day (00:00 UTC) + allowance`, where the allowance is
  an event table's `allowed_lateness` (by then the day is complete) or an endpoint's
  `freshness_deadline` (by then its partition must have succeeded).
- The *newest complete partition*:
  - event table: the newest day that is past its allowed lateness AND has rows (looked for
    within `LOOKBACK_DAYS` before the newest due day, which keeps BigQuery's required
    partition filter). An empty day does not count: if producers stop sending, the table
    goes stale even though time passes.
  - endpoint: the newest partition whose current state in `platform.partitions` is
    `succeeded` (quality checks passed).
- `deadline`: when the partition after the newest complete one is (or was) due; with no
  complete partition at all, when the newest due partition was due.
- `breached`: the deadline has passed (`deadline <= now`). `lag_seconds`: seconds from the
  end of the newest complete partition to now (NULL when there is none).

Each measurement is a row of `platform.freshness`; each breach is also one structured log
line on the `dataplatform.monitor` logger — `{"event": "freshness_breach", "table": ...,
"lag_seconds": ..., "deadline": ...}` — which Cloud Logging parses into `jsonPayload` and
the log-based metric `dataplatform/freshness_breach` counts (infra's alert policy).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlglot import exp

from dataplatform.compile.platform_tables import FRESHNESS_TABLE
from dataplatform.compile.scheduled_query import EVENT_PARTITION_COLUMN
from dataplatform.definitions.models import PLATFORM_DATASET, Endpoint, EventSchema, format_duration
from dataplatform.pipeline.readiness import partition_states

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog

UTC = timezone.utc
FRESHNESS = f"{PLATFORM_DATASET}.{FRESHNESS_TABLE}"
LOOKBACK_DAYS = 31
"""How many days before the newest due day an event table's newest complete day is looked for."""

LOGGER_NAME = "dataplatform.monitor"
BREACH_EVENT = "freshness_breach"

Kind = Literal["event", "endpoint"]


class FreshnessWarehouse(Protocol):
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int: ...


@dataclass(frozen=True)
class Freshness:
    """One measurement of one table."""

    table_ref: str
    kind: Kind
    newest_complete_partition: date | None
    deadline: datetime
    lag_seconds: int | None
    breached: bool
    checked_at: datetime
    allowance: timedelta

    def row(self) -> dict[str, Any]:
        """The `platform.freshness` row."""
        return {
            "table_ref": self.table_ref,
            "kind": self.kind,
            "newest_complete_partition": self.newest_complete_partition,
            "deadline": self.deadline,
            "lag_seconds": self.lag_seconds,
            "breached": self.breached,
            "checked_at": self.checked_at,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table_ref,
            "kind": self.kind,
            "newest_complete_partition": _iso(self.newest_complete_partition),
            "deadline": _iso(self.deadline),
            "lag_seconds": self.lag_seconds,
            "breached": self.breached,
            "allowance": format_duration(self.allowance),
            "checked_at": _iso(self.checked_at),
        }

    def breach_log(self) -> dict[str, Any]:
        """The structured log line of a breach (one JSON object; Cloud Logging's jsonPayload)."""
        newest = _iso(self.newest_complete_partition) or "none"
        return {
            "event": BREACH_EVENT,
            "severity": "WARNING",
            "table": self.table_ref,
            "kind": self.kind,
            "lag_seconds": self.lag_seconds,
            "deadline": _iso(self.deadline),
            "newest_complete_partition": _iso(self.newest_complete_partition),
            "message": f"{self.table_ref} missed its freshness deadline {_iso(self.deadline)} (newest complete partition: {newest})",
        }


def due_at(partition: date, allowance: timedelta) -> datetime:
    """When partition `partition` is due: the end of its day (UTC) plus the allowance."""
    return datetime.combine(partition + timedelta(days=1), time(), tzinfo=UTC) + allowance


def newest_due_partition(now: datetime, allowance: timedelta) -> date:
    """The newest partition whose due time is not after `now`."""
    return (now.astimezone(UTC) - allowance).date() - timedelta(days=1)


def assess(table_ref: str, kind: Kind, newest: date | None, allowance: timedelta, now: datetime) -> Freshness:
    """Deadline, lag and breach of a table whose newest complete partition is `newest`."""
    now = now.astimezone(UTC)
    if newest is None:
        deadline = due_at(newest_due_partition(now, allowance), allowance)
        lag = None
    else:
        deadline = due_at(newest + timedelta(days=1), allowance)
        end = datetime.combine(newest + timedelta(days=1), time(), tzinfo=UTC)
        lag = max(0, int((now - end).total_seconds()))
    return Freshness(table_ref, kind, newest, deadline, lag, deadline <= now, now, allowance)


def event_newest_complete(schema: EventSchema, warehouse: FreshnessWarehouse, now: datetime) -> date | None:
    """The newest day of the event table past its allowed lateness that has rows."""
    newest = newest_due_partition(now, schema.allowed_lateness)
    day = exp.Date(this=exp.column(EVENT_PARTITION_COLUMN))
    dataset, _, table = schema.table_ref.partition(".")
    query = (
        exp.select(exp.alias_(exp.Max(this=day.copy()), "newest"))
        .from_(exp.Table(this=exp.to_identifier(table), db=exp.to_identifier(dataset)))
        .where(exp.Between(this=day.copy(), low=exp.Parameter(this=exp.var("oldest")), high=exp.Parameter(this=exp.var("newest"))))
    )
    rows = warehouse.query(
        query.sql(dialect="bigquery"), {"oldest": newest - timedelta(days=LOOKBACK_DAYS), "newest": newest}
    )
    return rows[0]["newest"] if rows and rows[0]["newest"] is not None else None


def endpoint_newest_complete(endpoint: Endpoint, warehouse: FreshnessWarehouse) -> date | None:
    """The newest partition of the endpoint whose current state is `succeeded`."""
    states = partition_states(warehouse, [endpoint.table_ref], status="succeeded")
    return max((s.partition for s in states), default=None)


def measure(
    catalog: Catalog, warehouse: FreshnessWarehouse, now: datetime, *, tables: Iterable[str] | None = None
) -> list[Freshness]:
    """Freshness of every event table and endpoint (or only of `tables`: refs or names)."""
    wanted = set(tables) if tables is not None else None
    out: list[Freshness] = []
    for schema in sorted(catalog.schemas, key=lambda s: s.table_ref):
        if wanted is None or wanted & {schema.table_ref, schema.key, schema.name}:
            newest = event_newest_complete(schema, warehouse, now)
            out.append(assess(schema.table_ref, "event", newest, schema.allowed_lateness, now))
    for endpoint in sorted(catalog.endpoints, key=lambda e: e.name):
        if wanted is None or wanted & {endpoint.table_ref, endpoint.name}:
            newest = endpoint_newest_complete(endpoint, warehouse)
            out.append(assess(endpoint.table_ref, "endpoint", newest, endpoint.freshness_deadline, now))
    return out


def record_freshness(warehouse: FreshnessWarehouse, results: Sequence[Freshness]) -> int:
    return warehouse.insert_rows(FRESHNESS, [r.row() for r in results]) if results else 0


def log_breaches(results: Iterable[Freshness], logger: logging.Logger | None = None) -> int:
    """One WARNING line per breach, the message being the JSON object itself."""
    logger = logger or logging.getLogger(LOGGER_NAME)
    count = 0
    for result in results:
        if result.breached:
            logger.warning(json.dumps(result.breach_log(), sort_keys=True))
            count += 1
    return count


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()
