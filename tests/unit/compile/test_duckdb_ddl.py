"""TableSpec → DuckDB DDL: golden DDL of every example table, and DuckDB accepts it."""

from __future__ import annotations

from types import MappingProxyType

import duckdb
import pytest

from dataplatform.compile.bigquery_schema import BqField, TableSpec, event_table, failed_events_table
from dataplatform.compile.duckdb_ddl import create_schema_sql, create_table_sql, duckdb_type
from tests.golden import assert_golden


def _spec(*fields: BqField, dataset: str = "events", table: str = "t") -> TableSpec:
    return TableSpec(dataset, table, fields, None, "DAY", None, (), False, "", MappingProxyType({}))


def test_event_tables_golden(catalog) -> None:
    text = "\n\n".join(create_table_sql(event_table(s)) + ";" for s in catalog.schemas)
    assert_golden("sql/duckdb_ddl/event_tables.sql", text + "\n")


def test_failed_events_table_golden() -> None:
    assert_golden("sql/duckdb_ddl/failed_events.sql", create_table_sql(failed_events_table()) + ";\n")


def test_every_example_table_is_created_by_duckdb(catalog) -> None:
    con = duckdb.connect()
    specs = [event_table(s) for s in catalog.schemas] + [failed_events_table()]
    for dataset in sorted({s.dataset for s in specs}):
        con.execute(create_schema_sql(dataset))
    for spec in specs:
        con.execute(create_table_sql(spec))
        described = con.execute(f"DESCRIBE {spec.dataset}.{spec.table}").fetchall()
        assert [row[0] for row in described] == [f.name for f in spec.fields]
        assert [row[2] for row in described] == ["NO" if f.mode == "REQUIRED" else "YES" for f in spec.fields]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (BqField("a", "STRING"), "TEXT"),
        (BqField("a", "INT64"), "BIGINT"),
        (BqField("a", "FLOAT64"), "DOUBLE"),
        (BqField("a", "BOOL"), "BOOLEAN"),
        (BqField("a", "TIMESTAMP"), "TIMESTAMPTZ"),
        (BqField("a", "DATE"), "DATE"),
        (BqField("a", "BYTES"), "BLOB"),
        (BqField("a", "NUMERIC"), "DECIMAL(38, 9)"),
        (BqField("a", "STRING", "REPEATED"), "TEXT[]"),
        (BqField("a", "RECORD", fields=(BqField("b", "INT64", "REQUIRED"), BqField("c", "BYTES", "REPEATED"))), 'STRUCT("b" BIGINT, "c" BLOB[])'),
        (BqField("a", "RECORD", "REPEATED", fields=(BqField("b", "DATE"),)), 'STRUCT("b" DATE)[]'),
    ],
)
def test_type_mapping(field: BqField, expected: str) -> None:
    assert duckdb_type(field) == expected


def test_reserved_words_are_quoted_and_accepted() -> None:
    spec = _spec(BqField("date", "DATE", "REQUIRED"), BqField("filter", "STRING"), BqField("order", "INT64"), table="select")
    con = duckdb.connect()
    con.execute(create_schema_sql("events"))
    con.execute(create_table_sql(spec))
    assert con.execute('SELECT count(*) FROM events."select"').fetchone() == (0,)


def test_required_column_rejects_null() -> None:
    con = duckdb.connect()
    con.execute(create_schema_sql("events"))
    con.execute(create_table_sql(_spec(BqField("a", "STRING", "REQUIRED"))))
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO events.t VALUES (NULL)")


def test_if_not_exists_is_optional() -> None:
    spec = _spec(BqField("a", "STRING"))
    assert "IF NOT EXISTS" in create_table_sql(spec)
    assert "IF NOT EXISTS" not in create_table_sql(spec, if_not_exists=False)
    assert create_schema_sql("events", if_not_exists=False) == 'CREATE SCHEMA "events"'
