"""Backfill: run an endpoint for every date of a range, oldest first, optionally with its downstreams.

Order matters: an endpoint reading its own upstream's last seven days (`weekly_top_tracks`)
needs those days done first, and a downstream endpoint needs the same day of its upstream.
So the plan is date by date, ascending; with `with_downstream`, each date runs the endpoint
and then every endpoint that reads it, transitively, in dependency order
(`compile/endpoint_schema.dependency_order`). Each step is an ordinary `run_endpoint`:
readiness, the partition replace, checks and records are the same as a scheduled run's, so
a step whose upstream is not ready waits (and says why), and a failed partition keeps its
downstreams from running on it. The backfill does not stop at a waiting or failed step:
later dates are independent unless their own readiness says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from dataplatform.compile.endpoint_schema import dependency_order
from dataplatform.compile.lineage import downstreams
from dataplatform.errors import PlatformError
from dataplatform.pipeline.endpoint_run import RunDeps, RunResult, run_endpoint

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog
    from dataplatform.definitions.models import Endpoint

MAX_BACKFILL_DAYS = 3660
"""Ten years of daily partitions: the longest endpoint retention, a guard against typos."""

Progress = Callable[[int, int, RunResult], None]
"""Called after each step with (steps done, steps in total, the step's result)."""


@dataclass(frozen=True)
class BackfillStep:
    endpoint: str
    run_date: date


@dataclass(frozen=True)
class BackfillResult:
    runs: tuple[RunResult, ...]

    def counts(self) -> dict[str, int]:
        out = {"succeeded": 0, "failed": 0, "waiting": 0}
        for run in self.runs:
            out[run.status] += 1
        return out

    @property
    def ok(self) -> bool:
        return all(run.status == "succeeded" for run in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts(), "runs": [r.to_json() for r in self.runs]}


def downstream_endpoints(catalog: Catalog, endpoint: Endpoint) -> list[Endpoint]:
    """Every endpoint that reads `endpoint`, directly or through others, in dependency order."""
    readers = downstreams(catalog)
    found: set[str] = set()
    pending = [endpoint.table_ref]
    while pending:
        for reader in readers.get(pending.pop(), []):
            if reader not in found:
                found.add(reader)
                pending.append(reader)
    return [e for e in dependency_order(catalog) if e.table_ref in found]


def backfill_plan(
    catalog: Catalog, endpoint: str, start: date, end: date, *, with_downstream: bool = False
) -> list[BackfillStep]:
    """The steps of a backfill, in the order they run."""
    if end < start:
        raise PlatformError(f"backfill range is empty: --from {start} is after --to {end}")
    days = (end - start).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise PlatformError(f"backfill of {days} days is longer than {MAX_BACKFILL_DAYS}; split the range")
    root = catalog.endpoint(endpoint)
    chain = [root, *(downstream_endpoints(catalog, root) if with_downstream else [])]
    return [BackfillStep(e.name, start + timedelta(days=offset)) for offset in range(days) for e in chain]


def backfill(
    endpoint: str,
    start: date,
    end: date,
    deps: RunDeps,
    *,
    with_downstream: bool = False,
    progress: Progress | None = None,
) -> BackfillResult:
    """Run every step of `backfill_plan` in order; report each to `progress`."""
    plan = backfill_plan(deps.catalog, endpoint, start, end, with_downstream=with_downstream)
    results: list[RunResult] = []
    for done, step in enumerate(plan, start=1):
        result = run_endpoint(step.endpoint, step.run_date, deps)
        results.append(result)
        if progress is not None:
            progress(done, len(plan), result)
    return BackfillResult(tuple(results))
