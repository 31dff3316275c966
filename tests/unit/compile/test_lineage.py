"""Table- and column-level lineage from endpoint SQL: golden over the examples, fixture SQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataplatform.compile.endpoint_schema import EndpointSchemaError
from dataplatform.compile.lineage import catalog_column_lineage, column_lineage, downstreams, upstreams
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.models import Endpoint
from dataplatform.errors import PlatformError
from tests.golden import assert_golden

SCHEMA = {
    "fixture": {
        "plays": {
            "event_id": "STRING",
            "track_id": "STRING",
            "ms_played": "INT64",
            "skipped": "BOOL",
            "event_time": "TIMESTAMP",
            "track_ids": "ARRAY<STRING>",
            "device": "STRUCT<os STRING, version STRING>",
            "results": "ARRAY<STRUCT<position INT64, item STRUCT<id STRING, kind STRING>>>",
        },
        "tracks": {"track_id": "STRING", "artist_id": "STRING", "title": "STRING"},
    },
    "events": {"plays_v1_dedup": {"event_id": "STRING", "ms_played": "INT64"}},
}
"""An explicit sqlglot schema, so the walk is tested independently of the example catalog."""

EMPTY = Catalog(Path("."), (), (), {})


def _lineage(sql: str) -> dict[str, list[str]]:
    endpoint = Endpoint(
        name="probe", owner="team-test", domain="test", description="Probe.", schedule="0 4 * * *",
        sql=sql, retention_days=30,
    )
    return column_lineage(endpoint, EMPTY, SCHEMA)


# --------------------------------------------------------------------------- golden


def test_every_example_endpoint_column_lineage_golden(catalog) -> None:
    assert_golden("sql/lineage/columns.json", json.dumps(catalog_column_lineage(catalog), indent=2) + "\n")


def test_table_lineage_golden(catalog) -> None:
    tables = {
        "upstreams": {e.name: upstreams(e) for e in sorted(catalog.endpoints, key=lambda e: e.name)},
        "downstreams": downstreams(catalog),
    }
    assert_golden("sql/lineage/tables.json", json.dumps(tables, indent=2) + "\n")


def test_column_sources_are_among_the_table_upstreams(catalog) -> None:
    for name, columns in catalog_column_lineage(catalog).items():
        tables = set(upstreams(catalog.endpoint(name)))
        for sources in columns.values():
            assert {".".join(s.split(".")[:2]) for s in sources} <= tables


def test_lineage_columns_are_the_output_columns(catalog) -> None:
    from dataplatform.compile.endpoint_schema import endpoint_fields

    for endpoint in catalog.endpoints:
        assert list(column_lineage(endpoint, catalog)) == [f.name for f in endpoint_fields(endpoint, catalog)]


# --------------------------------------------------------------------------- the walk


def test_direct_columns_and_expressions() -> None:
    assert _lineage(
        "SELECT @run_date AS date, track_id, COUNT(*) AS plays, SUM(IF(skipped, ms_played, 0)) AS skipped_ms\n"
        "FROM fixture.plays GROUP BY track_id"
    ) == {
        "date": [],
        "track_id": ["fixture.plays.track_id"],
        "plays": [],
        "skipped_ms": ["fixture.plays.ms_played", "fixture.plays.skipped"],
    }


def test_where_join_and_group_by_columns_are_not_sources() -> None:
    found = _lineage(
        "SELECT t.artist_id AS artist, COUNT(*) AS n\n"
        "FROM fixture.plays AS p JOIN fixture.tracks AS t ON t.track_id = p.track_id\n"
        "WHERE p.skipped GROUP BY t.artist_id"
    )
    assert found == {"artist": ["fixture.tracks.artist_id"], "n": []}


def test_struct_paths_are_kept() -> None:
    assert _lineage("SELECT device.os AS os, p.device AS device FROM fixture.plays AS p") == {
        "os": ["fixture.plays.device.os"],
        "device": ["fixture.plays.device"],
    }


def test_ctes_and_derived_tables_are_followed() -> None:
    sql = (
        "WITH base AS (SELECT track_id AS id, ms_played / 1000 AS seconds, device FROM fixture.plays)\n"
        "SELECT d.id, d.total, d.os FROM (\n"
        "  SELECT id, SUM(seconds) AS total, ANY_VALUE(base.device.os) AS os FROM base GROUP BY id\n"
        ") AS d"
    )
    assert _lineage(sql) == {
        "id": ["fixture.plays.track_id"],
        "total": ["fixture.plays.ms_played"],
        "os": ["fixture.plays.device.os"],
    }


def test_struct_path_through_a_cte_column() -> None:
    sql = "WITH base AS (SELECT device FROM fixture.plays) SELECT base.device.version AS version FROM base"
    assert _lineage(sql) == {"version": ["fixture.plays.device.version"]}


def test_unnest_elements_derive_from_their_array() -> None:
    sql = (
        "SELECT p.event_id, track, r.item.id AS item_id, r.position, pos\n"
        "FROM fixture.plays AS p, UNNEST(p.track_ids) AS track, UNNEST(p.results) AS r WITH OFFSET AS pos"
    )
    assert _lineage(sql) == {
        "event_id": ["fixture.plays.event_id"],
        "track": ["fixture.plays.track_ids"],
        "item_id": ["fixture.plays.results.item.id"],
        "position": ["fixture.plays.results.position"],
        "pos": [],
    }


def test_union_branches_are_merged() -> None:
    sql = "SELECT track_id AS id FROM fixture.plays UNION ALL SELECT artist_id FROM fixture.tracks"
    assert _lineage(sql) == {"id": ["fixture.plays.track_id", "fixture.tracks.artist_id"]}


def test_scalar_and_correlated_subqueries() -> None:
    sql = (
        "SELECT p.event_id,\n"
        "  (SELECT MAX(t.title) FROM fixture.tracks AS t WHERE t.track_id = p.track_id) AS title,\n"
        "  (SELECT COUNT(*) FROM fixture.tracks) AS catalog_size\n"
        "FROM fixture.plays AS p"
    )
    assert _lineage(sql) == {
        "event_id": ["fixture.plays.event_id"],
        "title": ["fixture.tracks.title"],
        "catalog_size": [],
    }


def test_window_partition_and_order_columns_are_sources() -> None:
    sql = "SELECT ROW_NUMBER() OVER (PARTITION BY track_id ORDER BY event_time) AS nth FROM fixture.plays"
    assert _lineage(sql) == {"nth": ["fixture.plays.event_time", "fixture.plays.track_id"]}


def test_star_expands_to_every_column() -> None:
    assert _lineage("SELECT * FROM fixture.tracks") == {
        "track_id": ["fixture.tracks.track_id"],
        "artist_id": ["fixture.tracks.artist_id"],
        "title": ["fixture.tracks.title"],
    }


def test_dedup_views_fold_onto_their_event_table() -> None:
    assert _lineage("SELECT ms_played FROM events.plays_v1_dedup") == {"ms_played": ["events.plays_v1.ms_played"]}


# --------------------------------------------------------------------------- table level and errors


def test_upstreams_fold_dedup_views_in_order() -> None:
    endpoint = Endpoint(
        name="probe", owner="team-test", domain="test", description="Probe.", schedule="0 4 * * *",
        sql="SELECT a FROM endpoints.b JOIN events.x_v1_dedup USING (a) JOIN events.x_v1 USING (a)",
        retention_days=30,
    )
    assert upstreams(endpoint) == ["endpoints.b", "events.x_v1"]


def test_unparsable_sql_is_a_platform_error_with_its_line() -> None:
    endpoint = Endpoint(
        name="probe", owner="team-test", domain="test", description="Probe.", schedule="0 4 * * *",
        sql="SELECT a,\nFROM (", retention_days=30,
    )
    with pytest.raises(PlatformError, match=r"workflows/probe.sql:2"):
        upstreams(endpoint)


def test_unknown_column_is_named() -> None:
    with pytest.raises(EndpointSchemaError, match="nope"):
        _lineage("SELECT nope FROM fixture.plays")
