"""The DuckDB warehouse on real DuckDB: tables from specs, round trips, queries, partitions."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest

from dataplatform import ports
from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
from dataplatform.adapters.warehouse_base import InvalidRows, ManagedWarehouse
from dataplatform.compile.bigquery_schema import BqField, TableSpec
from dataplatform.compile.views import dedup_view_sql
from dataplatform.errors import PlatformError

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
SECRET = "SECRET-VALUE-1234"

PLAYS = TableSpec(
    dataset="events",
    table="plays_v1",
    fields=(
        BqField("event_id", "STRING", "REQUIRED"),
        BqField("event_time", "TIMESTAMP", "REQUIRED"),
        BqField("user_pseudonym", "STRING", "REQUIRED"),
        BqField("ms_played", "INT64", "REQUIRED"),
        BqField("ratio", "FLOAT64"),
        BqField("skipped", "BOOL"),
        BqField("day", "DATE"),
        BqField("price", "NUMERIC"),
        BqField("email", "BYTES"),
        BqField("tags", "STRING", "REPEATED"),
        BqField(
            "context",
            "RECORD",
            "REQUIRED",
            fields=(
                BqField("device", "RECORD", "REQUIRED", fields=(BqField("id", "STRING", "REQUIRED"), BqField("os", "STRING"))),
                BqField("lat", "BYTES"),
            ),
        ),
        BqField(
            "tracks",
            "RECORD",
            "REPEATED",
            fields=(BqField("id", "STRING", "REQUIRED"), BqField("position", "INT64"), BqField("flags", "STRING", "REPEATED")),
        ),
        BqField("message_id", "STRING"),
        BqField("publish_time", "TIMESTAMP"),
        BqField("subscription_name", "STRING"),
        BqField("attributes", "STRING"),
    ),
    partition_field="event_time",
    partition_type="DAY",
    expiration_days=30,
    clustering=("user_pseudonym",),
    require_partition_filter=True,
    description="Test plays.",
    labels=MappingProxyType({"owner": "test", "domain": "test"}),
)

DAILY = TableSpec(
    dataset="endpoints",
    table="daily",
    fields=(BqField("date", "DATE"), BqField("user_pseudonym", "STRING"), BqField("plays", "INT64")),
    partition_field="date",
    partition_type="DAY",
    expiration_days=90,
    clustering=(),
    require_partition_filter=False,
    description="Plays per user and day.",
    labels=MappingProxyType({"owner": "test", "domain": "test"}),
)

DAILY_SQL = """
SELECT @run_date AS date, user_pseudonym, COUNT(*) AS plays
FROM events.plays_v1_dedup
WHERE DATE(event_time) = @run_date
GROUP BY user_pseudonym
"""


def play(i: int, **overrides) -> dict:
    row = {
        "event_id": f"e{i}",
        "event_time": T0 + timedelta(hours=i),
        "user_pseudonym": f"u{i % 3}",
        "ms_played": 1000 * i,
        "ratio": 0.5,
        "skipped": i % 2 == 0,
        "day": date(2024, 5, 1),
        "price": Decimal("1.250000000"),
        "email": bytes([1, 2, 3, i % 256]),
        "tags": ["a", "b"],
        "context": {"device": {"id": f"d{i}", "os": "ios"}, "lat": b"\x00\xff"},
        "tracks": [{"id": "t1", "position": 0, "flags": ["x"]}, {"id": "t2", "position": 1, "flags": []}],
        "message_id": f"m{i}",
        "publish_time": T0 + timedelta(hours=i, seconds=1),
        "subscription_name": "projects/p/subscriptions/plays_v1-bq",
        "attributes": "{}",
    }
    row.update(overrides)
    return row


@pytest.fixture()
def warehouse():
    with DuckDBWarehouse() as wh:
        for dataset in ("events", "endpoints"):
            wh.ensure_dataset(dataset)
        wh.ensure_table(PLAYS)
        wh.ensure_view("events", "plays_v1_dedup", dedup_view_sql(PLAYS))
        wh.ensure_table(DAILY)
        yield wh


# --------------------------------------------------------------------------- interface


def test_implements_the_warehouse_ports(warehouse: DuckDBWarehouse) -> None:
    assert isinstance(warehouse, ports.Warehouse)
    assert isinstance(warehouse, ManagedWarehouse)
    assert warehouse.name == "duckdb"
    assert warehouse.capabilities.transpiles
    assert not warehouse.capabilities.supports_partition_decorator
    assert not warehouse.capabilities.supports_require_partition_filter


# --------------------------------------------------------------------------- tables


def test_tables_are_created_from_specs_once(warehouse: DuckDBWarehouse) -> None:
    assert warehouse.ensure_table(PLAYS) == "unchanged"
    assert warehouse.ensure_dataset("events") == "unchanged"
    columns = warehouse.query(
        "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE schema_name = 'events' AND table_name = 'plays_v1' ORDER BY column_index"
    )
    assert [c["column_name"] for c in columns] == [f.name for f in PLAYS.fields]
    types = {c["column_name"]: c["data_type"] for c in columns}
    assert types["event_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["email"] == "BLOB"
    assert types["tags"] == "VARCHAR[]"
    assert types["tracks"].startswith("STRUCT(") and types["tracks"].endswith("[]")
    assert {c["column_name"] for c in columns if not c["is_nullable"]} == {
        "event_id", "event_time", "user_pseudonym", "ms_played", "context",
    }


def test_table_needs_its_dataset(warehouse: DuckDBWarehouse) -> None:
    spec = TableSpec("nowhere", "t", (BqField("a", "STRING"),), None, "DAY", None, (), False, "", {})
    with pytest.raises(PlatformError, match="dataset nowhere does not exist"):
        warehouse.ensure_table(spec)


def test_new_nullable_columns_are_added_to_an_existing_table(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(1)])
    context = PLAYS.fields[10]
    tracks = PLAYS.fields[11]
    grown = TableSpec(
        **{
            **PLAYS.__dict__,
            "fields": (
                *PLAYS.fields[:10],
                BqField("context", "RECORD", "REQUIRED", fields=(*context.fields, BqField("city", "STRING"))),
                BqField("tracks", "RECORD", "REPEATED", fields=(*tracks.fields, BqField("liked", "BOOL"))),
                BqField("country", "STRING"),
                *PLAYS.fields[12:],
            ),
        }
    )
    assert warehouse.ensure_table(grown) == "updated"
    assert warehouse.ensure_table(grown) == "unchanged"
    row = warehouse.query("SELECT country, context.city AS city, tracks[1].liked AS liked FROM events.plays_v1")[0]
    assert row == {"country": None, "city": None, "liked": None}
    new = play(2, country="SE", context={"device": {"id": "d", "os": None}, "lat": None, "city": "Malmö"})
    new["tracks"] = [{"id": "t", "position": 1, "flags": [], "liked": True}]
    warehouse.insert_rows(PLAYS.ref, [new])
    got = warehouse.query("SELECT * FROM events.plays_v1 WHERE event_id = 'e2'")[0]
    assert got["country"] == "SE" and got["context"]["city"] == "Malmö" and got["tracks"][0]["liked"] is True
    # the table's columns are now in another order than the spec's, and the spec's nested
    # REQUIRED fields (which DuckDB cannot declare) are still enforced
    with pytest.raises(InvalidRows, match=r"row 0: context.device.id: required"):
        warehouse.insert_rows(PLAYS.ref, [play(3, context={"device": {"os": "ios"}})])


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ((BqField("event_id", "INT64", "REQUIRED"),), "event_id is STRING in the table but INT64"),
        ((), "column event_id (STRING) is not in the definition"),
        ((BqField("event_id", "STRING", "REQUIRED"), BqField("brand_new", "STRING", "REQUIRED")), "new column brand_new is REQUIRED"),
        ((BqField("event_id", "STRING", "REPEATED"),), "event_id is REQUIRED in the table but REPEATED"),
    ],
)
def test_incompatible_schema_changes_are_refused(warehouse: DuckDBWarehouse, fields, problem: str) -> None:
    rest = tuple(f for f in PLAYS.fields if f.name != "event_id")
    changed = TableSpec(**{**PLAYS.__dict__, "fields": (*fields, *rest)})
    with pytest.raises(PlatformError, match="new major version") as info:
        warehouse.ensure_table(changed)
    assert problem in str(info.value)


def test_table_exists_for_tables_and_views(warehouse: DuckDBWarehouse) -> None:
    assert warehouse.table_exists("events.plays_v1")
    assert warehouse.table_exists("events.plays_v1_dedup")
    assert not warehouse.table_exists("events.missing")


@pytest.mark.parametrize("ref", ["plays_v1", "a.b.c", "events.plays-v1", "", "events.pl ays"])
def test_bad_table_references_are_refused(warehouse: DuckDBWarehouse, ref: str) -> None:
    with pytest.raises(PlatformError, match="must be `dataset.table`"):
        warehouse.insert_rows(ref, [play(1)])


def test_view_is_replaced_only_when_its_sql_changes(warehouse: DuckDBWarehouse) -> None:
    sql = "SELECT event_id FROM events.plays_v1"
    assert warehouse.ensure_view("events", "ids", sql, description="ids") == "created"
    assert warehouse.ensure_view("events", "ids", sql, description="ids") == "unchanged"
    assert warehouse.ensure_view("events", "ids", "SELECT event_id, user_pseudonym FROM events.plays_v1") == "updated"
    warehouse.insert_rows(PLAYS.ref, [play(1)])
    assert warehouse.query("SELECT * FROM events.ids") == [{"event_id": "e1", "user_pseudonym": "u1"}]


# --------------------------------------------------------------------------- inserts


def test_rows_round_trip_with_nested_repeated_and_bytes(warehouse: DuckDBWarehouse) -> None:
    rows = [play(i) for i in range(5)]
    assert warehouse.insert_rows(PLAYS.ref, rows) == 5
    back = warehouse.query("SELECT * FROM events.plays_v1 ORDER BY event_id")
    assert back == rows
    first = back[0]
    assert first["event_time"].tzinfo is timezone.utc
    assert isinstance(first["email"], bytes) and isinstance(first["context"]["lat"], bytes)
    assert isinstance(first["price"], Decimal)


def test_timestamps_in_other_zones_are_stored_as_instants(warehouse: DuckDBWarehouse) -> None:
    cest = timezone(timedelta(hours=2))
    warehouse.insert_rows(PLAYS.ref, [play(1, event_time=datetime(2024, 5, 1, 12, 0, tzinfo=cest))])
    back = warehouse.query("SELECT event_time FROM events.plays_v1")[0]["event_time"]
    assert back == datetime(2024, 5, 1, 10, 0, tzinfo=UTC) and back.tzinfo is timezone.utc


def test_null_arrays_are_stored_as_empty_arrays_like_bigquery(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(1, tags=None, tracks=[{"id": "t", "position": None, "flags": None}])])
    row = warehouse.query("SELECT tags, tracks FROM events.plays_v1")[0]
    assert row == {"tags": [], "tracks": [{"id": "t", "position": None, "flags": []}]}


def test_missing_nullable_columns_are_null(warehouse: DuckDBWarehouse) -> None:
    row = {k: v for k, v in play(1).items() if k not in ("ratio", "email", "message_id")}
    warehouse.insert_rows(PLAYS.ref, [row])
    back = warehouse.query("SELECT ratio, email, message_id FROM events.plays_v1")[0]
    assert back == {"ratio": None, "email": None, "message_id": None}


def test_empty_insert_writes_nothing(warehouse: DuckDBWarehouse) -> None:
    assert warehouse.insert_rows(PLAYS.ref, []) == 0
    assert warehouse.row_count(PLAYS.ref) == 0


@pytest.mark.parametrize(
    ("overrides", "path", "reason"),
    [
        ({"surprise": SECRET}, "surprise", "unknown column"),
        ({"ms_played": SECRET}, "ms_played", "expected an integer, got str"),
        ({"ms_played": 1.5}, "ms_played", "expected an integer, got float"),
        ({"ms_played": True}, "ms_played", "expected an integer, got bool"),
        ({"ms_played": 2**64}, "ms_played", "out of the INT64 range"),
        ({"ratio": SECRET}, "ratio", "expected a number, got str"),
        ({"skipped": 1}, "skipped", "expected a boolean, got int"),
        ({"event_time": SECRET}, "event_time", "expected a datetime, got str"),
        ({"day": T0}, "day", "got datetime"),
        ({"email": SECRET}, "email", "expected bytes, got str"),
        ({"tags": SECRET}, "tags", "expected a list"),
        ({"tags": ["a", None]}, "tags[1]", "arrays cannot hold NULL"),
        ({"event_id": None}, "event_id", "required, but missing or null"),
        ({"context": {"device": {"os": SECRET}}}, "context.device.id", "required, but missing or null"),
        ({"context": {"device": {"id": "d"}, "pin": SECRET}}, "context.pin", "unknown field"),
        ({"context": SECRET}, "context", "expected a record"),
        ({"tracks": [{"id": "t"}, {"position": 1}]}, "tracks[1].id", "required, but missing or null"),
        ({"tracks": [{"id": "t", "flags": [1]}]}, "tracks[0].flags[0]", "expected a string, got int"),
    ],
)
def test_rows_that_do_not_fit_are_refused_whole_without_values(
    warehouse: DuckDBWarehouse, overrides: dict, path: str, reason: str
) -> None:
    rows = [play(0), play(1, **overrides), play(2)]
    with pytest.raises(InvalidRows) as info:
        warehouse.insert_rows(PLAYS.ref, rows)
    error = info.value
    assert [(p.index, p.path) for p in error.problems] == [(1, path)]
    assert reason in error.problems[0].reason
    assert error.rows == (1,)
    assert f"row 1: {path}: " in str(error) and "nothing was written" in str(error)
    assert SECRET not in str(error) and str(2**64) not in str(error)
    assert warehouse.row_count(PLAYS.ref) == 0


def test_columns_insert_the_same_rows_as_dicts(warehouse: DuckDBWarehouse) -> None:
    rows = [play(i) for i in range(3)]
    names = [n for n in rows[0] if n != "ratio"]  # a missing column is NULL
    columns = {name: [row[name] for row in rows] for name in names}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    columns["event_time"] = [(row["event_time"] - epoch) // timedelta(microseconds=1) for row in rows]  # int µs
    target = warehouse._target(PLAYS.ref)
    checked: list[int] = []
    original = target.checker.problems
    target.checker.problems = lambda rows: checked.append(len(rows)) or original(rows)  # type: ignore[method-assign]
    assert warehouse.insert_columns(PLAYS.ref, columns, 3) == 3
    assert checked == []  # no per-value check: the caller's codec typed the values
    assert warehouse.query("SELECT * FROM events.plays_v1 ORDER BY event_id") == [{**row, "ratio": None} for row in rows]
    assert warehouse.insert_columns(PLAYS.ref, {}, 0) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ms_played": [1, SECRET]}, "column ms_played does not fit its type int64"),
        ({"ms_played": [1]}, "column ms_played does not fit"),
        ({"surprise": [1, 2]}, "unknown column(s) surprise"),
        ({"event_id": ["e1", None]}, "inserting into events.plays_v1"),
    ],
    ids=["bad-value", "short-column", "unknown-column", "null-in-required"],
)
def test_columns_that_do_not_fit_write_nothing_and_name_the_column(
    warehouse: DuckDBWarehouse, change: dict, message: str
) -> None:
    rows = [play(0), play(1)]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    columns.update(change)
    with pytest.raises(PlatformError, match=re.escape(message)) as info:
        warehouse.insert_columns(PLAYS.ref, columns, 2)
    assert SECRET not in str(info.value) and warehouse.row_count(PLAYS.ref) == 0


def test_a_row_missing_a_required_column_is_refused(warehouse: DuckDBWarehouse) -> None:
    row = play(1)
    del row["user_pseudonym"]
    with pytest.raises(InvalidRows, match="row 0: user_pseudonym: required"):
        warehouse.insert_rows(PLAYS.ref, [row])


def test_non_dict_rows_are_refused(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(InvalidRows, match=r"row 0: expected a row \(dict\), got list"):
        warehouse.insert_rows(PLAYS.ref, [["e1"]])  # type: ignore[list-item]


def test_insert_into_a_missing_table_says_so(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(PlatformError, match="events.nope does not exist in the local warehouse"):
        warehouse.insert_rows("events.nope", [{"a": 1}])


def test_tables_not_created_by_this_process_get_checked_from_duckdbs_schema(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    with DuckDBWarehouse(path) as first:
        first.ensure_dataset("events")
        first.ensure_table(PLAYS)
    with DuckDBWarehouse(path) as second:  # no ensure_table: columns come from DuckDB
        assert second.insert_rows(PLAYS.ref, [play(1)]) == 1
        with pytest.raises(InvalidRows, match="row 0: ms_played: expected an integer"):
            second.insert_rows(PLAYS.ref, [play(2, ms_played="x")])
        assert second.query("SELECT event_id FROM events.plays_v1") == [{"event_id": "e1"}]


# --------------------------------------------------------------------------- queries


def test_dedup_view_keeps_the_first_published_row_per_event(warehouse: DuckDBWarehouse) -> None:
    original = [play(i) for i in range(4)]
    redelivered = [
        play(i, message_id=f"m{i}-again", publish_time=T0 + timedelta(hours=i, minutes=5), ms_played=-1) for i in range(3)
    ]
    warehouse.insert_rows(PLAYS.ref, redelivered)
    warehouse.insert_rows(PLAYS.ref, original)
    warehouse.insert_rows(PLAYS.ref, redelivered[:1])
    assert warehouse.row_count(PLAYS.ref) == 8
    rows = warehouse.query(
        "SELECT event_id, message_id, ms_played FROM events.plays_v1_dedup WHERE DATE(event_time) = @run_date ORDER BY event_id",
        {"run_date": date(2024, 5, 1)},
    )
    assert rows == [{"event_id": f"e{i}", "message_id": f"m{i}", "ms_played": 1000 * i} for i in range(4)]


def test_query_runs_bigquery_sql_with_run_date(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(i) for i in range(30)])  # 10:00 on May 1 .. 15:00 on May 2
    sql = """
        SELECT user_pseudonym, COUNT(*) AS plays, COUNTIF(skipped) AS skips,
               SAFE_DIVIDE(COUNTIF(skipped), COUNT(*)) AS skip_rate,
               FORMAT_DATE('%Y%m%d', @run_date) AS day
        FROM events.plays_v1
        WHERE DATE(event_time) = @run_date AND TIMESTAMP_TRUNC(event_time, DAY) >= @since
        GROUP BY user_pseudonym ORDER BY user_pseudonym
    """
    rows = warehouse.query(sql, {"run_date": date(2024, 5, 1), "since": datetime(2024, 5, 1, tzinfo=UTC)})
    assert [r["plays"] for r in rows] == [5, 5, 4]  # hours 10..23 of May 1: i = 0..13
    assert sum(r["plays"] for r in rows) == 14
    assert rows[0]["day"] == "20240501"
    assert all(isinstance(r["skip_rate"], float) for r in rows)


def test_parameters_are_typed_like_bigquerys(warehouse: DuckDBWarehouse) -> None:
    row = warehouse.query(
        "SELECT @i AS i, @f AS f, @s AS s, @b AS b, @d AS d, @t AS t, @y AS y, @n AS n",
        {
            "i": 7, "f": 1.5, "s": "x", "b": False, "d": date(2024, 5, 1),
            "t": datetime(2024, 5, 1, 12, 0), "y": b"\x00", "n": Decimal("1.5"),
        },
    )[0]
    assert row == {
        "i": 7, "f": 1.5, "s": "x", "b": False, "d": date(2024, 5, 1),
        "t": datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "y": b"\x00", "n": Decimal("1.5"),
    }
    types = warehouse.query("SELECT typeof(@i) AS i, typeof(@t) AS t", {"i": 7, "t": T0})[0]
    assert types == {"i": "BIGINT", "t": "TIMESTAMP WITH TIME ZONE"}


def test_array_parameters_work_with_in_unnest(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(i) for i in range(5)])
    rows = warehouse.query(
        "SELECT event_id FROM events.plays_v1 WHERE event_id IN UNNEST(@ids) ORDER BY event_id", {"ids": ["e1", "e3", "zz"]}
    )
    assert rows == [{"event_id": "e1"}, {"event_id": "e3"}]


def test_unused_parameters_are_ignored_and_missing_ones_named(warehouse: DuckDBWarehouse) -> None:
    assert warehouse.query("SELECT 1 AS one", {"run_date": date(2024, 5, 1)}) == [{"one": 1}]
    with pytest.raises(PlatformError, match="uses parameter.*@run_date.*given: @other"):
        warehouse.query("SELECT @run_date AS d", {"other": 1})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "@p is NULL"),
        (object(), "@p is object"),
        ([], "array parameter needs at least one element"),
        ([1, "a"], "one element type"),
        ([1, None], "one element type"),
    ],
)
def test_untyped_parameters_are_refused(warehouse: DuckDBWarehouse, value, message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        warehouse.query("SELECT @p AS p", {"p": value})


def test_query_errors_are_platform_errors(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(PlatformError, match="line 2"):
        warehouse.query("SELECT\n  FROM WHERE (")
    with pytest.raises(PlatformError, match="the query failed on the local DuckDB warehouse.*missing"):
        warehouse.query("SELECT * FROM events.missing")


def test_row_count_with_a_condition(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(i) for i in range(6)])
    assert warehouse.row_count(PLAYS.ref) == 6
    assert warehouse.row_count(PLAYS.ref, "user_pseudonym = @u AND DATE(event_time) = @d", {"u": "u1", "d": date(2024, 5, 1)}) == 2
    with pytest.raises(PlatformError, match="does not parse"):
        warehouse.row_count(PLAYS.ref, "user_pseudonym = = (")


# --------------------------------------------------------------------------- partitions


def _daily(warehouse: DuckDBWarehouse) -> list[dict]:
    return warehouse.query("SELECT * FROM endpoints.daily ORDER BY date, user_pseudonym")


def test_replace_partition_is_idempotent_and_touches_only_its_partition(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(i) for i in range(30)])
    may1, may2 = date(2024, 5, 1), date(2024, 5, 2)
    written = warehouse.replace_partition(DAILY.ref, "date", may1, DAILY_SQL, {"run_date": may1, "run_time": T0})
    assert written == 3
    warehouse.replace_partition(DAILY.ref, "date", may2, DAILY_SQL, {"run_date": may2})
    before = _daily(warehouse)
    assert sum(r["plays"] for r in before if r["date"] == may1) == 14
    assert sum(r["plays"] for r in before if r["date"] == may2) == 16

    assert warehouse.replace_partition(DAILY.ref, "date", may1, DAILY_SQL, {"run_date": may1}) == 3
    assert _daily(warehouse) == before

    warehouse.insert_rows(PLAYS.ref, [play(100, event_id="late", event_time=T0, user_pseudonym="u9")])
    warehouse.replace_partition(DAILY.ref, "date", may1, DAILY_SQL, {"run_date": may1})
    after = _daily(warehouse)
    assert [r for r in after if r["date"] == may2] == [r for r in before if r["date"] == may2]
    assert {"date": may1, "user_pseudonym": "u9", "plays": 1} in after


def test_replace_partition_with_no_rows_empties_the_partition(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(1)])
    warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), DAILY_SQL, {"run_date": date(2024, 5, 1)})
    assert warehouse.row_count(DAILY.ref) == 1
    assert warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), DAILY_SQL + " HAVING FALSE", {"run_date": date(2024, 5, 1)}) == 0
    assert warehouse.row_count(DAILY.ref) == 0


def test_rows_outside_the_partition_are_refused_and_nothing_changes(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(i) for i in range(30)])
    warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), DAILY_SQL, {"run_date": date(2024, 5, 1)})
    before = _daily(warehouse)
    wrong = "SELECT DATE(event_time) AS date, user_pseudonym, COUNT(*) AS plays FROM events.plays_v1 GROUP BY 1, 2"
    with pytest.raises(PlatformError, match=r"3 of 6 row\(s\) of the query fall outside partition 2024-05-01 of endpoints.daily"):
        warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), wrong)
    with pytest.raises(PlatformError, match="fall outside"):
        warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), "SELECT CAST(NULL AS DATE) AS date")
    assert _daily(warehouse) == before


def test_replace_partition_query_errors_roll_back(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(1)])
    warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), DAILY_SQL, {"run_date": date(2024, 5, 1)})
    with pytest.raises(PlatformError, match="replacing partition 2024-05-01 of endpoints.daily failed"):
        warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), "SELECT @run_date AS date, 1 AS nope", {"run_date": date(2024, 5, 1)})
    assert warehouse.row_count(DAILY.ref) == 1
    assert warehouse.query("SELECT 1 AS ok") == [{"ok": 1}]  # the connection is usable again


def test_hour_partitions_of_a_timestamp_table(warehouse: DuckDBWarehouse) -> None:
    warehouse.insert_rows(PLAYS.ref, [play(i) for i in range(3)])
    hour = T0 + timedelta(hours=1)
    select = "SELECT * REPLACE (-1 AS ms_played) FROM events.plays_v1 WHERE TIMESTAMP_TRUNC(event_time, HOUR) = @hour"
    assert warehouse.replace_partition(PLAYS.ref, "event_time", hour, select, {"hour": hour}) == 1
    rows = warehouse.query("SELECT event_id, ms_played FROM events.plays_v1 ORDER BY event_id")
    assert rows == [{"event_id": "e0", "ms_played": 0}, {"event_id": "e1", "ms_played": -1}, {"event_id": "e2", "ms_played": 2000}]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("date", datetime(2024, 5, 1, 10, tzinfo=UTC), "is a DATE: pass a date"),
        ("date", datetime(2024, 5, 1, 10, 30, tzinfo=UTC), "not on a whole hour"),
        ("date", "2024-05-01", "must be a date"),
        ("nope", date(2024, 5, 1), "no top-level column 'nope'"),
        ("plays", date(2024, 5, 1), "partitioned by a DATE or TIMESTAMP"),
    ],
)
def test_bad_partitions_are_refused(warehouse: DuckDBWarehouse, field: str, value, message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        warehouse.replace_partition(DAILY.ref, field, value, "SELECT DATE '2024-05-01' AS date")


def test_replace_partition_needs_the_table(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(PlatformError, match="endpoints.nope does not exist"):
        warehouse.replace_partition("endpoints.nope", "date", date(2024, 5, 1), "SELECT 1 AS x")
    with pytest.raises(PlatformError, match="reserved"):
        warehouse.replace_partition(DAILY.ref, "date", date(2024, 5, 1), "SELECT 1 AS x", {"_partition_value": 1})


# --------------------------------------------------------------------------- concurrency and files


def test_inserts_from_a_thread_while_querying(warehouse: DuckDBWarehouse) -> None:
    batches, size = 40, 50
    errors: list[BaseException] = []

    def sink() -> None:
        try:
            for b in range(batches):
                warehouse.insert_rows(PLAYS.ref, [play(b * size + i) for i in range(size)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=sink)
    thread.start()
    seen = []
    while thread.is_alive():
        count = warehouse.row_count(PLAYS.ref)
        assert count % size == 0  # every insert is atomic
        seen.append(count)
        warehouse.query("SELECT user_pseudonym, COUNT(*) AS n FROM events.plays_v1_dedup GROUP BY 1")
    thread.join()
    assert not errors
    assert warehouse.row_count(PLAYS.ref) == batches * size
    assert seen == sorted(seen)


def test_the_database_file_persists_and_has_one_writer(tmp_path: Path) -> None:
    path = tmp_path / "state" / "warehouse.duckdb"
    with DuckDBWarehouse(path) as wh:
        wh.ensure_dataset("events")
        wh.ensure_table(PLAYS)
        wh.insert_rows(PLAYS.ref, [play(1)])
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse as W\n"
             "try:\n    W(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)", str(path)],
            capture_output=True, text=True, timeout=120,
        )
        assert other.stdout.startswith("PlatformError"), other.stdout + other.stderr
        assert "open in another process" in other.stdout and "dataplatform local down" in other.stdout
    with DuckDBWarehouse(path, read_only=True) as reader:
        assert reader.row_count(PLAYS.ref) == 1


def test_closed_warehouse_refuses_work() -> None:
    wh = DuckDBWarehouse()
    wh.close()
    with pytest.raises(PlatformError, match="closed"):
        wh.query("SELECT 1 AS x")


def test_importing_the_adapter_loads_neither_duckdb_nor_pyarrow() -> None:
    code = (
        "import sys; import dataplatform.adapters.duckdb_warehouse, dataplatform.adapters.bigquery_warehouse; "
        "print(sorted(m for m in ('duckdb', 'pyarrow', 'google.cloud.bigquery') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
