"""BigQuery → DuckDB transpilation: golden DuckDB SQL, and each fixture EXECUTES on DuckDB.

Every fixture under tests/fixtures/sql/transpile/ is a BigQuery query over the table
`fixture.plays` with the rows BigQuery would return, written down from BigQuery's
documented semantics (`-- row: [...]` lines). The test transpiles the query, compares the
DuckDB SQL with its golden file, runs it on an in-memory DuckDB holding the seed rows and
compares the rows: a transform that produces valid but different SQL fails here.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import duckdb
import pytest

from dataplatform.compile.bigquery_schema import BqField, TableSpec
from dataplatform.compile.duckdb_ddl import create_schema_sql, create_table_sql
from dataplatform.compile.sql import SqlSyntaxError
from dataplatform.compile.transpile import (
    SESSION_SETUP,
    UnsupportedSql,
    bigquery_functions,
    duckdb_parameters,
    query_parameters,
    to_duckdb,
    transpile_or_raise,
    unsupported_constructs,
)
from dataplatform.errors import PlatformError
from tests.golden import assert_golden

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sql" / "transpile"
CASES = sorted(p for p in FIXTURES.glob("*.sql") if not p.name.startswith("_"))

RUN_DATE = date(2024, 1, 7)
RUN_TIME = datetime(2024, 1, 7, 5, 30, tzinfo=timezone.utc)
PARAMETERS = {"run_date": RUN_DATE, "run_time": RUN_TIME}

PLAYS = TableSpec(
    dataset="fixture",
    table="plays",
    fields=(
        BqField("event_id", "STRING", "REQUIRED"),
        BqField("event_time", "TIMESTAMP", "REQUIRED"),
        BqField("day", "DATE"),
        BqField("user_pseudonym", "STRING"),
        BqField("track_id", "STRING"),
        BqField("ms_played", "INT64"),
        BqField("skipped", "BOOL"),
        BqField("score", "FLOAT64"),
        BqField("price", "NUMERIC"),
        BqField("track_ids", "STRING", "REPEATED"),
        BqField("device", "RECORD", fields=(BqField("os", "STRING"), BqField("version", "STRING"))),
        BqField(
            "results",
            "RECORD",
            "REPEATED",
            fields=(BqField("position", "INT64", "REQUIRED"), BqField("item_id", "STRING")),
        ),
        BqField("payload", "BYTES"),
    ),
    partition_field="event_time",
    partition_type="DAY",
    expiration_days=None,
    clustering=(),
    require_partition_filter=False,
    description="Transpilation fixture.",
    labels=MappingProxyType({}),
)


def load_case(path: Path) -> tuple[str, list[list]]:
    """The BigQuery SQL of a fixture (without its `-- row:` lines) and its expected rows."""
    sql_lines, rows = [], []
    for line in path.read_text().splitlines():
        if line.startswith("-- row:"):
            rows.append(json.loads(line.removeprefix("-- row:")))
        else:
            sql_lines.append(line)
    assert rows, f"{path.name} states no expected `-- row:`"
    return "\n".join(sql_lines) + "\n", rows


def normalize(value: object) -> object:
    """DuckDB's Python values as the JSON of the fixtures (so types are compared too).

    A TIMESTAMP must come back time-zone aware (`...Z`): a naive datetime means the
    transpiled SQL produced DuckDB's TIMESTAMP where BigQuery's type is an instant.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def warehouse():
    con = duckdb.connect()
    for statement in SESSION_SETUP:
        con.execute(statement)
    con.execute(create_schema_sql(PLAYS.dataset))
    con.execute(create_table_sql(PLAYS))
    con.execute((FIXTURES / "_seed.sql").read_text())
    yield con
    con.close()


# --------------------------------------------------------------------------- golden + execution


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_transpiles_to_golden_duckdb_sql(path: Path) -> None:
    sql, _ = load_case(path)
    assert_golden(f"sql/transpile/{path.name}", to_duckdb(sql) + "\n")


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_transpiled_sql_returns_the_bigquery_rows_on_duckdb(path: Path, warehouse) -> None:
    sql, expected = load_case(path)
    rows = warehouse.execute(to_duckdb(sql), duckdb_parameters(sql, PARAMETERS)).fetchall()
    assert [normalize(list(row)) for row in rows] == expected


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_fixtures_have_no_unsupported_constructs(path: Path) -> None:
    sql, _ = load_case(path)
    assert unsupported_constructs(sql) == []


def test_fixtures_cover_the_functions_named_in_the_issue() -> None:
    covered = set().union(*(bigquery_functions(load_case(p)[0]) for p in CASES))
    issue = {
        "SafeDivide", "CountIf", "ApproxDistinct", "TimestampTrunc", "Date", "DateSub", "DateAdd",
        "Unnest", "ArrayAgg", "Struct", "TimeToStr", "Extract", "Coalesce", "GenerateDateArray",
        "RowNumber", "TimestampDiff", "DateTrunc",
    }
    assert issue - covered == set()


def test_the_transpiled_sql_is_deterministic() -> None:
    sql, _ = load_case(FIXTURES / "unnest.sql")
    assert to_duckdb(sql) == to_duckdb(sql)


# --------------------------------------------------------------------------- parameters


def test_query_parameters_in_order_of_first_use() -> None:
    sql = "SELECT @run_time AS t FROM x WHERE d = @run_date AND e < @run_time"
    assert query_parameters(sql) == ("run_time", "run_date")


def test_parameters_become_duckdb_named_parameters() -> None:
    assert "$run_date" in to_duckdb("SELECT @run_date AS date")


def test_duckdb_parameters_drop_unused_values() -> None:
    assert duckdb_parameters("SELECT @run_date AS date", PARAMETERS) == {"run_date": RUN_DATE}


def test_duckdb_parameters_name_a_missing_value() -> None:
    with pytest.raises(PlatformError, match=r"@run_hour .*available: @run_date, @run_time"):
        duckdb_parameters("SELECT @run_hour AS h", PARAMETERS)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("sql", "line", "construct"),
    [
        ("SELECT\n  a,\n  AEAD.DECRYPT_STRING(k, c, 'email') AS e\nFROM t", 3, "AEAD.DECRYPT_STRING"),
        ("SELECT KEYS.KEYSET_CHAIN('gcp-kms://x', b'k')", 1, "KEYS.KEYSET_CHAIN"),
        ("SELECT *\nFROM ML.PREDICT(MODEL m, TABLE t)", 2, "ML.PREDICT"),
        ("SELECT\n  NET.HOST(url)\nFROM t", 2, "NET.HOST"),
        ("SELECT HLL_COUNT.MERGE(sketch) FROM t", 1, "HLL_COUNT.MERGE"),
        ("SELECT DETERMINISTIC_DECRYPT_STRING(k, c, 'x') FROM t", 1, "DETERMINISTIC_DECRYPT_STRING"),
        ("SELECT a\nFROM t\n  FOR SYSTEM_TIME AS OF TIMESTAMP '2024-01-01'", 2, "FOR SYSTEM_TIME AS OF"),
        ("SELECT EXTRACT(WEEK(TUESDAY) FROM d) FROM t", 1, "EXTRACT(WEEK(TUESDAY)"),
        ("SELECT\n\n  FARM_FINGERPRINT(x) AS f\nFROM t", 3, "FARM_FINGERPRINT (DuckDB has no function"),
        ("SELECT RANGE_BUCKET(x, [0, 10]) FROM t", 1, "RANGE_BUCKET"),
        ("SELECT\n  ARRAY_CONCAT_AGG(a LIMIT 2)\nFROM t", 2, "LIMIT in ARRAY_CONCAT_AGG"),
        ("SELECT 1;\nSELECT 2", 2, "multiple statements (BigQuery scripting)"),
        ("DECLARE x INT64 DEFAULT 1", 1, "DECLARE statement"),
        ("INSERT INTO t (a) VALUES (1)", 1, "INSERT statement"),
        (
            "CREATE TEMP FUNCTION f(x STRING) RETURNS STRING LANGUAGE js AS 'return x';\nSELECT f('a')",
            2,
            "multiple statements",
        ),
    ],
)
def test_unsupported_constructs_are_named_with_their_line(sql: str, line: int, construct: str) -> None:
    found = unsupported_constructs(sql)
    assert any(ln == line and construct in name for ln, name in found), found


def test_every_unsupported_construct_is_reported_once() -> None:
    sql = "SELECT\n  NET.HOST(u) AS h,\n  FARM_FINGERPRINT(u) AS f,\n  AEAD.DECRYPT_STRING(k, FARM_FINGERPRINT(c), 'x')\nFROM t"
    names = [name.split(" ")[0] for _, name in unsupported_constructs(sql)]
    assert names == ["NET.HOST", "FARM_FINGERPRINT", "AEAD.DECRYPT_STRING"]


def test_transpile_or_raise_names_file_line_and_construct() -> None:
    with pytest.raises(UnsupportedSql) as info:
        transpile_or_raise("SELECT\n  ML.PREDICT(MODEL m, TABLE t)", where="workflows/x.sql")
    assert isinstance(info.value, PlatformError)
    assert info.value.constructs == [(2, "ML.PREDICT (BigQuery ML models exist only in BigQuery)")]
    assert "workflows/x.sql:2: ML.PREDICT (BigQuery ML models exist only in BigQuery) cannot run" in str(info.value)


def test_to_duckdb_raises_what_sqlglot_cannot_express() -> None:
    with pytest.raises(UnsupportedSql, match=r"line 3: LIMIT in ARRAY_CONCAT_AGG"):
        to_duckdb("SELECT\n  a,\n  ARRAY_CONCAT_AGG(x LIMIT 2)\nFROM t GROUP BY a")


def test_transpile_or_raise_returns_duckdb_sql_for_supported_sql() -> None:
    assert transpile_or_raise("SELECT COUNTIF(x) AS n FROM t") == "SELECT\n  COALESCE(COUNT_IF(x), 0) AS n\nFROM t"


def test_syntax_errors_keep_their_line() -> None:
    with pytest.raises(SqlSyntaxError) as info:
        unsupported_constructs("SELECT a,\nFROM t WHERE (")
    assert info.value.line == 2
