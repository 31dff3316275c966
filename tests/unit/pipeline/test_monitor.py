"""monitor: freshness + run issues + waiting partitions; the GCP flow on transfer-run notifications.

The Data Transfer Service is a fake (`FakeTransfers`) behind the `TransferRuns` port; the
warehouse is the real local DuckDB adapter. A "scheduled query run" is simulated the way
BigQuery would leave the table: the partition written by the endpoint SQL (the local
`replace_partition`), then the notification monitor would receive.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pytest

from dataplatform.compile.scheduled_query import WAITING_PREFIX, scheduled_query_script
from dataplatform.errors import TransientError
from dataplatform.pipeline.endpoint_run import RunDeps, record_partition, record_run, run_endpoint
from dataplatform.pipeline.freshness import LOGGER_NAME
from dataplatform.pipeline.monitor import (
    MonitorDeps,
    decode_push,
    handle_http,
    handle_transfer_run,
    monitor,
    ready_waiting_partitions,
    run_issues,
)
from dataplatform.pipeline.readiness import partition_state
from tests.fakes import ManualClock
from tests.fixtures.endpoints.seed import LATE_ENOUGH, RUN_DATE, new_warehouse, seed_events

UTC = timezone.utc


class FakeTransfers:
    """`TransferRuns` in memory: remembers the manual runs it was asked to start."""

    def __init__(self) -> None:
        self.started: list[tuple[str, datetime]] = []

    def start_manual_run(self, endpoint: str, run_time: datetime) -> str:
        self.started.append((endpoint, run_time))
        return f"projects/p/locations/eu/transferConfigs/{endpoint}/runs/manual-{len(self.started)}"


@dataclass
class FakeRequest:
    method: str = "POST"
    path: str = "/"
    body: bytes = b""

    def get_data(self, cache: bool = True) -> bytes:
        return self.body


@pytest.fixture()
def deps(catalog):
    warehouse = new_warehouse(catalog)
    seed_events(warehouse, catalog)
    yield MonitorDeps(catalog, warehouse, ManualClock(LATE_ENOUGH), FakeTransfers())
    warehouse.close()


def notification(catalog, endpoint: str, state: str, *, run_time: str = "2024-05-02T03:30:00Z", message: str | None = None, name: str = "run-1") -> dict:
    run = {
        "name": f"projects/p/locations/eu/transferConfigs/{endpoint}/runs/{name}",
        "dataSourceId": "scheduled_query",
        "state": state,
        "scheduleTime": run_time,
        "runTime": run_time,
        "startTime": "2024-05-02T03:30:05.123456789Z",
        "endTime": "2024-05-02T03:31:00Z",
        "params": {"query": scheduled_query_script(catalog.endpoint(endpoint), catalog)},
    }
    if message is not None:
        run["errorStatus"] = {"code": 3, "message": message}
    return run


def push(document: dict, event_type: str = "TRANSFER_RUN_FINISHED") -> bytes:
    data = base64.b64encode(json.dumps(document).encode()).decode()
    return json.dumps({"message": {"data": data, "attributes": {"eventType": event_type, "payloadFormat": "JSON_API_V1"}, "messageId": "1"},
                       "subscription": "projects/p/subscriptions/transfer-runs-monitor"}).encode()


def write_partition(deps: MonitorDeps, endpoint: str, day: date = RUN_DATE) -> None:
    """What the scheduled query does to the table (the DuckDB stand-in for the script's write)."""
    e = deps.catalog.endpoint(endpoint)
    deps.warehouse.replace_partition(e.table_ref, e.partition_field, day, e.sql, {"run_date": day, "run_time": LATE_ENOUGH})


# --------------------------------------------------------------------------- transfer runs


def test_a_succeeded_transfer_run_is_checked_and_recorded(deps) -> None:
    write_partition(deps, "daily_track_plays")
    outcome = handle_transfer_run(notification(deps.catalog, "daily_track_plays", "SUCCEEDED"), deps)
    assert (outcome.status, outcome.endpoint, outcome.run_date) == ("succeeded", "daily_track_plays", RUN_DATE)
    assert {c.status for c in outcome.checks} == {"passed"} and len(outcome.checks) == 4
    run_id = "projects/p/locations/eu/transferConfigs/daily_track_plays/runs/run-1"
    [run] = deps.warehouse.query("SELECT * FROM platform.runs WHERE run_id = @r", {"r": run_id})
    assert (run["status"], run["rows_written"], run["run_date"], run["run_time"]) == ("succeeded", 3, RUN_DATE, datetime(2024, 5, 2, 3, 30, tzinfo=UTC))
    assert run["started_at"] == datetime(2024, 5, 2, 3, 30, 5, 123456, tzinfo=UTC)
    assert len(deps.warehouse.query("SELECT * FROM platform.check_results WHERE run_id = @r", {"r": run_id})) == 4
    state = partition_state(deps.warehouse, "endpoints.daily_track_plays", RUN_DATE)
    assert (state.status, state.row_count) == ("succeeded", 3)


def test_a_finished_upstream_starts_the_downstream_partitions_that_waited(deps) -> None:
    handle_transfer_run(
        notification(deps.catalog, "artist_daily_summary", "FAILED", run_time="2024-05-02T05:00:00Z",
                     message=f"Query error: {WAITING_PREFIX}endpoint artist_daily_summary partition 2024-05-01 waits for: "
                             "endpoints.daily_track_plays partition 2024-05-01 has not run at [1:1]", name="w-1"),
        deps,
    )
    assert partition_state(deps.warehouse, "endpoints.artist_daily_summary", RUN_DATE).status == "waiting"
    write_partition(deps, "daily_track_plays")
    outcome = handle_transfer_run(notification(deps.catalog, "daily_track_plays", "SUCCEEDED"), deps)
    assert [(s.endpoint, s.run_date) for s in outcome.started] == [("artist_daily_summary", RUN_DATE)]
    # the manual run's @run_time is the schedule's time on the next day, so its partition is May 1
    assert deps.transfers.started == [("artist_daily_summary", datetime(2024, 5, 2, 5, tzinfo=UTC))]
    state = partition_state(deps.warehouse, "endpoints.artist_daily_summary", RUN_DATE)
    assert (state.status, state.run_id) == ("ready", outcome.started[0].started_run)
    # a second notification does not start it again
    handle_transfer_run(notification(deps.catalog, "daily_track_plays", "SUCCEEDED", name="run-2"), deps)
    assert len(deps.transfers.started) == 1


def test_a_waiting_transfer_run_is_recorded_with_its_reasons(deps) -> None:
    message = (f"{WAITING_PREFIX}endpoint weekly_top_tracks partition 2024-05-01 waits for: "
               "endpoints.daily_track_plays partition 2024-04-30 is failed; endpoints.daily_track_plays partition 2024-05-01 has not run")
    outcome = handle_transfer_run(notification(deps.catalog, "weekly_top_tracks", "FAILED", run_time="2024-05-02T05:30:00Z", message=message), deps)
    assert outcome.status == "waiting"
    assert outcome.reasons == ("endpoints.daily_track_plays partition 2024-04-30 is failed", "endpoints.daily_track_plays partition 2024-05-01 has not run")
    [run] = deps.warehouse.query("SELECT status, reason FROM platform.runs")
    assert run == {"status": "waiting", "reason": "; ".join(outcome.reasons)}
    assert deps.transfers.started == []  # still not ready


def test_a_failed_transfer_run_fails_the_partition_and_is_logged(deps, caplog) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        outcome = handle_transfer_run(notification(deps.catalog, "daily_track_plays", "FAILED", message="Resources exceeded"), deps)
    assert outcome.status == "failed" and outcome.reasons == ("the scheduled query ended FAILED: Resources exceeded",)
    assert partition_state(deps.warehouse, "endpoints.daily_track_plays", RUN_DATE).status == "failed"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER_NAME]
    assert lines[0]["event"] == "run_failed" and lines[0]["endpoint"] == "daily_track_plays"


def test_a_succeeded_run_with_a_failing_check_fails_the_partition(deps) -> None:
    write_partition(deps, "daily_active_users")
    deps.warehouse.insert_rows(
        "endpoints.daily_active_users",
        [{"date": RUN_DATE, "os": "ios", "sessions": 1, "active_users": 1, "listening_users": 0, "cold_starts": 0}],
    )
    outcome = handle_transfer_run(notification(deps.catalog, "daily_active_users", "SUCCEEDED", run_time="2024-05-02T04:00:00Z"), deps)
    assert outcome.status == "failed" and outcome.reasons == ("quality checks failed: unique_date_os",)
    assert partition_state(deps.warehouse, "endpoints.daily_active_users", RUN_DATE).status == "failed"


def test_a_redelivered_notification_is_ignored(deps) -> None:
    write_partition(deps, "daily_track_plays")
    document = notification(deps.catalog, "daily_track_plays", "SUCCEEDED")
    assert handle_transfer_run(document, deps).status == "succeeded"
    again = handle_transfer_run(document, deps)
    assert again.status == "ignored" and "already recorded" in again.reasons[0]
    assert len(deps.warehouse.query("SELECT * FROM platform.check_results")) == 4


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"state": "SUCCEEDED"}, "no run name or state"),
        ({"name": "r", "state": "SUCCEEDED", "params": {"query": "SELECT 1"}}, "not a dataplatform endpoint run"),
        ({"name": "r", "state": "SUCCEEDED", "params": {"query": "-- dataplatform endpoint: gone\nSELECT 1"}}, "'gone', which the deployed catalog does not define"),
        ({"name": "r", "state": "SUCCEEDED", "params": {"query": "-- dataplatform endpoint: daily_track_plays\n"}}, "has no runTime"),
    ],
)
def test_notifications_that_are_not_endpoint_runs_are_ignored(deps, document, reason) -> None:
    outcome = handle_transfer_run(document, deps)
    assert outcome.status == "ignored" and reason in outcome.reasons[0]
    assert deps.warehouse.query("SELECT * FROM platform.runs") == []


# --------------------------------------------------------------------------- monitor


def test_monitor_records_freshness_of_every_table_and_logs_breaches(deps, caplog) -> None:
    deps.clock.set(datetime(2024, 5, 2, 13, tzinfo=UTC))
    run_deps = RunDeps(deps.catalog, deps.warehouse, ManualClock(LATE_ENOUGH))
    run_endpoint("daily_active_users", RUN_DATE, run_deps)
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        report = monitor(deps)
    tables = {f.table_ref: f for f in report.freshness}
    assert len(tables) == len(deps.catalog.schemas) + len(deps.catalog.endpoints)
    assert tables["endpoints.daily_active_users"].breached is False  # due May 2 08:00, succeeded
    assert tables["endpoints.daily_track_plays"].breached is True  # due May 2 06:00, never ran
    assert tables["events.app_session_started_v1"].newest_complete_partition == RUN_DATE
    recorded = deps.warehouse.query("SELECT table_ref, breached FROM platform.freshness")
    assert {r["table_ref"]: r["breached"] for r in recorded} == {t: f.breached for t, f in tables.items()}
    logged = {json.loads(r.getMessage())["table"] for r in caplog.records if "freshness_breach" in r.getMessage()}
    assert logged == {t for t, f in tables.items() if f.breached}
    assert report.to_json()["breaches"] == len(logged)


def test_run_issues_find_failed_and_long_running_runs(deps) -> None:
    clock = ManualClock(datetime(2024, 5, 2, 6, tzinfo=UTC))
    w = deps.warehouse
    base = {"run_date": RUN_DATE, "run_time": datetime(2024, 5, 2, 3, 30, tzinfo=UTC)}
    record_run(w, clock, run_id="slow", endpoint="daily_track_plays", status="running", started_at=datetime(2024, 5, 2, 4, 30, tzinfo=UTC), **base)
    record_run(w, clock, run_id="quick", endpoint="search_success_rate", status="running", started_at=datetime(2024, 5, 2, 5, 30, tzinfo=UTC), **base)
    record_run(w, clock, run_id="broken", endpoint="playlist_activity", status="failed", reason="boom", **base)
    record_run(w, clock, run_id="fixed-1", endpoint="ad_revenue_daily", status="failed", reason="boom", **base)
    record_run(w, clock, run_id="fixed-2", endpoint="ad_revenue_daily", status="succeeded", **base)
    record_run(w, clock, run_id="done", endpoint="daily_active_users", status="running", started_at=datetime(2024, 5, 2, 4, tzinfo=UTC), **base)
    record_run(w, clock, run_id="done", endpoint="daily_active_users", status="succeeded", **base)
    issues = run_issues(w, clock.now())
    assert sorted((i.kind, i.run_id) for i in issues) == [("failed", "broken"), ("long_running", "slow")]
    assert next(i for i in issues if i.run_id == "slow").log_line(clock.now())["running_seconds"] == 5400


def test_ready_waiting_partitions_are_reported_locally_and_started_in_gcp(deps) -> None:
    clock = ManualClock(datetime(2024, 5, 2, 5, tzinfo=UTC))
    record_partition(deps.warehouse, clock, table_ref="endpoints.search_success_rate", partition=RUN_DATE, status="waiting")
    record_partition(deps.warehouse, clock, table_ref="endpoints.artist_daily_summary", partition=RUN_DATE, status="waiting")
    local = MonitorDeps(deps.catalog, deps.warehouse, deps.clock)
    assert [(e.name, d) for e, d in ready_waiting_partitions(local)] == [("search_success_rate", RUN_DATE)]
    assert [r.to_json() for r in monitor(local).ready] == [{"endpoint": "search_success_rate", "run_date": "2024-05-01", "started_run": None}]
    report = monitor(deps)
    assert deps.transfers.started == [("search_success_rate", datetime(2024, 5, 2, 4, 15, tzinfo=UTC))]
    assert report.ready[0].started_run.endswith("manual-1")


def test_a_started_run_that_never_reports_back_is_started_again(deps) -> None:
    record_partition(deps.warehouse, deps.clock, table_ref="endpoints.search_success_rate", partition=RUN_DATE, status="waiting")
    monitor(deps)
    assert len(deps.transfers.started) == 1
    deps.clock.advance(minutes=30)
    monitor(deps)
    assert len(deps.transfers.started) == 1
    deps.clock.advance(minutes=31)
    monitor(deps)
    assert len(deps.transfers.started) == 2


# --------------------------------------------------------------------------- HTTP


def test_http_transfer_run_push(deps) -> None:
    write_partition(deps, "daily_track_plays")
    status, body = handle_http(FakeRequest("POST", "/transfer-run", push(notification(deps.catalog, "daily_track_plays", "SUCCEEDED"))), deps)
    assert status == 200 and body["status"] == "succeeded" and body["run_date"] == "2024-05-01"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (b'{"subscription": "x"}', 'no "message" object'),
        (json.dumps({"message": {"attributes": {"eventType": "TRANSFER_RUN_FINISHED"}}}).encode(), 'no base64 "data"'),
        (json.dumps({"message": {"data": "%%%"}}).encode(), "not base64-encoded JSON"),
        (json.dumps({"message": {"data": base64.b64encode(b"[1]").decode()}}).encode(), "not a JSON object"),
        (push({"name": "x"}, event_type="SOMETHING_ELSE"), "'SOMETHING_ELSE' is not TRANSFER_RUN_FINISHED"),
        (b" " * 1_000_001, "larger than"),
    ],
)
def test_http_poison_pushes_are_acknowledged_not_retried(deps, body, problem) -> None:
    assert decode_push(body)[1] is not None and problem in decode_push(body)[1]
    status, answer = handle_http(FakeRequest("POST", "/transfer-run", body), deps)
    assert status == 200 and answer["status"] == "ignored" and problem in answer["reasons"][0]


def test_http_check_for_one_endpoint(deps) -> None:
    deps.clock.set(datetime(2024, 5, 2, 7, tzinfo=UTC))
    status, body = handle_http(FakeRequest("POST", "/check", json.dumps({"endpoint": "daily_track_plays", "checks": ["freshness", "quality"]}).encode()), deps)
    assert status == 200
    assert [f["table"] for f in body["freshness"]] == ["endpoints.daily_track_plays"]
    assert body["freshness"][0]["breached"] is True
    assert body["quality"] == []  # the due partition (May 1) has no check results: it never ran


def test_http_check_reports_the_quality_of_the_due_partition(deps, caplog) -> None:
    deps.warehouse.insert_rows(
        "endpoints.daily_track_plays",
        [{"date": RUN_DATE, "track_id": "t1", "artist_id": a, "plays": 1, "streams": 0, "listeners": 1, "skips": 0, "skip_rate": 0.0, "ms_played": 1, "offline_plays": 0} for a in ("a1", "a2")],
    )
    run_deps = RunDeps(deps.catalog, deps.warehouse, deps.clock)
    from dataplatform.pipeline.quality import record_check_results, run_checks

    results = run_checks(deps.catalog.endpoint("daily_track_plays"), RUN_DATE, LATE_ENOUGH, deps.catalog, deps.warehouse)
    record_check_results(run_deps.warehouse, results, run_id="r", endpoint="daily_track_plays", partition=RUN_DATE, checked_at=LATE_ENOUGH)
    deps.clock.set(datetime(2024, 5, 6, 1, tzinfo=UTC))  # May 1 is due 4d after its day
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        status, body = handle_http(FakeRequest("POST", "/check", json.dumps({"endpoint": "daily_track_plays", "checks": ["quality"]}).encode()), deps)
    assert status == 200 and "freshness" in body and body["freshness"] == []
    assert {q["check"]: q["status"] for q in body["quality"]} == {
        "not_null_date_track_id_artist_id_plays_listeners": "passed", "row_count": "passed",
        "streams_within_plays": "passed", "unique_date_track_id": "failed",
    }
    failures = [json.loads(r.getMessage()) for r in caplog.records if "quality_failure" in r.getMessage()]
    assert [(f["check"], f["endpoint"], f["partition"]) for f in failures] == [("unique_date_track_id", "daily_track_plays", "2024-05-01")]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"endpoint": "daily_track_plays", "when": 1}', "unknown key(s) when"),
        (b'{"checks": ["speed"]}', "checks must be a list of freshness, quality"),
        (b'{"endpoint": 7}', "endpoint must be the name"),
        (b'{"endpoint": "daily_trak_plays"}', "unknown endpoint 'daily_trak_plays'"),
    ],
)
def test_http_bad_check_requests_are_400(deps, body, error) -> None:
    status, answer = handle_http(FakeRequest("POST", "/check", body), deps)
    assert status == 400 and error in answer["error"]


def test_http_root_monitors_everything_and_other_methods_are_405(deps) -> None:
    status, body = handle_http(FakeRequest("GET", "/"), deps)
    assert "quality" not in body
    assert status == 200 and len(body["freshness"]) == len(deps.catalog.schemas) + len(deps.catalog.endpoints)
    assert handle_http(FakeRequest("PUT", "/"), deps)[0] == 405
    assert handle_http(FakeRequest("GET", "/transfer-run"), deps)[0] == 405


def test_http_transient_errors_ask_for_a_retry(deps) -> None:
    class Unavailable:
        def query(self, sql, params=None):
            raise TransientError("BigQuery is unavailable (503)")

        def insert_rows(self, table_ref, rows):
            raise TransientError("BigQuery is unavailable (503)")

    broken = MonitorDeps(deps.catalog, Unavailable(), deps.clock, deps.transfers)
    status, body = handle_http(FakeRequest("POST", "/transfer-run", push(notification(deps.catalog, "daily_track_plays", "SUCCEEDED"))), broken)
    assert status == 503 and "retry later" in body["error"]
