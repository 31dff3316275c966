"""The local scheduler: cron fires for the previous day, waiting partitions retried, a thread that stops."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from dataplatform.pipeline.readiness import partition_state
from dataplatform.pipeline.scheduler import Fire, LocalScheduler
from tests.fakes import ManualClock
from tests.fixtures.endpoints.seed import RUN_DATE, new_warehouse, seed_events, table_rows

UTC = timezone.utc
MAY_2 = datetime(2024, 5, 2, tzinfo=UTC)


@pytest.fixture()
def setup(catalog):
    warehouse = new_warehouse(catalog)
    seed_events(warehouse, catalog)
    clock = ManualClock(MAY_2)
    yield LocalScheduler(catalog, warehouse, clock), warehouse, clock
    warehouse.close()


def test_fires_are_in_time_order_then_dependency_order(setup) -> None:
    scheduler, _, _ = setup
    fires = scheduler.fires_between(MAY_2, MAY_2 + timedelta(days=1))
    assert [(f.endpoint, f.run_time.strftime("%H:%M")) for f in fires] == [
        ("ad_revenue_daily", "03:00"),
        ("daily_track_plays", "03:30"),
        ("daily_active_users", "04:00"),
        ("search_success_rate", "04:15"),
        ("artist_daily_summary", "05:00"),
        ("playlist_activity", "05:00"),
        ("weekly_top_tracks", "05:30"),
    ]
    assert {f.run_date for f in fires} == {RUN_DATE}  # a fire on May 2 writes May 1


def test_the_interval_is_open_at_the_start_and_closed_at_the_end(setup) -> None:
    scheduler, _, _ = setup
    at = datetime(2024, 5, 2, 3, 30, tzinfo=UTC)
    assert [f.endpoint for f in scheduler.fires_between(at - timedelta(minutes=1), at)] == ["daily_track_plays"]
    assert scheduler.fires_between(at, at + timedelta(minutes=1)) == []
    assert scheduler.next_fire(at) == datetime(2024, 5, 2, 4, tzinfo=UTC)


def test_fire_run_date_is_the_day_before() -> None:
    assert Fire("x", datetime(2024, 5, 2, 0, 0, tzinfo=UTC)).run_date == RUN_DATE
    assert Fire("x", datetime(2024, 5, 2, 23, 59, tzinfo=UTC)).run_date == RUN_DATE


def test_the_first_tick_only_sets_the_start_and_retries(setup) -> None:
    scheduler, warehouse, clock = setup
    assert scheduler.tick(datetime(2024, 5, 2, 12, tzinfo=UTC)) == []
    assert warehouse.query("SELECT * FROM platform.runs") == []  # no catch-up of the morning's fires


def test_a_fire_waits_and_the_retry_runs_it_when_ready(setup) -> None:
    scheduler, warehouse, clock = setup
    scheduler.tick(datetime(2024, 5, 2, 3, 0, 30, tzinfo=UTC))
    clock.set(datetime(2024, 5, 2, 3, 31, tzinfo=UTC))
    [fired] = scheduler.tick()
    assert (fired.endpoint, fired.run_date, fired.status) == ("daily_track_plays", RUN_DATE, "waiting")
    assert fired.run_time == datetime(2024, 5, 2, 3, 30, tzinfo=UTC)
    assert "allowed lateness 3d" in fired.reasons[0]

    # every fire of the morning waits: search (6h) and playlist (1d) events are not complete yet
    clock.set(datetime(2024, 5, 2, 5, 1, tzinfo=UTC))
    results = scheduler.tick()
    assert [(r.endpoint, r.status) for r in results] == [
        ("daily_active_users", "waiting"),
        ("search_success_rate", "waiting"),
        ("artist_daily_summary", "waiting"),
        ("playlist_activity", "waiting"),
    ]
    assert results[2].reasons == ("endpoints.daily_track_plays partition 2024-05-01 is waiting",)

    # May 5 00:00: track_played for May 1 is past its 3 days; one tick runs what waited, upstream first
    clock.set(datetime(2024, 5, 5, 0, 0, 1, tzinfo=UTC))
    scheduler.retry_every = timedelta(0)
    retried = [(r.endpoint, r.run_date, r.status) for r in scheduler.retry_waiting(clock.now())]
    assert retried == [
        ("daily_track_plays", RUN_DATE, "succeeded"),
        ("artist_daily_summary", RUN_DATE, "succeeded"),
        ("daily_active_users", RUN_DATE, "succeeded"),
        ("playlist_activity", RUN_DATE, "succeeded"),
        ("search_success_rate", RUN_DATE, "succeeded"),
    ]
    assert partition_state(warehouse, "endpoints.artist_daily_summary", RUN_DATE).status == "succeeded"
    assert len(table_rows(warehouse, "endpoints.artist_daily_summary")) == 2


def test_a_still_waiting_partition_is_not_run_again(setup) -> None:
    scheduler, warehouse, clock = setup
    scheduler.tick(datetime(2024, 5, 2, 3, 29, tzinfo=UTC))
    clock.set(datetime(2024, 5, 2, 3, 31, tzinfo=UTC))
    scheduler.tick()
    runs_before = len(warehouse.query("SELECT * FROM platform.runs"))
    scheduler.retry_every = timedelta(0)
    assert scheduler.tick(datetime(2024, 5, 2, 3, 45, tzinfo=UTC)) == []
    assert len(warehouse.query("SELECT * FROM platform.runs")) == runs_before


def test_run_forever_ticks_in_a_thread_until_stopped(catalog) -> None:
    warehouse = new_warehouse(catalog)
    seed_events(warehouse, catalog)
    try:
        class SteppingClock(ManualClock):
            """Each read moves time on by 10 minutes, so the loop sees fire times pass."""

            def now(self) -> datetime:
                return self.advance(minutes=10)

        clock = SteppingClock(datetime(2024, 5, 9, 2, 0, tzinfo=UTC))
        scheduler = LocalScheduler(catalog, warehouse, clock, poll_seconds=0.01)
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.run_forever, args=(stop,), daemon=True)
        thread.start()
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while datetime.now(UTC) < deadline:
            done = warehouse.query("SELECT endpoint FROM platform.runs WHERE run_date = DATE '2024-05-08'")
            if {"ad_revenue_daily", "weekly_top_tracks"} <= {r["endpoint"] for r in done}:
                break
            stop.wait(0.05)
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        fired = {r["endpoint"] for r in warehouse.query("SELECT endpoint FROM platform.runs WHERE run_date = DATE '2024-05-08'")}
        assert fired == {e.name for e in catalog.endpoints}
    finally:
        warehouse.close()
