"""Endpoint output schemas inferred from the SQL: golden for the example catalog, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplatform.compile.bigquery_schema import BqField
from dataplatform.compile.endpoint_schema import (
    EndpointSchemaError,
    bigquery_type,
    catalog_sqlglot_schema,
    dependency_order,
    endpoint_fields,
    endpoint_table,
)
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.models import Endpoint
from dataplatform.errors import PlatformError
from tests.golden import assert_golden


def _endpoint(sql: str, name: str = "probe", **extra) -> Endpoint:
    return Endpoint(
        name=name,
        owner="team-test",
        domain="test",
        description="A probe endpoint.",
        schedule="0 4 * * *",
        sql=sql,
        retention_days=30,
        **extra,
    )


def _with(catalog: Catalog, *endpoints: Endpoint) -> Catalog:
    return Catalog(Path("."), catalog.schemas, (*catalog.endpoints, *endpoints), {})


def _describe(fields: tuple[BqField, ...]) -> list[dict]:
    return [f.to_api() for f in fields]


# --------------------------------------------------------------------------- golden


def test_every_example_endpoint_table_golden(catalog) -> None:
    blocks = []
    for endpoint in sorted(catalog.endpoints, key=lambda e: e.name):
        spec = endpoint_table(endpoint, catalog)
        lines = [
            f"{spec.ref}",
            f"  partition: {spec.partition_field} {spec.partition_type}, expires after {spec.expiration_days} days,"
            f" require filter: {spec.require_partition_filter}",
            f"  clustering: {', '.join(spec.clustering) or '-'}",
            f"  labels: {', '.join(f'{k}={v}' for k, v in sorted(spec.labels.items()))}",
            *(f"  {f.name} {bigquery_type(f)} {f.mode}" for f in spec.fields),
        ]
        blocks.append("\n".join(lines))
    assert_golden("sql/endpoint_schema/endpoint_tables.txt", "\n\n".join(blocks) + "\n")


def test_catalog_schema_has_events_dedup_views_and_endpoints(catalog) -> None:
    schema = catalog_sqlglot_schema(catalog)
    for event in catalog.schemas:
        assert schema["events"][event.table] == schema["events"][event.dedup_view]
    assert sorted(schema["endpoints"]) == sorted(e.name for e in catalog.endpoints)
    assert schema["endpoints"]["weekly_top_tracks"]["streams_7d"] == "INT64"


def test_endpoints_are_ordered_after_what_they_read(catalog) -> None:
    order = [e.name for e in dependency_order(catalog)]
    assert order.index("daily_track_plays") < order.index("weekly_top_tracks")
    assert order.index("daily_track_plays") < order.index("artist_daily_summary")
    assert sorted(order) == sorted(e.name for e in catalog.endpoints)


def test_endpoint_fields_match_the_catalog_schema(catalog) -> None:
    schema = catalog_sqlglot_schema(catalog)
    for endpoint in catalog.endpoints:
        fields = endpoint_fields(endpoint, catalog)
        assert {f.name: bigquery_type(f) for f in fields} == schema["endpoints"][endpoint.name]


def test_endpoint_table_layout(catalog) -> None:
    endpoint = catalog.endpoint("daily_track_plays")
    spec = endpoint_table(endpoint, catalog)
    assert spec.ref == "endpoints.daily_track_plays"
    assert (spec.partition_field, spec.partition_type) == ("date", "DAY")
    assert spec.expiration_days == endpoint.retention_days
    assert spec.clustering == ("artist_id", "track_id")
    assert spec.require_partition_filter is False
    assert dict(spec.labels) == {"owner": "team-playback", "domain": "playback"}
    assert all(f.mode == "NULLABLE" for f in spec.fields)


# --------------------------------------------------------------------------- inference


def test_struct_array_and_scalar_types(catalog) -> None:
    sql = """
    SELECT
      @run_date AS date,
      @run_time AS run_time,
      STRUCT(track_id AS id, ms_played AS ms) AS track,
      ARRAY_AGG(track_id) AS tracks,
      context.device AS device,
      SAFE_DIVIDE(SUM(ms_played), 1000) AS seconds,
      CAST(SUM(ms_played) AS NUMERIC) AS exact,
      TIMESTAMP_TRUNC(MIN(event_time), HOUR) AS first_hour,
      ANY_VALUE(offline) AS offline
    FROM events.track_played_v1_dedup
    GROUP BY track_id, ms_played, context.device
    """
    fields = endpoint_fields(_endpoint(sql), catalog)
    assert {f.name: bigquery_type(f) for f in fields} == {
        "date": "DATE",
        "run_time": "TIMESTAMP",
        "track": "STRUCT<`id` STRING, `ms` INT64>",
        "tracks": "ARRAY<STRING>",
        "device": bigquery_type(next(f for f in _context_fields(catalog) if f.name == "device")),
        "seconds": "FLOAT64",
        "exact": "NUMERIC",
        "first_hour": "TIMESTAMP",
        "offline": "BOOL",
    }


def _context_fields(catalog) -> tuple[BqField, ...]:
    from dataplatform.compile.bigquery_schema import event_table

    spec = event_table(catalog.schema("track_played_v1"))
    return next(f for f in spec.fields if f.name == "context").fields


def test_union_takes_names_from_the_first_branch(catalog) -> None:
    sql = (
        "SELECT @run_date AS date, track_id AS id FROM events.track_played_v1 WHERE DATE(event_time) = @run_date\n"
        "UNION ALL\nSELECT @run_date, search_id FROM events.search_performed_v1 WHERE DATE(event_time) = @run_date"
    )
    assert [f.name for f in endpoint_fields(_endpoint(sql), catalog)] == ["date", "id"]


def test_star_is_expanded_from_the_catalog(catalog) -> None:
    sql = "SELECT * FROM endpoints.daily_track_plays WHERE date = @run_date"
    names = [f.name for f in endpoint_fields(_endpoint(sql), catalog)]
    assert names == [f.name for f in endpoint_fields(catalog.endpoint("daily_track_plays"), catalog)]


def test_a_chain_of_new_endpoints_types_through(catalog) -> None:
    first = _endpoint("SELECT @run_date AS date, COUNT(*) AS n FROM events.track_played_v1_dedup", name="first")
    second = _endpoint("SELECT date, n * 2.5 AS twice FROM endpoints.first", name="second")
    chained = _with(catalog, second, first)
    assert [(f.name, f.type) for f in endpoint_fields(second, chained)] == [("date", "DATE"), ("twice", "FLOAT64")]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("sql", "message", "line"),
    [
        ("SELECT\n  @run_date AS date,\n  NULL AS nothing\nFROM events.track_played_v1", "column 'nothing': it is NULL in every row", 3),
        ("SELECT @run_date AS date,\n  CURRENT_DATETIME() AS local_time", "column 'local_time': DATETIME has no time zone", 2),
        ("SELECT @run_date AS date, PARSE_JSON('{}') AS doc", "column 'doc': JSON columns are not supported", 1),
        ("SELECT\n  @run_date AS date,\n  COUNT(*)\nFROM events.track_played_v1", "output column 2 has no name", 3),
        ("SELECT @run_date AS date, 1 AS n, 2 AS n", "output column 'n' appears twice", 1),
        ("SELECT @run_date AS date, STRUCT(1, 2) AS pair", "field 1 of STRUCT column 'pair' has no name", 1),
        ("SELECT @run_date AS date, [[1]] AS nested", "array of arrays", 1),
        ("SELECT\n  @run_hour AS date", "unknown query parameter @run_hour", 2),
        ("SELECT @run_date AS date,\n  no_such_column\nFROM events.track_played_v1", "no_such_column", 2),
        ("SELECT @run_date AS date FROM events.nope", "nope", 1),
        ("SELECT @run_date AS date FROM (", "SQL does not parse", 1),
    ],
)
def test_uninferable_columns_are_named(catalog, sql: str, message: str, line: int) -> None:
    with pytest.raises(EndpointSchemaError) as info:
        endpoint_fields(_endpoint(sql), catalog)
    assert isinstance(info.value, PlatformError)
    assert message in str(info.value)
    assert "endpoint 'probe'" in str(info.value)
    assert info.value.line == line


@pytest.mark.parametrize(
    ("sql", "extra", "message"),
    [
        ("SELECT 'x' AS date", {}, "partition column 'date' must be a DATE (it is STRING)"),
        ("SELECT @run_date AS day", {}, "partition column 'date' must be a DATE (the query does not return it)"),
        ("SELECT @run_date AS date, 1 AS a", {"clustering": ("b",)}, "clustering column 'b' is not an output"),
        ("SELECT @run_date AS date, 1.5 AS a", {"clustering": ("a",)}, "clustering column 'a' is FLOAT64"),
        ("SELECT @run_date AS date, [1] AS a", {"clustering": ("a",)}, "clustering column 'a' is ARRAY<INT64>"),
        (
            "SELECT @run_date AS date, 1 AS a, 2 AS b, 3 AS c, 4 AS d, 5 AS e",
            {"clustering": ("a", "b", "c", "d", "e")},
            "at most 4",
        ),
    ],
)
def test_table_layout_errors(catalog, sql: str, extra: dict, message: str) -> None:
    with pytest.raises(EndpointSchemaError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        endpoint_table(_endpoint(sql, **extra), catalog)


def test_a_cycle_is_reported(catalog) -> None:
    a = _endpoint("SELECT @run_date AS date FROM endpoints.b", name="a")
    b = _endpoint("SELECT @run_date AS date FROM endpoints.a", name="b")
    with pytest.raises(PlatformError, match="endpoints form a cycle: a -> b -> a"):
        dependency_order(_with(catalog, a, b))
