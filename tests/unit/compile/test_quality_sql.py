"""Quality checks compiled to BigQuery SQL: names, shapes, windows, golden per example endpoint.

That each check fails on bad data and passes on good data is tested on DuckDB in
tests/unit/pipeline/test_quality.py; here the SQL itself.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlglot

from dataplatform.compile.quality_sql import FAILING_COUNT_COLUMN, SAMPLE_ROWS, check_names, check_queries
from dataplatform.compile.transpile import unsupported_constructs
from dataplatform.definitions.models import NotNullCheck, RowCountCheck, SqlAssertionCheck, UniqueCheck
from dataplatform.errors import PlatformError
from tests.golden import assert_golden

ENDPOINTS = ["ad_revenue_daily", "artist_daily_summary", "daily_active_users", "daily_track_plays",
             "playlist_activity", "search_success_rate", "weekly_top_tracks"]


def test_the_golden_list_covers_every_example_endpoint(catalog) -> None:
    assert sorted(e.name for e in catalog.endpoints) == ENDPOINTS


@pytest.mark.parametrize("name", ENDPOINTS)
def test_check_sql_golden(name: str, catalog) -> None:
    queries = check_queries(catalog.endpoint(name), catalog)
    text = "\n\n".join(f"-- {q.name} ({q.type}, severity {q.severity})\n{q.sql};" for q in queries) + "\n"
    assert_golden(f"endpoints/quality_sql/{name}.sql", text)


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_check_query_is_bigquery_sql_that_runs_locally(name: str, catalog) -> None:
    for query in check_queries(catalog.endpoint(name), catalog):
        tree = sqlglot.parse_one(query.sql, read="bigquery")
        assert tree.args["limit"].expression.this == str(SAMPLE_ROWS)
        assert FAILING_COUNT_COLUMN in query.sql
        assert unsupported_constructs(query.sql) == []


def test_derived_names_are_unique_and_readable(catalog) -> None:
    assert check_names(catalog.endpoint("weekly_top_tracks")) == [
        "not_null_date_chart_position_track_id_streams_7d",
        "unique_date_chart_position",
        "one_position_per_track",
        "row_count",
        "charted_tracks_were_played",
    ]
    endpoint = catalog.endpoint("daily_track_plays").model_copy(
        update={
            "checks": (
                RowCountCheck(type="row_count", min=1),
                RowCountCheck(type="row_count", max=10),
                SqlAssertionCheck(type="sql", sql="SELECT 1 FROM endpoints.daily_track_plays WHERE FALSE"),
                UniqueCheck(type="unique", columns=("date", "track_id")),
            )
        }
    )
    assert check_names(endpoint) == ["row_count", "row_count_2", "sql_3", "unique_date_track_id"]


def test_relationship_reads_the_window_of_the_upstream(catalog) -> None:
    weekly = {q.name: q.sql for q in check_queries(catalog.endpoint("weekly_top_tracks"), catalog)}
    assert "date BETWEEN DATE_SUB(@run_date, INTERVAL 6 DAY) AND @run_date" in weekly["charted_tracks_were_played"]
    artist = {q.name: q.sql for q in check_queries(catalog.endpoint("artist_daily_summary"), catalog)}
    assert "WHERE\n      date = @run_date\n" in artist["artists_come_from_track_plays"]


def test_relationship_to_an_event_table_filters_its_partitions(catalog) -> None:
    from dataplatform.definitions.models import RelationshipCheck

    endpoint = catalog.endpoint("daily_track_plays").model_copy(
        update={"checks": (RelationshipCheck(type="relationship", column="track_id", to="events.track_played_v1_dedup", field="track_id"),)}
    )
    [query] = check_queries(endpoint, catalog)
    assert "FROM events.track_played_v1_dedup\n    WHERE\n      DATE(event_time) = @run_date" in query.sql


def test_relationship_to_an_unknown_table_is_an_error(catalog) -> None:
    from dataplatform.definitions.models import RelationshipCheck

    endpoint = catalog.endpoint("daily_track_plays").model_copy(
        update={"checks": (RelationshipCheck(type="relationship", column="track_id", to="endpoints.nope", field="x"),)}
    )
    with pytest.raises(PlatformError, match="unknown table 'endpoints.nope'"):
        check_queries(endpoint, catalog)


def test_bytes_columns_are_never_projected(catalog) -> None:
    """An endpoint returning ciphertext (BYTES) gets `<col> IS NULL` in samples, never the bytes."""
    sql = "SELECT @run_date AS date, search_id, query FROM events.search_performed_v1_dedup WHERE DATE(event_time) = @run_date"
    endpoint = catalog.endpoint("search_success_rate").model_copy(
        update={"sql": sql, "checks": (NotNullCheck(type="not_null", columns=("search_id", "query")), UniqueCheck(type="unique", columns=("query",)))}
    )
    patched = replace(catalog, endpoints=tuple(endpoint if e.name == endpoint.name else e for e in catalog.endpoints))
    not_null, unique = check_queries(endpoint, patched)
    assert "query IS NULL AS query_is_null" in not_null.sql and "query IS NULL AS query_is_null" in unique.sql
    selected = [s.sql("bigquery") for s in sqlglot.parse_one(not_null.sql, read="bigquery").find(sqlglot.exp.Subquery).this.selects]
    assert selected == ["search_id", "query IS NULL AS query_is_null"]


def test_a_custom_check_must_be_one_query(catalog) -> None:
    endpoint = catalog.endpoint("daily_track_plays").model_copy(
        update={"checks": (SqlAssertionCheck(type="sql", name="two", sql="DELETE FROM endpoints.daily_track_plays WHERE TRUE"),)}
    )
    with pytest.raises(PlatformError, match="must be one SELECT query"):
        check_queries(endpoint, catalog)
