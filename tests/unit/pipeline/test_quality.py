"""Each check type fails on bad data and passes on good data (DuckDB, the example endpoints).

Rows are written straight into the endpoint tables (no run), so each test shows exactly the
data a check sees. `results_of` runs every check of the endpoint and keeps the named one.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dataplatform.definitions.models import SqlAssertionCheck
from dataplatform.pipeline.quality import REDACTED_BYTES, CheckResult, blocking_failures, record_check_results, run_checks
from tests.fixtures.endpoints.seed import RUN_DATE, new_warehouse

UTC = timezone.utc
RUN_TIME = datetime(2024, 5, 2, 3, 30, tzinfo=UTC)


@pytest.fixture()
def warehouse(catalog):
    w = new_warehouse(catalog)
    yield w
    w.close()


def track(track_id: str, *, day: date = RUN_DATE, artist: str = "a1", plays: int | None = 2, streams: int = 1,
          listeners: int | None = 1, skips: int = 0) -> dict:
    return {"date": day, "track_id": track_id, "artist_id": artist, "plays": plays, "streams": streams,
            "listeners": listeners, "skips": skips, "skip_rate": 0.0, "ms_played": 60000, "offline_plays": 0}


def results_of(catalog, warehouse, endpoint: str, check: str | None = None) -> dict[str, CheckResult] | CheckResult:
    results = {r.name: r for r in run_checks(catalog.endpoint(endpoint), RUN_DATE, RUN_TIME, catalog, warehouse)}
    return results[check] if check else results


# --------------------------------------------------------------------------- not_null


def test_not_null_passes_on_complete_rows(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1"), track("t2")])
    result = results_of(catalog, warehouse, "daily_track_plays", "not_null_date_track_id_artist_id_plays_listeners")
    assert (result.status, result.failing_rows, result.sample) == ("passed", 0, ())


def test_not_null_fails_on_a_null_and_samples_the_rows(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1"), track("t2", listeners=None)])
    result = results_of(catalog, warehouse, "daily_track_plays", "not_null_date_track_id_artist_id_plays_listeners")
    assert (result.status, result.failing_rows, result.type) == ("failed", 1, "not_null")
    assert [dict(r) for r in result.sample] == [{"date": RUN_DATE, "track_id": "t2", "artist_id": "a1", "plays": 2, "listeners": None}]
    assert result.blocking


def test_not_null_only_looks_at_the_run_partition(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1"), track("t2", day=RUN_DATE - timedelta(days=1), listeners=None)])
    assert results_of(catalog, warehouse, "daily_track_plays", "not_null_date_track_id_artist_id_plays_listeners").status == "passed"


def test_the_sample_is_limited_but_the_count_is_not(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track(f"t{i}", plays=None) for i in range(8)])
    result = results_of(catalog, warehouse, "daily_track_plays", "not_null_date_track_id_artist_id_plays_listeners")
    assert result.failing_rows == 8 and len(result.sample) == 5


# --------------------------------------------------------------------------- unique


def test_unique_passes_on_distinct_keys(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1"), track("t2"), track("t1", day=RUN_DATE - timedelta(days=1))])
    assert results_of(catalog, warehouse, "daily_track_plays", "unique_date_track_id").status == "passed"


def test_unique_fails_on_a_repeated_key(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1"), track("t1", artist="a2"), track("t2")])
    result = results_of(catalog, warehouse, "daily_track_plays", "unique_date_track_id")
    assert (result.status, result.failing_rows) == ("failed", 2)
    assert [dict(r) for r in result.sample] == [{"date": RUN_DATE, "track_id": "t1", "duplicates": 2}] * 2


# --------------------------------------------------------------------------- accepted_values


def ad_row(placement: str, **overrides) -> dict:
    row = {"date": RUN_DATE, "advertiser_id": "adv1", "campaign_id": "c1", "placement": placement, "currency": "USD",
           "impressions": 2, "reach": 1, "clicks": 0, "click_through_rate": 0.0, "revenue_micros": 100, "ecpm": 0.05}
    return {**row, **overrides}


def test_accepted_values_passes_on_listed_values(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.ad_revenue_daily", [ad_row("audio"), ad_row("video")])
    assert results_of(catalog, warehouse, "ad_revenue_daily", "known_placements").status == "passed"


def test_accepted_values_fails_on_an_unlisted_value(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.ad_revenue_daily", [ad_row("audio"), ad_row("banner")])
    result = results_of(catalog, warehouse, "ad_revenue_daily", "known_placements")
    assert (result.status, result.failing_rows, [dict(r) for r in result.sample]) == ("failed", 1, [{"placement": "banner"}])


def test_accepted_values_leaves_null_to_not_null(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.ad_revenue_daily", [ad_row("audio"), ad_row(None)])
    results = results_of(catalog, warehouse, "ad_revenue_daily")
    assert results["known_placements"].status == "passed"
    assert results["not_null_date_advertiser_id_campaign_id_placement_currency_impressions_revenue_micros"].status == "failed"


# --------------------------------------------------------------------------- row_count


def dau(os_name: str) -> dict:
    return {"date": RUN_DATE, "os": os_name, "sessions": 1, "active_users": 1, "listening_users": 0, "cold_starts": 0}


def test_row_count_passes_inside_the_range(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_active_users", [dau("ios"), dau("android")])
    assert results_of(catalog, warehouse, "daily_active_users", "row_count").status == "passed"


def test_row_count_fails_below_min(catalog, warehouse) -> None:
    result = results_of(catalog, warehouse, "daily_active_users", "row_count")
    assert (result.status, result.failing_rows) == ("failed", 1)
    assert [dict(r) for r in result.sample] == [{"row_count": 0, "min_rows": 1, "max_rows": 20}]


def test_row_count_fails_above_max(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_active_users", [dau(f"os{i}") for i in range(21)])
    result = results_of(catalog, warehouse, "daily_active_users", "row_count")
    assert [dict(r) for r in result.sample] == [{"row_count": 21, "min_rows": 1, "max_rows": 20}]


# --------------------------------------------------------------------------- relationship


def artist(artist_id: str) -> dict:
    return {"date": RUN_DATE, "artist_id": artist_id, "tracks_played": 1, "plays": 2, "streams": 1, "skips": 0,
            "skip_rate": 0.0, "ms_played": 1, "top_track_listeners": 1}


def test_relationship_passes_when_every_value_exists_upstream(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1", artist="a1")])
    warehouse.insert_rows("endpoints.artist_daily_summary", [artist("a1")])
    assert results_of(catalog, warehouse, "artist_daily_summary", "artists_come_from_track_plays").status == "passed"


def test_relationship_fails_on_a_value_missing_upstream(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1", artist="a1"), track("t9", artist="a9", day=RUN_DATE - timedelta(days=1))])
    warehouse.insert_rows("endpoints.artist_daily_summary", [artist("a1"), artist("a9")])
    result = results_of(catalog, warehouse, "artist_daily_summary", "artists_come_from_track_plays")
    # a9 exists upstream only on the day before: artist_daily_summary reads the same day only
    assert (result.status, result.failing_rows, [dict(r) for r in result.sample]) == ("failed", 1, [{"artist_id": "a9"}])


def test_relationship_reads_the_upstream_window_the_endpoint_reads(catalog, warehouse) -> None:
    chart = {"date": RUN_DATE, "chart_position": 1, "track_id": "t5", "artist_id": "a1", "streams_7d": 3, "plays_7d": 3, "days_played": 1}
    warehouse.insert_rows("endpoints.weekly_top_tracks", [chart])
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t5", day=RUN_DATE - timedelta(days=7))])
    assert results_of(catalog, warehouse, "weekly_top_tracks", "charted_tracks_were_played").status == "failed"
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t5", day=RUN_DATE - timedelta(days=6))])
    assert results_of(catalog, warehouse, "weekly_top_tracks", "charted_tracks_were_played").status == "passed"


# --------------------------------------------------------------------------- custom sql


def test_custom_sql_passes_when_it_returns_no_rows(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1", plays=3, streams=2, listeners=2)])
    assert results_of(catalog, warehouse, "daily_track_plays", "streams_within_plays").status == "passed"


def test_custom_sql_fails_with_the_rows_it_returns(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1", plays=3, streams=4), track("t2")])
    result = results_of(catalog, warehouse, "daily_track_plays", "streams_within_plays")
    assert (result.status, result.failing_rows) == ("failed", 1)
    assert [dict(r) for r in result.sample] == [{"track_id": "t1", "plays": 3, "streams": 4, "skips": 0}]


def test_a_check_that_cannot_run_is_an_error_and_blocks(catalog, warehouse) -> None:
    endpoint = catalog.endpoint("daily_track_plays")
    broken = endpoint.model_copy(
        update={"checks": (SqlAssertionCheck(type="sql", name="reads_a_missing_table", sql="SELECT * FROM endpoints.no_such_table"),)}
    )
    [result] = run_checks(broken, RUN_DATE, RUN_TIME, catalog, warehouse)
    assert (result.status, result.failing_rows) == ("error", None)
    assert "no_such_table" in result.error
    assert result.blocking and blocking_failures([result]) == [result]
    assert '"error"' in result.sample_json()


def test_bytes_are_never_sampled(catalog, warehouse) -> None:
    endpoint = catalog.endpoint("daily_track_plays")
    probe = endpoint.model_copy(
        update={"checks": (SqlAssertionCheck(type="sql", name="returns_bytes", sql="SELECT CAST('secret' AS BYTES) AS cipher, 1 AS n"),)}
    )
    [result] = run_checks(probe, RUN_DATE, RUN_TIME, catalog, warehouse)
    assert [dict(r) for r in result.sample] == [{"cipher": REDACTED_BYTES, "n": 1}]
    assert "secret" not in result.sample_json()


def test_a_warn_check_does_not_block(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_active_users", [dau("beos")])
    result = results_of(catalog, warehouse, "daily_active_users", "known_operating_systems")
    assert (result.status, result.severity, result.blocking) == ("failed", "warn", False)


def test_results_are_recorded_in_check_results(catalog, warehouse) -> None:
    warehouse.insert_rows("endpoints.daily_track_plays", [track("t1"), track("t1", artist="a2")])
    results = list(results_of(catalog, warehouse, "daily_track_plays").values())
    checked_at = datetime(2024, 5, 2, 4, tzinfo=UTC)
    assert record_check_results(warehouse, results, run_id="run-1", endpoint="daily_track_plays", partition=RUN_DATE, checked_at=checked_at) == 4
    rows = warehouse.query("SELECT * FROM platform.check_results ORDER BY `check`")
    assert [(r["check"], r["status"], r["failing_rows"]) for r in rows] == [
        ("not_null_date_track_id_artist_id_plays_listeners", "passed", 0),
        ("row_count", "passed", 0),
        ("streams_within_plays", "passed", 0),
        ("unique_date_track_id", "failed", 2),
    ]
    unique = rows[-1]
    assert (unique["run_id"], unique["partition"], unique["type"], unique["severity"], unique["checked_at"]) == (
        "run-1", RUN_DATE, "unique", "error", checked_at
    )
    assert unique["sample"] == '[{"date": "2024-05-01", "duplicates": 2, "track_id": "t1"}, {"date": "2024-05-01", "duplicates": 2, "track_id": "t1"}]'
    assert all(r["duration_ms"] >= 0 for r in rows) and rows[0]["sample"] is None


def test_an_unavailable_warehouse_is_not_a_check_result(catalog) -> None:
    from dataplatform.errors import TransientError

    class Unavailable:
        def query(self, sql, params=None):
            raise TransientError("BigQuery is unavailable")

    with pytest.raises(TransientError):
        run_checks(catalog.endpoint("daily_track_plays"), RUN_DATE, RUN_TIME, catalog, Unavailable())
