"""Backfills: dates in order, downstream endpoints in dependency order, progress, waiting steps."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dataplatform.errors import PlatformError
from dataplatform.pipeline.backfill import BackfillStep, backfill, backfill_plan, downstream_endpoints
from dataplatform.pipeline.endpoint_run import RunDeps
from tests.fakes import ManualClock
from tests.fixtures.endpoints.seed import insert_events, new_warehouse, table_rows

UTC = timezone.utc
FIRST = date(2024, 4, 25)
LAST = date(2024, 5, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(7)]


def plays_per_day() -> list[dict]:
    """Day k of the week (0..6) has k + 1 streams of t1 (u1) and, on even days, one skip of t2 (u2)."""
    events = []
    for k, day in enumerate(DAYS):
        for n in range(k + 1):
            events.append(
                {"event_id": f"t1-{day}-{n}", "event_time": f"{day}T{10 + n:02d}:00:00Z", "user_pseudonym": "u1",
                 "track_id": "t1", "artist_id": "a1", "ms_played": 35000, "skipped": False, "offline": False}
            )
        if k % 2 == 0:
            events.append(
                {"event_id": f"t2-{day}", "event_time": f"{day}T09:00:00Z", "user_pseudonym": "u2",
                 "track_id": "t2", "artist_id": "a2", "ms_played": 5000, "skipped": True, "offline": False}
            )
    return events


@pytest.fixture()
def deps(catalog):
    warehouse = new_warehouse(catalog)
    insert_events(warehouse, catalog, "track_played_v1", plays_per_day())
    yield RunDeps(catalog, warehouse, ManualClock(datetime(2024, 5, 10, tzinfo=UTC)))
    warehouse.close()


def test_downstream_endpoints_are_in_dependency_order(catalog) -> None:
    names = [e.name for e in downstream_endpoints(catalog, catalog.endpoint("daily_track_plays"))]
    assert names == ["artist_daily_summary", "weekly_top_tracks"]
    assert downstream_endpoints(catalog, catalog.endpoint("weekly_top_tracks")) == []


def test_plan_runs_date_by_date_with_downstreams_after_their_upstream(catalog) -> None:
    plan = backfill_plan(catalog, "daily_track_plays", date(2024, 4, 30), LAST, with_downstream=True)
    assert plan == [
        BackfillStep("daily_track_plays", date(2024, 4, 30)),
        BackfillStep("artist_daily_summary", date(2024, 4, 30)),
        BackfillStep("weekly_top_tracks", date(2024, 4, 30)),
        BackfillStep("daily_track_plays", LAST),
        BackfillStep("artist_daily_summary", LAST),
        BackfillStep("weekly_top_tracks", LAST),
    ]
    assert backfill_plan(catalog, "daily_track_plays", LAST, LAST) == [BackfillStep("daily_track_plays", LAST)]


def test_a_reversed_range_is_refused(catalog) -> None:
    with pytest.raises(PlatformError, match="--from 2024-05-01 is after --to 2024-04-30"):
        backfill_plan(catalog, "daily_track_plays", LAST, date(2024, 4, 30))


def test_a_range_longer_than_ten_years_is_refused(catalog) -> None:
    with pytest.raises(PlatformError, match="split the range"):
        backfill_plan(catalog, "daily_track_plays", date(2000, 1, 1), LAST)


def test_backfill_of_seven_days_runs_in_order_with_downstreams(deps) -> None:
    seen: list[tuple[int, int, str, date]] = []
    result = backfill(
        "daily_track_plays", FIRST, LAST, deps, with_downstream=True,
        progress=lambda done, total, run: seen.append((done, total, run.endpoint, run.run_date)),
    )
    assert result.ok and result.counts() == {"succeeded": 21, "failed": 0, "waiting": 0}
    expected_order = [(name, day) for day in DAYS for name in ("daily_track_plays", "artist_daily_summary", "weekly_top_tracks")]
    assert [(r.endpoint, r.run_date) for r in result.runs] == expected_order
    assert seen == [(i + 1, 21, name, day) for i, (name, day) in enumerate(expected_order)]

    # the runs were recorded in that order too
    recorded = deps.warehouse.query("SELECT endpoint, run_date FROM platform.runs WHERE status = 'succeeded' ORDER BY recorded_at")
    assert [(r["endpoint"], r["run_date"]) for r in recorded] == expected_order

    # t1: 1 + 2 + ... + 7 = 28 streams over the week; t2 was skipped on 4 days (streams 0)
    chart = table_rows(deps.warehouse, "endpoints.weekly_top_tracks", day=LAST)
    assert [(r["chart_position"], r["track_id"], r["streams_7d"], r["plays_7d"], r["days_played"]) for r in chart] == [
        (1, "t1", 28, 28, 7),
        (2, "t2", 0, 4, 4),
    ]
    # the chart of the first day only had that day (earlier days never ran, so are not required)
    first_chart = table_rows(deps.warehouse, "endpoints.weekly_top_tracks", day=FIRST)
    assert [(r["track_id"], r["streams_7d"]) for r in first_chart] == [("t1", 1), ("t2", 0)]
    daily = table_rows(deps.warehouse, "endpoints.daily_track_plays")
    assert sorted((r["date"], r["plays"]) for r in daily if r["track_id"] == "t1") == [(d.isoformat(), k + 1) for k, d in enumerate(DAYS)]


def test_backfill_keeps_going_when_a_step_waits(deps) -> None:
    # at May 3, 12:00 only days up to Apr 29 are past track_played's 3 days of lateness
    deps.clock.set(datetime(2024, 5, 3, 12, tzinfo=UTC))
    result = backfill("daily_track_plays", FIRST, LAST, deps, with_downstream=True)
    by_day = {}
    for run in result.runs:
        by_day.setdefault(run.run_date, []).append(run.status)
    assert by_day[date(2024, 4, 29)] == ["succeeded"] * 3
    assert by_day[date(2024, 4, 30)] == ["waiting"] * 3
    assert by_day[LAST] == ["waiting"] * 3
    assert not result.ok and result.counts() == {"succeeded": 15, "failed": 0, "waiting": 6}
    weekly_wait = next(r for r in result.runs if r.endpoint == "weekly_top_tracks" and r.run_date == LAST)
    assert weekly_wait.reasons == (
        "endpoints.daily_track_plays partition 2024-04-30 is waiting",
        "endpoints.daily_track_plays partition 2024-05-01 is waiting",
    )


def test_backfill_json_summarises_every_run(deps) -> None:
    result = backfill("daily_track_plays", LAST, LAST, deps)
    data = result.to_json()
    assert data["ok"] is True and data["counts"]["succeeded"] == 1
    assert data["runs"][0]["endpoint"] == "daily_track_plays" and data["runs"][0]["run_date"] == "2024-05-01"
