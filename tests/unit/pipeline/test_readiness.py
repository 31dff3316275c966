"""Readiness of an endpoint partition: event lateness, upstream partition states, windows.

The rule runs as the compiled BigQuery query (`readiness_sql`) on DuckDB, with a manual
clock's time as `@now` — the same text the GCP script runs with CURRENT_TIMESTAMP().
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dataplatform.pipeline.endpoint_run import record_partition
from dataplatform.pipeline.readiness import Ready, Waiting, check_readiness, partition_state, partition_states
from tests.fakes import ManualClock
from tests.fixtures.endpoints.seed import RUN_DATE, new_warehouse

UTC = timezone.utc


@pytest.fixture()
def warehouse(catalog):
    w = new_warehouse(catalog)
    yield w
    w.close()


RECORDS_CLOCK = ManualClock(datetime(2024, 5, 6, tzinfo=UTC))
"""One clock for the records of a test: stamps of one clock are strictly increasing."""


def mark(warehouse, table_ref: str, day: date, status: str, clock: ManualClock | None = None) -> None:
    record_partition(warehouse, clock or RECORDS_CLOCK, table_ref=table_ref, partition=day, status=status)


def readiness(catalog, warehouse, endpoint: str, now: datetime, day: date = RUN_DATE):
    return check_readiness(catalog.endpoint(endpoint), day, catalog, warehouse, now)


# --------------------------------------------------------------------------- event upstreams


def test_an_event_day_is_ready_exactly_when_its_lateness_has_passed(catalog, warehouse) -> None:
    ready_at = datetime(2024, 5, 2, 12, tzinfo=UTC)  # app_session_started: 12h after the end of May 1
    waiting = readiness(catalog, warehouse, "daily_active_users", ready_at - timedelta(microseconds=1))
    assert isinstance(waiting, Waiting)
    assert waiting.reasons[0] == "events.app_session_started_v1 is complete for 2024-05-01 only at 2024-05-02 12:00:00+00 (allowed lateness 12h)"
    # track_played (3d) still waits at that time, and is listed after the first upstream
    assert waiting.reasons[1].startswith("events.track_played_v1 is complete for 2024-05-01 only at 2024-05-05 00:00:00+00")
    later = readiness(catalog, warehouse, "daily_active_users", ready_at)
    assert later == Waiting((waiting.reasons[1],))
    assert readiness(catalog, warehouse, "daily_active_users", datetime(2024, 5, 5, tzinfo=UTC)) == Ready()


def test_an_hour_partitioned_event_table_is_judged_per_day(catalog, warehouse) -> None:
    # ad_impression is HOUR-partitioned with 2h lateness: May 1 is complete at May 2 02:00
    assert isinstance(readiness(catalog, warehouse, "ad_revenue_daily", datetime(2024, 5, 2, 1, 59, tzinfo=UTC)), Waiting)
    assert readiness(catalog, warehouse, "ad_revenue_daily", datetime(2024, 5, 2, 2, tzinfo=UTC)).ready


def test_an_empty_event_day_is_complete(catalog, warehouse) -> None:
    assert warehouse.query("SELECT COUNT(*) AS n FROM events.ad_impression_v1")[0]["n"] == 0
    assert readiness(catalog, warehouse, "ad_revenue_daily", datetime(2024, 5, 3, tzinfo=UTC)) == Ready()


# --------------------------------------------------------------------------- endpoint upstreams

LATE = datetime(2024, 5, 20, tzinfo=UTC)


@pytest.mark.parametrize("status", ["waiting", "ready", "failed"])
def test_an_upstream_partition_must_have_succeeded(catalog, warehouse, status: str) -> None:
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE, status)
    assert readiness(catalog, warehouse, "artist_daily_summary", LATE) == Waiting(
        (f"endpoints.daily_track_plays partition 2024-05-01 is {status}",)
    )


def test_the_newest_state_of_a_partition_counts(catalog, warehouse) -> None:
    clock = ManualClock(datetime(2024, 5, 2, tzinfo=UTC))
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE, "failed", clock)
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE, "succeeded", clock)  # same clock time: stamps still order
    assert readiness(catalog, warehouse, "artist_daily_summary", LATE) == Ready()
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE, "failed", clock)
    assert not readiness(catalog, warehouse, "artist_daily_summary", LATE).ready


def test_other_partitions_of_the_upstream_do_not_count(catalog, warehouse) -> None:
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE - timedelta(days=1), "succeeded")
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE + timedelta(days=1), "succeeded")
    assert readiness(catalog, warehouse, "artist_daily_summary", LATE) == Waiting(
        ("endpoints.daily_track_plays partition 2024-05-01 has not run",)
    )


def test_a_window_needs_every_recorded_day_of_the_upstream(catalog, warehouse) -> None:
    # weekly_top_tracks reads daily_track_plays from run_date - 6 to run_date
    for offset in range(0, 10):
        mark(warehouse, "endpoints.daily_track_plays", RUN_DATE - timedelta(days=offset), "succeeded")
    assert readiness(catalog, warehouse, "weekly_top_tracks", LATE) == Ready()
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE - timedelta(days=6), "failed")
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE - timedelta(days=7), "failed")  # outside the window
    assert readiness(catalog, warehouse, "weekly_top_tracks", LATE) == Waiting(
        ("endpoints.daily_track_plays partition 2024-04-25 is failed",)
    )


def test_days_before_the_upstreams_first_partition_are_not_required(catalog, warehouse) -> None:
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE - timedelta(days=2), "succeeded")
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE, "succeeded")
    assert readiness(catalog, warehouse, "weekly_top_tracks", LATE) == Waiting(
        ("endpoints.daily_track_plays partition 2024-04-30 has not run",)
    )
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE - timedelta(days=1), "succeeded")
    assert readiness(catalog, warehouse, "weekly_top_tracks", LATE) == Ready()


def test_the_run_date_itself_is_required_even_before_any_upstream_history(catalog, warehouse) -> None:
    mark(warehouse, "endpoints.daily_track_plays", RUN_DATE + timedelta(days=3), "succeeded")
    assert readiness(catalog, warehouse, "weekly_top_tracks", LATE) == Waiting(
        ("endpoints.daily_track_plays partition 2024-05-01 has not run",)
    )


def test_an_endpoint_reading_no_table_is_always_ready(catalog, warehouse) -> None:
    endpoint = catalog.endpoint("daily_track_plays").model_copy(update={"sql": "SELECT @run_date AS date"})
    assert check_readiness(endpoint, RUN_DATE, catalog, warehouse, LATE) == Ready()


# --------------------------------------------------------------------------- partition states


def test_partition_states_are_the_newest_row_per_partition(catalog, warehouse) -> None:
    clock = ManualClock(datetime(2024, 5, 2, tzinfo=UTC))
    mark(warehouse, "endpoints.a_table", RUN_DATE, "waiting", clock)
    mark(warehouse, "endpoints.a_table", RUN_DATE, "succeeded", clock)
    mark(warehouse, "endpoints.a_table", RUN_DATE + timedelta(days=1), "failed", clock)
    mark(warehouse, "endpoints.other", RUN_DATE, "waiting", clock)
    states = partition_states(warehouse, ["endpoints.a_table"])
    assert [(s.partition, s.status) for s in states] == [(RUN_DATE, "succeeded"), (RUN_DATE + timedelta(days=1), "failed")]
    assert [s.partition for s in partition_states(warehouse, ["endpoints.a_table"], status="failed")] == [RUN_DATE + timedelta(days=1)]
    assert partition_states(warehouse, ["endpoints.a_table"], first=RUN_DATE + timedelta(days=1))[0].status == "failed"
    assert partition_states(warehouse, ["endpoints.a_table"], last=RUN_DATE)[0].status == "succeeded"
    assert partition_state(warehouse, "endpoints.other", RUN_DATE).status == "waiting"
    assert partition_state(warehouse, "endpoints.other", RUN_DATE + timedelta(days=1)) is None
    assert partition_states(warehouse, []) == []
