"""Freshness with a manual clock: deadlines, lags, breaches recorded and logged."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone

import pytest

from dataplatform.pipeline.endpoint_run import record_partition
from dataplatform.pipeline.freshness import (
    LOGGER_NAME,
    assess,
    due_at,
    log_breaches,
    measure,
    newest_due_partition,
    record_freshness,
)
from tests.fakes import ManualClock
from tests.fixtures.endpoints.seed import RUN_DATE, insert_events, new_warehouse

UTC = timezone.utc


@pytest.fixture()
def warehouse(catalog):
    w = new_warehouse(catalog)
    yield w
    w.close()


def only(results, table_ref: str):
    [result] = [r for r in results if r.table_ref == table_ref]
    return result


def breach_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER_NAME]


def test_due_times_and_the_newest_due_partition() -> None:
    six_hours = timedelta(hours=6)
    assert due_at(RUN_DATE, six_hours) == datetime(2024, 5, 2, 6, tzinfo=UTC)
    assert newest_due_partition(datetime(2024, 5, 2, 6, tzinfo=UTC), six_hours) == RUN_DATE
    assert newest_due_partition(datetime(2024, 5, 2, 5, 59, 59, tzinfo=UTC), six_hours) == RUN_DATE - timedelta(days=1)
    assert newest_due_partition(datetime(2024, 5, 5, tzinfo=UTC), timedelta(days=3)) == RUN_DATE


def test_a_late_endpoint_partition_is_a_breach_recorded_and_logged(catalog, warehouse, caplog) -> None:
    clock = ManualClock(datetime(2024, 5, 1, 5, tzinfo=UTC))
    record_partition(warehouse, clock, table_ref="endpoints.daily_track_plays", partition=RUN_DATE - timedelta(days=1), status="succeeded")

    # daily_track_plays is due 4d after its day (it waits out track_played's 3d lateness): May 1 at May 6 00:00
    clock.set(datetime(2024, 5, 5, 23, 59, tzinfo=UTC))
    on_time = only(measure(catalog, warehouse, clock.now(), tables=["daily_track_plays"]), "endpoints.daily_track_plays")
    assert (on_time.newest_complete_partition, on_time.breached) == (date(2024, 4, 30), False)
    assert on_time.deadline == datetime(2024, 5, 6, tzinfo=UTC)
    assert on_time.lag_seconds == 4 * 86400 + 23 * 3600 + 59 * 60  # since the end of Apr 30

    clock.set(datetime(2024, 5, 6, 0, 30, tzinfo=UTC))
    results = measure(catalog, warehouse, clock.now(), tables=["daily_track_plays"])
    late = only(results, "endpoints.daily_track_plays")
    assert (late.breached, late.deadline, late.lag_seconds) == (True, datetime(2024, 5, 6, tzinfo=UTC), 5 * 86400 + 1800)

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert log_breaches(results) == 1
    assert breach_lines(caplog) == [
        {
            "event": "freshness_breach",
            "severity": "WARNING",
            "table": "endpoints.daily_track_plays",
            "kind": "endpoint",
            "lag_seconds": 5 * 86400 + 1800,
            "deadline": "2024-05-06T00:00:00Z",
            "newest_complete_partition": "2024-04-30",
            "message": "endpoints.daily_track_plays missed its freshness deadline 2024-05-06T00:00:00Z (newest complete partition: 2024-04-30)",
        }
    ]
    assert caplog.records[-1].levelno == logging.WARNING

    assert record_freshness(warehouse, results) == 1
    [row] = warehouse.query("SELECT * FROM platform.freshness")
    assert row == {
        "table_ref": "endpoints.daily_track_plays",
        "kind": "endpoint",
        "newest_complete_partition": date(2024, 4, 30),
        "deadline": datetime(2024, 5, 6, tzinfo=UTC),
        "lag_seconds": 5 * 86400 + 1800,
        "breached": True,
        "checked_at": datetime(2024, 5, 6, 0, 30, tzinfo=UTC),
    }

    # the partition succeeds: the next deadline is May 7 00:00, no breach
    record_partition(warehouse, clock, table_ref="endpoints.daily_track_plays", partition=RUN_DATE, status="succeeded")
    fresh = only(measure(catalog, warehouse, clock.now(), tables=["endpoints.daily_track_plays"]), "endpoints.daily_track_plays")
    assert (fresh.newest_complete_partition, fresh.breached, fresh.deadline) == (RUN_DATE, False, datetime(2024, 5, 7, tzinfo=UTC))


def test_a_failed_partition_is_not_complete(catalog, warehouse) -> None:
    clock = ManualClock(datetime(2024, 5, 6, 1, tzinfo=UTC))
    record_partition(warehouse, clock, table_ref="endpoints.daily_track_plays", partition=RUN_DATE, status="succeeded")
    record_partition(warehouse, clock, table_ref="endpoints.daily_track_plays", partition=RUN_DATE, status="failed")
    result = only(measure(catalog, warehouse, clock.now(), tables=["daily_track_plays"]), "endpoints.daily_track_plays")
    assert (result.newest_complete_partition, result.lag_seconds, result.breached) == (None, None, True)
    assert result.deadline == datetime(2024, 5, 6, tzinfo=UTC)


def test_an_event_table_is_fresh_while_its_newest_due_day_has_rows(catalog, warehouse) -> None:
    insert_events(
        warehouse, catalog, "app_session_started_v1",
        [{"event_id": "s1", "event_time": "2024-05-01T10:00:00Z", "user_pseudonym": "u1", "session_id": "s1", "device": {"os": "ios"}}],
    )
    # app_session_started: 12h lateness, May 1 is complete at May 2 12:00
    before = only(measure(catalog, warehouse, datetime(2024, 5, 2, 11, tzinfo=UTC), tables=["app_session_started"]), "events.app_session_started_v1")
    assert (before.newest_complete_partition, before.breached) == (None, True)  # Apr 30 is due and has no rows
    at = only(measure(catalog, warehouse, datetime(2024, 5, 2, 12, tzinfo=UTC), tables=["app_session_started_v1"]), "events.app_session_started_v1")
    assert (at.newest_complete_partition, at.breached, at.deadline, at.lag_seconds) == (
        RUN_DATE, False, datetime(2024, 5, 3, 12, tzinfo=UTC), 12 * 3600
    )
    # no rows for May 2 by its deadline: producers stopped sending, the table is stale
    stale = only(measure(catalog, warehouse, datetime(2024, 5, 3, 12, tzinfo=UTC), tables=["events.app_session_started_v1"]), "events.app_session_started_v1")
    assert (stale.newest_complete_partition, stale.breached, stale.lag_seconds) == (RUN_DATE, True, 36 * 3600)


def test_rows_beyond_the_lookback_do_not_make_a_table_fresh(catalog, warehouse) -> None:
    insert_events(
        warehouse, catalog, "search_performed_v1",
        [{"event_id": "q", "event_time": "2024-03-01T10:00:00Z", "user_pseudonym": "u1", "search_id": "q", "query_length": 1}],
    )
    result = only(measure(catalog, warehouse, datetime(2024, 5, 2, 12, tzinfo=UTC), tables=["search_performed"]), "events.search_performed_v1")
    assert result.newest_complete_partition is None and result.breached


def test_measure_covers_every_table_of_the_catalog(catalog, warehouse) -> None:
    results = measure(catalog, warehouse, datetime(2024, 5, 2, 12, tzinfo=UTC))
    assert sorted(r.table_ref for r in results) == sorted([s.table_ref for s in catalog.schemas] + [e.table_ref for e in catalog.endpoints])
    assert {r.kind for r in results} == {"event", "endpoint"}


def test_no_breach_no_log(caplog) -> None:
    fine = assess("endpoints.x", "endpoint", RUN_DATE, timedelta(hours=6), datetime(2024, 5, 2, 5, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert log_breaches([fine]) == 0
    assert breach_lines(caplog) == []
