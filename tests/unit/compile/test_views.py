"""The `<table>_dedup` views: golden BigQuery SQL, its shape, and what it returns on DuckDB."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from dataplatform.compile.bigquery_schema import BqField, TableSpec, event_table
from dataplatform.compile.duckdb_ddl import create_schema_sql, create_table_sql
from dataplatform.compile.platform_tables import runs_table
from dataplatform.compile.transpile import SESSION_SETUP, to_duckdb
from dataplatform.compile.views import dedup_view, dedup_view_sql
from tests.golden import assert_golden

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)

MINI = TableSpec(
    "events",
    "mini_v1",
    (
        BqField("event_id", "STRING", "REQUIRED"),
        BqField("event_time", "TIMESTAMP", "REQUIRED"),
        BqField("value", "INT64"),
        BqField("message_id", "STRING"),
        BqField("publish_time", "TIMESTAMP"),
    ),
    "event_time",
    "DAY",
    30,
    ("event_id",),
    True,
    "",
    {},
)


def test_dedup_views_of_the_example_catalog_are_golden(catalog) -> None:
    text = "\n\n".join(f"-- {dedup_view(s).ref}\n{dedup_view(s).sql};" for s in catalog.schemas)
    assert_golden("warehouse/dedup_views.sql", text + "\n")


def test_view_names_and_descriptions(catalog) -> None:
    schema = catalog.schema("track_played_v1")
    view = dedup_view(schema)
    assert (view.dataset, view.view, view.ref) == ("events", "track_played_v1_dedup", "events.track_played_v1_dedup")
    assert "event_time" in view.description and "partition filter" in view.description


def test_view_sql_is_one_row_per_event_by_first_publish(catalog) -> None:
    tree = sqlglot.parse_one(dedup_view(catalog.schema("track_played_v1")).sql, read="bigquery")
    assert isinstance(tree, exp.Select)
    assert tree.find(exp.Table).sql("bigquery") == "events.track_played_v1"
    assert [e.sql("bigquery") for e in tree.expressions] == ["*"]
    window = tree.args["qualify"].find(exp.Window)
    assert isinstance(window.this, exp.RowNumber)
    assert [c.name for c in window.args["partition_by"]] == ["event_id", "event_time"]
    assert [o.this.name for o in window.args["order"].expressions] == ["publish_time", "message_id"]
    assert tree.args["qualify"].this.expression.name == "1"
    assert tree.args["where"].this == exp.true()  # BigQuery wants a WHERE next to QUALIFY
    assert "_PARTITION" not in tree.sql("bigquery")  # no filter of its own: readers bring it


def test_only_tables_with_event_and_publish_columns_get_a_view() -> None:
    with pytest.raises(ValueError, match="no column.*event_time.*only event tables"):
        dedup_view_sql(runs_table())


@pytest.fixture()
def con():
    connection = duckdb.connect()
    for statement in SESSION_SETUP:
        connection.execute(statement)
    connection.execute(create_schema_sql("events"))
    connection.execute(create_table_sql(MINI))
    yield connection
    connection.close()


def _insert(con, rows: list[tuple]) -> None:
    con.executemany("INSERT INTO events.mini_v1 VALUES (?, ?, ?, ?, ?)", rows)


def test_transpiled_view_keeps_the_first_published_duplicate(con) -> None:
    _insert(
        con,
        [
            ("a", T0, 2, "m2", T0 + timedelta(seconds=2)),
            ("a", T0, 1, "m1", T0 + timedelta(seconds=1)),
            ("a", T0, 3, "m3", T0 + timedelta(seconds=3)),
            ("b", T0, 10, "m9", T0),
            ("b", T0, 11, "m8", T0),  # same publish time: message_id decides
            ("c", T0, 20, None, None),
            ("c", T0, 21, "m7", T0),  # no publish metadata sorts first, as in BigQuery
        ],
    )
    rows = con.execute(to_duckdb(dedup_view_sql(MINI)) + " ORDER BY event_id").fetchall()
    assert [(r[0], r[2]) for r in rows] == [("a", 1), ("b", 11), ("c", 20)]


def test_a_partition_filter_on_the_view_gives_the_same_rows_as_deduping_by_event_id(con) -> None:
    rows = []
    for i in range(40):
        event_time = T0 + timedelta(hours=i * 3)
        for copy in range(1 + i % 3):
            rows.append((f"e{i}", event_time, copy, f"m{i}-{copy}", event_time + timedelta(minutes=copy)))
    _insert(con, rows)
    filtered = to_duckdb(f"SELECT event_id, value FROM ({dedup_view_sql(MINI)}) WHERE DATE(event_time) = '2024-05-02' ORDER BY event_id")
    by_id_only = to_duckdb(
        "SELECT event_id, value FROM events.mini_v1 WHERE DATE(event_time) = '2024-05-02' "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY publish_time, message_id) = 1 ORDER BY event_id"
    )
    assert con.execute(filtered).fetchall() == con.execute(by_id_only).fetchall()
    assert len(con.execute(filtered).fetchall()) == 8
    assert {value for _, value in con.execute(filtered).fetchall()} == {0}


def test_every_example_view_runs_on_duckdb(catalog) -> None:
    connection = duckdb.connect()
    connection.execute(create_schema_sql("events"))
    for schema in catalog.schemas:
        connection.execute(create_table_sql(event_table(schema)))
        connection.execute(to_duckdb(dedup_view(schema).sql))
