"""Run one data endpoint for one date, as a BigQuery scheduled query would, and record it.

`run_endpoint(endpoint, D, deps)`:

1. records the run in `platform.runs` (one row per status change, same `run_id`);
2. checks upstream readiness (`pipeline/readiness.py`); when not ready the run ends
   `waiting` with the reasons, and the partition is recorded `waiting` (unless it already
   succeeded earlier: its data stands until a run replaces it);
3. replaces exactly partition D of `endpoints.<name>` with the endpoint SQL's result
   (`Warehouse.replace_partition`, `@run_date` = D, `@run_time` = the scheduled time of D,
   see `compile/scheduled_query.run_time_for_partition`): running it twice leaves the same
   table;
4. runs the quality checks on the new partition, records each in `platform.check_results`;
5. records the partition `succeeded`, or `failed` when the query failed or a check of
   severity `error` did not pass — downstream endpoints do not run on a failed partition.

The record tables are append-only logs: the newest row wins. Rows written by one process
get strictly increasing timestamps (`stamp`), so "newest" is well defined even under a
test clock that does not move.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dataplatform.compile.platform_tables import PARTITIONS_TABLE, RUNS_TABLE
from dataplatform.compile.scheduled_query import run_time_for_partition
from dataplatform.definitions.models import PLATFORM_DATASET, Endpoint
from dataplatform.errors import PlatformError
from dataplatform.pipeline.quality import CheckResult, blocking_failures, record_check_results, run_checks
from dataplatform.pipeline.readiness import Waiting, check_readiness, partition_state

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog
    from dataplatform.ports import Clock

UTC = timezone.utc
RUNS = f"{PLATFORM_DATASET}.{RUNS_TABLE}"
PARTITIONS = f"{PLATFORM_DATASET}.{PARTITIONS_TABLE}"

RunStatus = Literal["waiting", "succeeded", "failed"]


class EndpointWarehouse(Protocol):
    """What a run needs from the warehouse (`adapters/warehouse_base.ManagedWarehouse`)."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def replace_partition(
        self,
        table_ref: str,
        partition_field: str,
        partition_value: date | datetime,
        select_sql: str,
        params: Mapping[str, Any] | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class RunDeps:
    catalog: Catalog
    warehouse: EndpointWarehouse
    clock: Clock


@dataclass(frozen=True)
class RunResult:
    """What one run did."""

    endpoint: str
    run_date: date
    run_id: str
    run_time: datetime
    status: RunStatus
    reasons: tuple[str, ...] = ()
    rows_written: int | None = None
    checks: tuple[CheckResult, ...] = field(default=())
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) if self.reasons else None

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "run_date": self.run_date.isoformat(),
            "run_id": self.run_id,
            "run_time": self.run_time.isoformat(),
            "status": self.status,
            "reasons": list(self.reasons),
            "rows_written": self.rows_written,
            "checks": [c.to_json() for c in self.checks],
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


# --------------------------------------------------------------------------- records

_stamp_lock = threading.Lock()
_last_stamps: weakref.WeakKeyDictionary[Any, datetime] = weakref.WeakKeyDictionary()


def stamp(clock: Clock) -> datetime:
    """The clock's time, made strictly later than the previous stamp taken from this clock.

    Records are append-only and the newest row per key is the state; two rows of one key
    with the same timestamp would make "newest" ambiguous (a fixed test clock, or two
    records within a microsecond). Per clock, so that one clock's stamps never drag
    another's (a test clock in 2024, the system clock today) along.
    """
    now = clock.now().astimezone(UTC)
    with _stamp_lock:
        last = _last_stamps.get(clock)
        if last is not None and now <= last:
            now = last + timedelta(microseconds=1)
        _last_stamps[clock] = now
        return now


def record_run(
    warehouse: EndpointWarehouse,
    clock: Clock,
    *,
    run_id: str,
    endpoint: str,
    run_date: date,
    run_time: datetime,
    status: str,
    reason: str | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    rows_written: int | None = None,
) -> datetime:
    """Append one status row of a run to `platform.runs`; returns its `recorded_at`."""
    recorded_at = stamp(clock)
    warehouse.insert_rows(
        RUNS,
        [
            {
                "run_id": run_id,
                "endpoint": endpoint,
                "run_date": run_date,
                "run_time": run_time.astimezone(UTC),
                "status": status,
                "reason": reason,
                "started_at": started_at,
                "finished_at": finished_at,
                "rows_written": rows_written,
                "recorded_at": recorded_at,
            }
        ],
    )
    return recorded_at


def record_partition(
    warehouse: EndpointWarehouse,
    clock: Clock,
    *,
    table_ref: str,
    partition: date,
    status: str,
    run_id: str | None = None,
    row_count: int | None = None,
) -> datetime:
    """Append the new state of one partition to `platform.partitions`."""
    updated_at = stamp(clock)
    warehouse.insert_rows(
        PARTITIONS,
        [
            {
                "table_ref": table_ref,
                "partition": partition,
                "status": status,
                "updated_at": updated_at,
                "run_id": run_id,
                "row_count": row_count,
            }
        ],
    )
    return updated_at


def new_run_id(endpoint: str, run_date: date) -> str:
    """`<endpoint>-<YYYYMMDD>-<random>`: readable in the console, unique per run."""
    return f"{endpoint}-{run_date:%Y%m%d}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- the run


def run_endpoint(
    endpoint: Endpoint | str,
    run_date: date,
    deps: RunDeps,
    *,
    run_time: datetime | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run `endpoint` for partition `run_date`; see the module docstring for the steps."""
    if isinstance(endpoint, str):
        endpoint = deps.catalog.endpoint(endpoint)
    if isinstance(run_date, datetime) or not isinstance(run_date, date):
        raise PlatformError(f"run_date must be a date (the partition), not {type(run_date).__name__}")
    run_time = (run_time or run_time_for_partition(endpoint.schedule, run_date)).astimezone(UTC)
    run_id = run_id or new_run_id(endpoint.name, run_date)
    warehouse, clock = deps.warehouse, deps.clock

    def record(status: str, **kwargs: Any) -> datetime:
        return record_run(
            warehouse, clock, run_id=run_id, endpoint=endpoint.name, run_date=run_date, run_time=run_time, status=status, **kwargs
        )

    readiness = check_readiness(endpoint, run_date, deps.catalog, warehouse, clock.now())
    if isinstance(readiness, Waiting):
        reason = readiness.describe()
        record("waiting", reason=reason)
        current = partition_state(warehouse, endpoint.table_ref, run_date)
        if current is None or current.status != "succeeded":
            record_partition(warehouse, clock, table_ref=endpoint.table_ref, partition=run_date, status="waiting", run_id=run_id)
        return RunResult(endpoint.name, run_date, run_id, run_time, "waiting", readiness.reasons)

    started_at = clock.now()
    record("running", started_at=started_at)
    try:
        rows = warehouse.replace_partition(
            endpoint.table_ref,
            endpoint.partition_field,
            run_date,
            endpoint.sql,
            {"run_date": run_date, "run_time": run_time},
        )
    except PlatformError as exc:
        return _fail(deps, endpoint, run_id, run_date, run_time, started_at, (f"the query failed: {exc}",), None, ())
    except BaseException as exc:  # a bug: keep the traceback, but never leave the run "running"
        _fail(deps, endpoint, run_id, run_date, run_time, started_at, (f"unexpected {type(exc).__name__}",), None, ())
        raise

    checks = tuple(run_checks(endpoint, run_date, run_time, deps.catalog, warehouse))
    record_check_results(warehouse, checks, run_id=run_id, endpoint=endpoint.name, partition=run_date, checked_at=stamp(clock))
    blocking = blocking_failures(checks)
    if blocking:
        reason = "quality checks failed: " + ", ".join(_describe_failure(c) for c in blocking)
        return _fail(deps, endpoint, run_id, run_date, run_time, started_at, (reason,), rows, checks)

    finished_at = clock.now()
    record("succeeded", started_at=started_at, finished_at=finished_at, rows_written=rows)
    record_partition(
        warehouse, clock, table_ref=endpoint.table_ref, partition=run_date, status="succeeded", run_id=run_id, row_count=rows
    )
    return RunResult(
        endpoint.name, run_date, run_id, run_time, "succeeded", (), rows, checks, started_at, finished_at
    )


def _fail(
    deps: RunDeps,
    endpoint: Endpoint,
    run_id: str,
    run_date: date,
    run_time: datetime,
    started_at: datetime,
    reasons: tuple[str, ...],
    rows: int | None,
    checks: tuple[CheckResult, ...],
) -> RunResult:
    finished_at = deps.clock.now()
    record_run(
        deps.warehouse,
        deps.clock,
        run_id=run_id,
        endpoint=endpoint.name,
        run_date=run_date,
        run_time=run_time,
        status="failed",
        reason="; ".join(reasons),
        started_at=started_at,
        finished_at=finished_at,
        rows_written=rows,
    )
    record_partition(
        deps.warehouse, deps.clock, table_ref=endpoint.table_ref, partition=run_date, status="failed", run_id=run_id, row_count=rows
    )
    return RunResult(endpoint.name, run_date, run_id, run_time, "failed", reasons, rows, checks, started_at, finished_at)


def _describe_failure(result: CheckResult) -> str:
    if result.status == "error":
        return f"{result.name} (could not run: {result.error})"
    return f"{result.name} ({result.failing_rows} failing row{'s' if result.failing_rows != 1 else ''})"
