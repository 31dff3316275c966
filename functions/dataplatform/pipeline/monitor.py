"""The monitor use case: freshness, failed and long-running runs, waiting partitions, and (in
GCP) what happens when a scheduled query finishes.

`monitor(deps)` — locally (`dataplatform monitor`) and in GCP (Cloud Scheduler → HTTP):
1. freshness of every event table and endpoint (`pipeline/freshness.py`), recorded in
   `platform.freshness`, one structured log line per breach;
2. runs that failed or have been running for more than `LONG_RUNNING` (newest row per
   run in `platform.runs`), one structured log line each (`run_failed`, `run_long_running`);
3. endpoint partitions that were waiting and are ready now. In GCP they are started with
   the Data Transfer Service (`TransferRuns.start_manual_run`, run_time from the run-date
   convention) and recorded `ready`; a `ready` partition whose run never reported back
   within `LONG_RUNNING` is started again. Locally (no `TransferRuns`) they are only
   reported: the local scheduler runs them.

`handle_transfer_run(notification, deps)` — GCP: the Pub/Sub `TRANSFER_RUN_FINISHED`
notification of a scheduled query (the transfer run, JSON). The endpoint is read from the
script's first line, the partition from the run time (`partition_of_run`). A succeeded run
gets its quality checks, results, partition state and run row recorded, exactly as a local
run records them; a run that RAISEd the waiting message is recorded `waiting` with its
reasons; any other failure `failed`. Then waiting partitions that are ready now are started
(a finished upstream is what usually makes them ready). A redelivered notification of a run
already recorded is acknowledged and ignored.

`handle_http(request, deps) -> (status, body)` — the `monitor` Cloud Function:
- `POST .../transfer-run`: a Pub/Sub push envelope carrying the notification;
- `POST .../check` with `{"endpoint": "<name>", "checks": ["freshness", "quality"]}` (the
  Cloud Scheduler job at the endpoint's deadline): monitor for that endpoint's table;
  `quality` adds the check results of its newest due partition to the answer and logs a
  `quality_failure` line per failed `error`-severity check;
- anything else (`GET`/`POST /`): monitor everything.
Malformed notifications are answered 200 (acknowledged, logged) so Pub/Sub does not retry a
poison message forever; a `TransientError` answers 503 so it redelivers.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from sqlglot import exp

from dataplatform.compile.platform_tables import CHECK_RESULTS_TABLE, RUNS_TABLE
from dataplatform.compile.scheduled_query import (
    endpoint_of_script,
    partition_of_run,
    run_time_for_partition,
    waiting_reasons,
)
from dataplatform.definitions.models import PLATFORM_DATASET, Endpoint
from dataplatform.errors import PlatformError, TransientError
from dataplatform.pipeline.endpoint_run import record_partition, record_run, stamp
from dataplatform.pipeline.freshness import LOGGER_NAME, Freshness, log_breaches, measure, newest_due_partition, record_freshness
from dataplatform.pipeline.quality import CheckResult, blocking_failures, record_check_results, run_checks
from dataplatform.pipeline.readiness import Waiting, check_readiness, partition_state, partition_states

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog
    from dataplatform.ports import Clock

UTC = timezone.utc
RUNS = f"{PLATFORM_DATASET}.{RUNS_TABLE}"
CHECK_RESULTS = f"{PLATFORM_DATASET}.{CHECK_RESULTS_TABLE}"
LONG_RUNNING = timedelta(hours=1)
RUN_LOOKBACK = timedelta(days=2)
"""Runs recorded within this window are looked at for failures and long runs."""

TRANSFER_RUN_FINISHED = "TRANSFER_RUN_FINISHED"
CHECK_KINDS = ("freshness", "quality")
MAX_BODY_BYTES = 1_000_000

logger = logging.getLogger(LOGGER_NAME)


# --------------------------------------------------------------------------- ports and deps


class TransferRuns(Protocol):
    """The Data Transfer Service, as far as monitor needs it (a fake in unit tests)."""

    def start_manual_run(self, endpoint: str, run_time: datetime) -> str:
        """Start the endpoint's scheduled query now with `@run_time` = run_time; the run's name."""
        ...


class MonitorWarehouse(Protocol):
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int: ...


@dataclass(frozen=True)
class MonitorDeps:
    """What monitor needs: the catalog, the warehouse (BigQuery or DuckDB), a clock, and in
    GCP the Data Transfer Service (None locally)."""

    catalog: Catalog
    warehouse: MonitorWarehouse
    clock: Clock
    transfers: TransferRuns | None = None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RunIssue:
    kind: str  # failed | long_running
    run_id: str
    endpoint: str
    run_date: date
    status: str
    reason: str | None
    started_at: datetime | None
    recorded_at: datetime

    def log_line(self, now: datetime) -> dict[str, Any]:
        line: dict[str, Any] = {
            "event": f"run_{self.kind}",
            "severity": "ERROR" if self.kind == "failed" else "WARNING",
            "endpoint": self.endpoint,
            "run_date": self.run_date.isoformat(),
            "run_id": self.run_id,
            "reason": self.reason,
        }
        if self.kind == "long_running" and self.started_at is not None:
            line["running_seconds"] = int((now - self.started_at).total_seconds())
        line["message"] = f"endpoint {self.endpoint} run for {self.run_date} {self.kind.replace('_', ' ')}"
        return line

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "endpoint": self.endpoint,
            "run_date": self.run_date.isoformat(),
            "status": self.status,
            "reason": self.reason,
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }


@dataclass(frozen=True)
class ReadyPartition:
    endpoint: str
    run_date: date
    started_run: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "run_date": self.run_date.isoformat(), "started_run": self.started_run}


@dataclass(frozen=True)
class MonitorReport:
    freshness: tuple[Freshness, ...]
    run_issues: tuple[RunIssue, ...]
    ready: tuple[ReadyPartition, ...]
    quality: tuple[Mapping[str, Any], ...] | None = None
    """Check results of the due partition, when asked for (`/check` with "quality")."""

    @property
    def breaches(self) -> list[Freshness]:
        return [f for f in self.freshness if f.breached]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.breaches and not self.run_issues,
            "breaches": len(self.breaches),
            "freshness": [f.to_json() for f in self.freshness],
            "run_issues": [r.to_json() for r in self.run_issues],
            "ready_partitions": [r.to_json() for r in self.ready],
            **({"quality": [dict(q) for q in self.quality]} if self.quality is not None else {}),
        }


@dataclass(frozen=True)
class TransferRunOutcome:
    """What `handle_transfer_run` did with one notification."""

    status: str  # succeeded | failed | waiting | ignored
    endpoint: str | None = None
    run_date: date | None = None
    run_id: str | None = None
    reasons: tuple[str, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    started: tuple[ReadyPartition, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "endpoint": self.endpoint,
            "run_date": self.run_date.isoformat() if self.run_date else None,
            "run_id": self.run_id,
            "reasons": list(self.reasons),
            "checks": [c.to_json() for c in self.checks],
            "started": [s.to_json() for s in self.started],
        }


# --------------------------------------------------------------------------- monitor


def monitor(deps: MonitorDeps, *, tables: Sequence[str] | None = None) -> MonitorReport:
    """Measure, record and log freshness; find run issues; handle ready waiting partitions."""
    now = deps.clock.now().astimezone(UTC)
    freshness = measure(deps.catalog, deps.warehouse, now, tables=tables)
    record_freshness(deps.warehouse, freshness)
    log_breaches(freshness, logger)
    endpoints = _endpoint_names(deps.catalog, tables)
    issues = [i for i in run_issues(deps.warehouse, now) if i.endpoint in endpoints]
    for issue in issues:
        _log(issue.log_line(now), error=issue.kind == "failed")
    ready = start_ready_partitions(deps, endpoints=endpoints)
    return MonitorReport(tuple(freshness), tuple(issues), tuple(ready))


def _endpoint_names(catalog: Catalog, tables: Sequence[str] | None) -> set[str]:
    names = {e.name for e in catalog.endpoints}
    if tables is None:
        return names
    wanted = set(tables)
    return {e.name for e in catalog.endpoints if wanted & {e.name, e.table_ref}}


def run_issues(warehouse: MonitorWarehouse, now: datetime, *, long_running: timedelta = LONG_RUNNING) -> list[RunIssue]:
    """Runs whose newest row is `failed` (and not superseded by a later success of the same
    partition) or `running` since more than `long_running`, recorded within RUN_LOOKBACK."""
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("run_id")],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column("recorded_at"), desc=True)]),
    )
    query = (
        exp.select("run_id", "endpoint", "run_date", "status", "reason", "started_at", "recorded_at")
        .from_(exp.Table(this=exp.to_identifier(RUNS_TABLE), db=exp.to_identifier(PLATFORM_DATASET)))
        .where(exp.GTE(this=exp.column("recorded_at"), expression=exp.Parameter(this=exp.var("since"))))
        .qualify(exp.EQ(this=window, expression=exp.Literal.number(1)))
        .order_by("recorded_at")
    )
    rows = warehouse.query(query.sql(dialect="bigquery"), {"since": now - RUN_LOOKBACK})
    last_success: dict[tuple[str, date], datetime] = {}
    for row in rows:
        if row["status"] == "succeeded":
            key = (row["endpoint"], row["run_date"])
            last_success[key] = max(last_success.get(key, row["recorded_at"]), row["recorded_at"])
    issues: list[RunIssue] = []
    for row in rows:
        kind = None
        if row["status"] == "failed":
            succeeded_after = last_success.get((row["endpoint"], row["run_date"]))
            if succeeded_after is None or succeeded_after < row["recorded_at"]:
                kind = "failed"
        elif row["status"] == "running" and row["started_at"] is not None and now - row["started_at"] > long_running:
            kind = "long_running"
        if kind:
            issues.append(
                RunIssue(kind, row["run_id"], row["endpoint"], row["run_date"], row["status"], row["reason"], row["started_at"], row["recorded_at"])
            )
    return issues


def ready_waiting_partitions(deps: MonitorDeps, *, endpoints: set[str] | None = None) -> list[tuple[Endpoint, date]]:
    """Endpoint partitions that wait (or whose started run never reported back) and are ready now."""
    now = deps.clock.now().astimezone(UTC)
    chosen = [e for e in deps.catalog.endpoints if endpoints is None or e.name in endpoints]
    by_ref = {e.table_ref: e for e in chosen}
    states = partition_states(deps.warehouse, sorted(by_ref))
    out: list[tuple[Endpoint, date]] = []
    for state in states:
        stale_ready = state.status == "ready" and now - state.updated_at > LONG_RUNNING
        if state.status != "waiting" and not stale_ready:
            continue
        endpoint = by_ref[state.table_ref]
        if not isinstance(check_readiness(endpoint, state.partition, deps.catalog, deps.warehouse, now), Waiting):
            out.append((endpoint, state.partition))
    return out


def start_ready_partitions(deps: MonitorDeps, *, endpoints: set[str] | None = None) -> list[ReadyPartition]:
    """Start (GCP) or report (locally) every waiting partition that is ready now."""
    out: list[ReadyPartition] = []
    for endpoint, partition in ready_waiting_partitions(deps, endpoints=endpoints):
        if deps.transfers is None:
            out.append(ReadyPartition(endpoint.name, partition))
            continue
        run_time = run_time_for_partition(endpoint.schedule, partition)
        started = deps.transfers.start_manual_run(endpoint.name, run_time)
        record_partition(deps.warehouse, deps.clock, table_ref=endpoint.table_ref, partition=partition, status="ready", run_id=started)
        _log(
            {
                "event": "run_started",
                "severity": "INFO",
                "endpoint": endpoint.name,
                "run_date": partition.isoformat(),
                "run_id": started,
                "message": f"endpoint {endpoint.name} partition {partition} is ready: started {started}",
            }
        )
        out.append(ReadyPartition(endpoint.name, partition, started))
    return out


# --------------------------------------------------------------------------- transfer runs


def handle_transfer_run(notification: Mapping[str, Any], deps: MonitorDeps) -> TransferRunOutcome:
    """Record a finished scheduled-query run (see the module docstring)."""
    name = notification.get("name")
    state = notification.get("state")
    params = notification.get("params") if isinstance(notification.get("params"), Mapping) else {}
    query = params.get("query") if isinstance(params, Mapping) else None
    if not isinstance(name, str) or not name or not isinstance(state, str):
        return _ignored("the notification has no run name or state; it is not a transfer run")
    endpoint_name = endpoint_of_script(query) if isinstance(query, str) else None
    if endpoint_name is None:
        return _ignored(f"transfer run {name} is not a dataplatform endpoint run (no endpoint marker in its query)")
    try:
        endpoint = deps.catalog.endpoint(endpoint_name)
    except PlatformError:
        return _ignored(f"transfer run {name} is for endpoint {endpoint_name!r}, which the deployed catalog does not define")
    run_time = _timestamp(notification.get("runTime") or notification.get("scheduleTime"))
    if run_time is None:
        return _ignored(f"transfer run {name} has no runTime")
    run_date = partition_of_run(run_time)
    if _already_recorded(deps.warehouse, name):
        return TransferRunOutcome("ignored", endpoint.name, run_date, name, ("already recorded (a redelivered notification)",))
    started_at = _timestamp(notification.get("startTime"))
    finished_at = _timestamp(notification.get("endTime")) or deps.clock.now()
    base = dict(run_id=name, endpoint=endpoint.name, run_date=run_date, run_time=run_time)
    warehouse, clock = deps.warehouse, deps.clock

    if state == "SUCCEEDED":
        rows = _partition_rows(warehouse, endpoint, run_date)
        checks = tuple(run_checks(endpoint, run_date, run_time, deps.catalog, warehouse))
        record_check_results(warehouse, checks, run_id=name, endpoint=endpoint.name, partition=run_date, checked_at=stamp(clock))
        blocking = blocking_failures(checks)
        status = "failed" if blocking else "succeeded"
        reasons = (("quality checks failed: " + ", ".join(c.name for c in blocking)),) if blocking else ()
        record_run(warehouse, clock, status=status, reason=reasons[0] if reasons else None, started_at=started_at, finished_at=finished_at, rows_written=rows, **base)
        record_partition(warehouse, clock, table_ref=endpoint.table_ref, partition=run_date, status=status, run_id=name, row_count=rows)
        outcome = TransferRunOutcome(status, endpoint.name, run_date, name, reasons, checks)
    else:
        message = _error_message(notification)
        waiting = waiting_reasons(message) if state == "FAILED" else None
        if waiting is not None:
            record_run(warehouse, clock, status="waiting", reason="; ".join(waiting), **base)
            current = partition_state(warehouse, endpoint.table_ref, run_date)
            if current is None or current.status != "succeeded":
                record_partition(warehouse, clock, table_ref=endpoint.table_ref, partition=run_date, status="waiting", run_id=name)
            outcome = TransferRunOutcome("waiting", endpoint.name, run_date, name, waiting)
        else:
            reason = f"the scheduled query ended {state}" + (f": {message}" if message else "")
            record_run(warehouse, clock, status="failed", reason=reason, started_at=started_at, finished_at=finished_at, **base)
            record_partition(warehouse, clock, table_ref=endpoint.table_ref, partition=run_date, status="failed", run_id=name)
            _log({"event": "run_failed", "severity": "ERROR", "endpoint": endpoint.name, "run_date": run_date.isoformat(), "run_id": name, "reason": reason, "message": f"endpoint {endpoint.name} run for {run_date} failed"}, error=True)
            outcome = TransferRunOutcome("failed", endpoint.name, run_date, name, (reason,))
    started = tuple(start_ready_partitions(deps))
    return TransferRunOutcome(outcome.status, outcome.endpoint, outcome.run_date, outcome.run_id, outcome.reasons, outcome.checks, started)


def _ignored(reason: str) -> TransferRunOutcome:
    logger.warning(json.dumps({"event": "transfer_run_ignored", "severity": "WARNING", "message": reason}))
    return TransferRunOutcome("ignored", reasons=(reason,))


def _already_recorded(warehouse: MonitorWarehouse, run_id: str) -> bool:
    query = (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(exp.Table(this=exp.to_identifier(RUNS_TABLE), db=exp.to_identifier(PLATFORM_DATASET)))
        .where(exp.EQ(this=exp.column("run_id"), expression=exp.Parameter(this=exp.var("run_id"))))
    )
    rows = warehouse.query(query.sql(dialect="bigquery"), {"run_id": run_id})
    return bool(rows and rows[0]["n"])


def _partition_rows(warehouse: MonitorWarehouse, endpoint: Endpoint, run_date: date) -> int:
    dataset, _, table = endpoint.table_ref.partition(".")
    query = (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(exp.Table(this=exp.to_identifier(table), db=exp.to_identifier(dataset)))
        .where(exp.EQ(this=exp.column(endpoint.partition_field), expression=exp.Parameter(this=exp.var("run_date"))))
    )
    rows = warehouse.query(query.sql(dialect="bigquery"), {"run_date": run_date})
    return int(rows[0]["n"]) if rows else 0


def _error_message(notification: Mapping[str, Any]) -> str:
    error = notification.get("errorStatus")
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return error["message"]
    return ""


def _timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp of the transfer-run JSON (`2024-05-02T03:30:00Z`), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # protobuf JSON may carry nanoseconds; python takes at most microseconds
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# --------------------------------------------------------------------------- quality summary


def quality_summary(deps: MonitorDeps, endpoint: Endpoint) -> list[dict[str, Any]]:
    """Results of the checks of the endpoint's newest due partition (its latest run's), and a
    `quality_failure` log line per failed `error`-severity check."""
    partition = newest_due_partition(deps.clock.now(), endpoint.freshness_deadline)
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("check", quoted=True)],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column("checked_at"), desc=True)]),
    )
    query = (
        exp.select(exp.column("check", quoted=True), "type", "status", "severity", "failing_rows", "run_id")
        .from_(exp.Table(this=exp.to_identifier(CHECK_RESULTS_TABLE), db=exp.to_identifier(PLATFORM_DATASET)))
        .where(
            exp.and_(
                exp.EQ(this=exp.column("endpoint"), expression=exp.Literal.string(endpoint.name)),
                exp.EQ(this=exp.column("partition", quoted=True), expression=exp.Parameter(this=exp.var("partition"))),
            )
        )
        .qualify(exp.EQ(this=window, expression=exp.Literal.number(1)))
        .order_by(exp.column("check", quoted=True))
    )
    rows = deps.warehouse.query(query.sql(dialect="bigquery"), {"partition": partition})
    out = []
    for row in rows:
        item = {"endpoint": endpoint.name, "partition": partition.isoformat(), **row}
        out.append(item)
        if row["status"] != "passed" and row["severity"] == "error":
            _log({"event": "quality_failure", "severity": "ERROR", **item, "message": f"check {row['check']} of {endpoint.name} {partition} is {row['status']}"}, error=True)
    return out


# --------------------------------------------------------------------------- HTTP


def handle_http(request: Any, deps: MonitorDeps) -> tuple[int, dict[str, Any]]:
    """The `monitor` Cloud Function over a Flask request: (HTTP status, JSON body)."""
    method = getattr(request, "method", "GET")
    path = str(getattr(request, "path", "/") or "/").rstrip("/")
    if method not in ("GET", "POST"):
        return 405, {"error": "use GET or POST"}
    try:
        if path.endswith("/transfer-run"):
            if method != "POST":
                return 405, {"error": "POST the Pub/Sub push envelope of a transfer-run notification"}
            return _transfer_run_request(_body(request), deps)
        if path.endswith("/check"):
            return _check_request(_body(request) if method == "POST" else b"", deps)
        return 200, monitor(deps).to_json()
    except TransientError as exc:
        logger.warning(json.dumps({"event": "monitor_retry", "severity": "WARNING", "message": str(exc)}))
        return 503, {"error": f"a dependency is unavailable; retry later: {exc}"}


def _body(request: Any) -> bytes:
    data = request.get_data(cache=False) if hasattr(request, "get_data") else b""
    return bytes(data or b"")


def _transfer_run_request(body: bytes, deps: MonitorDeps) -> tuple[int, dict[str, Any]]:
    notification, problem = decode_push(body)
    if problem is not None:
        outcome = _ignored(problem)
        return 200, outcome.to_json()
    return 200, handle_transfer_run(notification, deps).to_json()


def decode_push(body: bytes) -> tuple[dict[str, Any], str | None]:
    """(transfer run, None), or ({}, what is wrong) for a push body that is not a transfer-run
    notification. Never raises: a poison message is acknowledged, not retried."""
    if len(body) > MAX_BODY_BYTES:
        return {}, f"the push body is larger than {MAX_BODY_BYTES} bytes"
    try:
        envelope = json.loads(body or b"null")
    except ValueError:
        return {}, "the push body is not JSON"
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        return {}, 'the push body has no "message" object (expected a Pub/Sub push envelope)'
    attributes = message.get("attributes") if isinstance(message.get("attributes"), dict) else {}
    event_type = attributes.get("eventType")
    if event_type is not None and event_type != TRANSFER_RUN_FINISHED:
        return {}, f"event type {event_type!r} is not {TRANSFER_RUN_FINISHED}"
    data = message.get("data")
    if not isinstance(data, str):
        return {}, 'the message has no base64 "data"'
    try:
        run = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return {}, "the message data is not base64-encoded JSON"
    if not isinstance(run, dict):
        return {}, "the message data is not a JSON object (a transfer run)"
    return run, None


def _check_request(body: bytes, deps: MonitorDeps) -> tuple[int, dict[str, Any]]:
    document: Any = {}
    if body.strip():
        try:
            document = json.loads(body)
        except ValueError:
            return 400, {"error": 'the body is not JSON; send {"endpoint": "<name>", "checks": ["freshness", "quality"]}'}
    if not isinstance(document, dict):
        return 400, {"error": 'the body must be a JSON object {"endpoint": ..., "checks": [...]}'}
    unknown = sorted(set(document) - {"endpoint", "checks"})
    if unknown:
        return 400, {"error": f"unknown key(s) {', '.join(unknown)}; send endpoint and checks"}
    checks = document.get("checks", list(CHECK_KINDS))
    if not isinstance(checks, list) or not all(isinstance(c, str) and c in CHECK_KINDS for c in checks):
        return 400, {"error": f"checks must be a list of {', '.join(CHECK_KINDS)}"}
    name = document.get("endpoint")
    if name is None:
        return 200, monitor(deps).to_json()
    if not isinstance(name, str):
        return 400, {"error": "endpoint must be the name of a data endpoint"}
    try:
        endpoint = deps.catalog.endpoint(name)
    except PlatformError as exc:
        return 400, {"error": str(exc)}
    report = monitor(deps, tables=[endpoint.name]) if "freshness" in checks else MonitorReport((), (), ())
    quality = tuple(quality_summary(deps, endpoint)) if "quality" in checks else None
    return 200, MonitorReport(report.freshness, report.run_issues, report.ready, quality).to_json()


def _log(line: Mapping[str, Any], *, error: bool = False) -> None:
    text = json.dumps(dict(line), sort_keys=True, default=str)
    if error:
        logger.error(text)
    else:
        logger.warning(text) if line.get("severity") == "WARNING" else logger.info(text)
