"""The local scheduler: what BigQuery's Data Transfer Service and `monitor` do for endpoints in GCP.

`LocalScheduler(catalog, warehouse, clock)` is driven by `tick(now)`; the local runtime
(local/runtime.py) runs `run_forever(stop_event)` in a thread. Each tick:

1. Fires every endpoint whose cron (UTC, croniter) had a fire time in (previous tick, now],
   in time order and, for one time, in dependency order. A fire at T runs the partition
   of the day before: `run_date = DATE(T) - 1`, `run_time = T` — the run-date convention
   of `compile/scheduled_query.py`, the same as the GCP script's.
2. Retries waiting partitions (newest state `waiting` in `platform.partitions`) whose
   upstreams are ready now — in GCP `monitor` starts a manual transfer run for those.
   Readiness is checked before running, so a partition that still waits does not add a
   run row on every tick. Retries happen at most every `retry_every`.

Like DTS, the scheduler does not catch up on fire times missed while it was not running
(the first tick only sets the starting point, and retries waiting partitions);
`dataplatform backfill` catches up on purpose.

Hooking it into the local runtime (the one process that may write the DuckDB file), after
`ensure_warehouse`:

    scheduler = LocalScheduler(catalog, warehouse, SystemClock())
    threading.Thread(target=scheduler.run_forever, args=(stop_event,), daemon=True).start()
A run that raises is logged and does not stop the scheduler: the run itself is recorded
`failed` by `run_endpoint`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from croniter import croniter

from dataplatform.compile.endpoint_schema import dependency_order
from dataplatform.compile.scheduled_query import partition_of_run
from dataplatform.errors import PlatformError
from dataplatform.pipeline.endpoint_run import EndpointWarehouse, RunDeps, RunResult, run_endpoint
from dataplatform.pipeline.readiness import Waiting, check_readiness, partition_states

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog
    from dataplatform.ports import Clock

UTC = timezone.utc
logger = logging.getLogger(__name__)

POLL_SECONDS = 30.0
"""Longest sleep between ticks of `run_forever` (a fire is never late by more than this)."""

RETRY_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Fire:
    """One scheduled run: the endpoint, the fire time (= @run_time) and the partition."""

    endpoint: str
    run_time: datetime

    @property
    def run_date(self) -> date:
        return partition_of_run(self.run_time)


class LocalScheduler:
    """Fires endpoint runs on their cron and retries waiting partitions; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        warehouse: EndpointWarehouse,
        clock: Clock,
        *,
        retry_every: timedelta = RETRY_EVERY,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.catalog = catalog
        self.deps = RunDeps(catalog, warehouse, clock)
        self.clock = clock
        self.retry_every = retry_every
        self.poll_seconds = poll_seconds
        self._order = {e.name: i for i, e in enumerate(dependency_order(catalog))}
        self._last_tick: datetime | None = None
        self._last_retry: datetime | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- planning

    def fires_between(self, after: datetime, until: datetime) -> list[Fire]:
        """Fire times in (after, until] of every endpoint, by time then dependency order."""
        fires: list[Fire] = []
        for endpoint in self.catalog.endpoints:
            it = croniter(endpoint.schedule, after.astimezone(UTC))
            while True:
                at = _utc(it.get_next(datetime))
                if at > until:
                    break
                fires.append(Fire(endpoint.name, at))
        return sorted(fires, key=lambda f: (f.run_time, self._order.get(f.endpoint, 0), f.endpoint))

    def next_fire(self, after: datetime) -> datetime | None:
        """The earliest fire time of any endpoint after `after`."""
        times = [_utc(croniter(e.schedule, after.astimezone(UTC)).get_next(datetime)) for e in self.catalog.endpoints]
        return min(times, default=None)

    # ----------------------------------------------------------------- running

    def tick(self, now: datetime | None = None) -> list[RunResult]:
        """Run what is due at `now` (default: the clock); the results of the runs made."""
        now = _utc(now or self.clock.now())
        with self._lock:
            previous, self._last_tick = self._last_tick, now
            results: list[RunResult] = []
            if previous is not None and now > previous:
                for fire in self.fires_between(previous, now):
                    result = self._run(fire.endpoint, fire.run_date, fire.run_time)
                    if result is not None:
                        results.append(result)
            if self._last_retry is None or now - self._last_retry >= self.retry_every:
                self._last_retry = now
                results.extend(self.retry_waiting(now))
            return results

    def retry_waiting(self, now: datetime) -> list[RunResult]:
        """Run the waiting partitions whose upstreams are ready at `now`, in dependency order."""
        by_ref = {e.table_ref: e for e in self.catalog.endpoints}
        waiting = partition_states(self.deps.warehouse, sorted(by_ref), status="waiting")
        waiting.sort(key=lambda s: (s.partition, self._order.get(by_ref[s.table_ref].name, 0)))
        results = []
        for state in waiting:
            endpoint = by_ref[state.table_ref]
            readiness = check_readiness(endpoint, state.partition, self.catalog, self.deps.warehouse, now)
            if isinstance(readiness, Waiting):
                continue
            result = self._run(endpoint.name, state.partition, None)
            if result is not None:
                results.append(result)
        return results

    def _run(self, endpoint: str, run_date: date, run_time: datetime | None) -> RunResult | None:
        try:
            result = run_endpoint(endpoint, run_date, self.deps, run_time=run_time)
        except PlatformError as exc:  # e.g. the warehouse is unreachable: log, go on with the others
            logger.error("scheduler: endpoint %s for %s could not run: %s", endpoint, run_date, exc)
            return None
        logger.info("scheduler: endpoint %s for %s: %s%s", endpoint, run_date, result.status, f" ({result.reason})" if result.reason else "")
        return result

    def run_forever(self, stop_event: threading.Event) -> None:
        """Tick until `stop_event` is set; sleeps until the next fire time (at most poll_seconds)."""
        self.tick()
        while not stop_event.is_set():
            now = _utc(self.clock.now())
            upcoming = self.next_fire(now)
            wait = self.poll_seconds if upcoming is None else min(self.poll_seconds, max(0.0, (upcoming - now).total_seconds()))
            if stop_event.wait(wait):
                break
            try:
                self.tick()
            except PlatformError as exc:  # one broken run must not stop the scheduler
                logger.error("scheduler: tick failed: %s", exc)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


__all__ = ["Fire", "LocalScheduler", "POLL_SECONDS", "RETRY_EVERY"]

