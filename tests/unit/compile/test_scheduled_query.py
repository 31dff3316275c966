"""The scheduled-query compiler: upstream windows, the run-date convention, the readiness
query and the BigQuery script (golden per example endpoint)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest
import sqlglot

from dataplatform.compile.scheduled_query import (
    ENDPOINT_MARKER,
    WAITING_PREFIX,
    UpstreamWindow,
    endpoint_of_script,
    partition_of_run,
    readiness_sql,
    run_time_for_partition,
    scheduled_query_script,
    string_literal,
    upstream_window,
    upstream_windows,
    waiting_reasons,
    write_partition_sql,
)
from dataplatform.compile.transpile import to_duckdb
from dataplatform.errors import PlatformError
from tests.golden import assert_golden

UTC = timezone.utc


def with_sql(catalog, sql: str, base: str = "daily_track_plays"):
    """The catalog with `base`'s SQL replaced (so windows resolve against real tables)."""
    endpoint = catalog.endpoint(base).model_copy(update={"sql": sql})
    return endpoint, replace(catalog, endpoints=tuple(endpoint if e.name == base else e for e in catalog.endpoints))


# --------------------------------------------------------------------------- windows


def test_windows_of_the_example_endpoints(catalog) -> None:
    windows = {e.name: upstream_windows(e, catalog) for e in catalog.endpoints}
    assert windows["weekly_top_tracks"] == (UpstreamWindow("endpoints.daily_track_plays", "endpoint", -6, 0, True),)
    assert windows["artist_daily_summary"] == (UpstreamWindow("endpoints.daily_track_plays", "endpoint", 0, 0, True),)
    assert windows["daily_active_users"] == (
        UpstreamWindow("events.app_session_started_v1", "event", 0, 0, True),
        UpstreamWindow("events.track_played_v1", "event", 0, 0, True),
    )
    assert all(w.derived for ws in windows.values() for w in ws)


@pytest.mark.parametrize(
    ("where", "first", "last"),
    [
        ("date = @run_date", 0, 0),
        ("@run_date = date", 0, 0),
        ("date BETWEEN DATE_SUB(@run_date, INTERVAL 13 DAY) AND @run_date", -13, 0),
        ("date >= DATE_SUB(@run_date, INTERVAL 2 DAY) AND date < @run_date", -2, -1),
        ("date > DATE_SUB(@run_date, INTERVAL 2 DAY) AND date <= DATE_ADD(@run_date, INTERVAL 1 DAY)", -1, 1),
        ("(date >= DATE_SUB(@run_date, INTERVAL 3 DAY)) AND plays > 0", -3, 0),
        ("d.date = @run_date", 0, 0),
        ("date <= @run_date", None, 0),
        ("plays > 3", None, 0),
        ("date = CURRENT_DATE()", None, 0),
        ("date = DATE_SUB(@run_date, INTERVAL 1 MONTH)", None, 0),
    ],
)
def test_endpoint_windows_from_the_partition_filter(catalog, where: str, first, last) -> None:
    endpoint, patched = with_sql(catalog, f"SELECT @run_date AS date, d.track_id FROM endpoints.daily_track_plays AS d WHERE {where}", "weekly_top_tracks")
    [window] = upstream_windows(endpoint, patched)
    assert (window.first_offset, window.last_offset) == (first, last)
    assert window.derived == (first is not None or "<=" in where)


def test_a_filter_on_another_tables_column_is_not_the_window(catalog) -> None:
    sql = (
        "SELECT @run_date AS date, d.track_id FROM endpoints.daily_track_plays AS d "
        "JOIN endpoints.artist_daily_summary AS a ON a.artist_id = d.artist_id "
        "WHERE a.date = @run_date AND d.date BETWEEN DATE_SUB(@run_date, INTERVAL 1 DAY) AND @run_date"
    )
    endpoint, patched = with_sql(catalog, sql, "weekly_top_tracks")
    windows = {w.table_ref: (w.first_offset, w.last_offset) for w in upstream_windows(endpoint, patched)}
    assert windows == {"endpoints.daily_track_plays": (-1, 0), "endpoints.artist_daily_summary": (0, 0)}


def test_event_windows_use_the_day_of_event_time_and_fold_dedup_views(catalog) -> None:
    sql = (
        "WITH recent AS (SELECT * FROM events.track_played_v1_dedup WHERE DATE(event_time) BETWEEN DATE_SUB(@run_date, INTERVAL 2 DAY) AND @run_date) "
        "SELECT @run_date AS date, track_id FROM recent "
        "UNION ALL SELECT @run_date AS date, track_id FROM events.track_played_v1 WHERE DATE(event_time) = @run_date"
    )
    endpoint, patched = with_sql(catalog, sql)
    assert upstream_windows(endpoint, patched) == (UpstreamWindow("events.track_played_v1", "event", -2, 0, True),)
    assert upstream_window(endpoint, patched, "events.track_played_v1_dedup") == upstream_windows(endpoint, patched)[0]
    assert upstream_window(endpoint, patched, "events.search_performed_v1") is None


def test_a_filter_on_event_time_itself_is_not_understood(catalog) -> None:
    endpoint, patched = with_sql(
        catalog, "SELECT @run_date AS date, track_id FROM events.track_played_v1 WHERE event_time >= TIMESTAMP(@run_date)"
    )
    assert upstream_windows(endpoint, patched) == (UpstreamWindow("events.track_played_v1", "event", None, 0, False),)


# --------------------------------------------------------------------------- run dates


def test_a_run_writes_the_day_before_its_run_time() -> None:
    assert partition_of_run(datetime(2024, 5, 2, 3, 30, tzinfo=UTC)) == date(2024, 5, 1)
    assert partition_of_run(datetime(2024, 5, 2, 0, 0, tzinfo=UTC)) == date(2024, 5, 1)
    with pytest.raises(PlatformError, match="timezone-aware"):
        partition_of_run(datetime(2024, 5, 2, 3, 30))


def test_a_manual_run_uses_the_schedule_time_of_the_next_day(catalog) -> None:
    for endpoint in catalog.endpoints:
        run_time = run_time_for_partition(endpoint.schedule, date(2024, 5, 1))
        assert run_time.date() == date(2024, 5, 2) and partition_of_run(run_time) == date(2024, 5, 1)
    assert run_time_for_partition("30 3 * * *", date(2024, 5, 1)) == datetime(2024, 5, 2, 3, 30, tzinfo=UTC)
    # a weekly schedule (Mondays) does not fire on Thursday May 2: midnight of that day
    assert run_time_for_partition("0 6 * * 1", date(2024, 5, 1)) == datetime(2024, 5, 2, tzinfo=UTC)
    assert run_time_for_partition("0 0 * * *", date(2024, 5, 1)) == datetime(2024, 5, 2, tzinfo=UTC)


# --------------------------------------------------------------------------- readiness query


def test_readiness_sql_parses_as_bigquery_and_transpiles(catalog) -> None:
    for endpoint in catalog.endpoints:
        sql = readiness_sql(endpoint, catalog)
        assert sql is not None
        sqlglot.parse_one(sql, read="bigquery")
        assert "$now" in to_duckdb(sql) or "$run_date" in to_duckdb(sql)


def test_an_endpoint_without_upstreams_has_no_readiness_query(catalog) -> None:
    endpoint, patched = with_sql(catalog, "SELECT @run_date AS date")
    assert readiness_sql(endpoint, patched) is None
    assert "EXECUTE IMMEDIATE" in scheduled_query_script(endpoint, patched)
    assert "RAISE" not in scheduled_query_script(endpoint, patched)


# --------------------------------------------------------------------------- the script


@pytest.mark.parametrize("name", ["ad_revenue_daily", "artist_daily_summary", "daily_active_users", "daily_track_plays",
                                  "playlist_activity", "search_success_rate", "weekly_top_tracks"])
def test_script_golden(name: str, catalog) -> None:
    assert_golden(f"endpoints/scheduled_query/{name}.sql", scheduled_query_script(catalog.endpoint(name), catalog))


def test_the_golden_list_covers_every_example_endpoint(catalog) -> None:
    assert sorted(e.name for e in catalog.endpoints) == [
        "ad_revenue_daily", "artist_daily_summary", "daily_active_users", "daily_track_plays",
        "playlist_activity", "search_success_rate", "weekly_top_tracks",
    ]


def test_the_script_embeds_the_endpoint_sql_verbatim(catalog) -> None:
    for endpoint in catalog.endpoints:
        script = scheduled_query_script(endpoint, catalog)
        assert endpoint.sql.rstrip() in script
        assert script.startswith(f"{ENDPOINT_MARKER}{endpoint.name}\n")
        assert endpoint_of_script(script) == endpoint.name
        assert "DECLARE partition_date DATE DEFAULT DATE_SUB(DATE(@run_time), INTERVAL 1 DAY);" in script


def test_the_insert_names_every_column_and_refuses_foreign_rows(catalog) -> None:
    sql = write_partition_sql(catalog.endpoint("artist_daily_summary"), catalog)
    assert sql.startswith("INSERT INTO endpoints.artist_daily_summary (\n  date,\n  artist_id,")
    assert "IF(\n    result.date = @run_date,\n    TRUE,\n    ERROR(" in sql
    endpoint, patched = with_sql(catalog, "SELECT @run_date AS date, track_id FROM events.track_played_v1_dedup WHERE DATE(event_time) = @run_date;  \n")
    assert "WHERE DATE(event_time) = @run_date\n) AS result" in write_partition_sql(endpoint, patched)


def test_string_literal_is_raw_unless_it_cannot_be() -> None:
    assert string_literal("SELECT 'a'\nFROM t") == "r\"\"\"SELECT 'a'\nFROM t\"\"\""
    quoted = string_literal('SELECT """x"""')
    assert not quoted.startswith('r"""') and sqlglot.parse_one(f"SELECT {quoted}", read="bigquery").selects[0].this == 'SELECT """x"""'
    assert string_literal("SELECT 1 -- ends with \\") .startswith("'")


def test_waiting_messages_round_trip() -> None:
    message = f"Query error: {WAITING_PREFIX}endpoint e partition 2024-05-01 waits for: a is failed; b has not run at [12:3]"
    assert waiting_reasons(message) == ("a is failed", "b has not run at [12:3]")
    assert waiting_reasons("Resources exceeded") is None
    assert endpoint_of_script("SELECT 1") is None
