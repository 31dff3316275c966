"""Every example endpoint's SQL, transpiled, runs on DuckDB against tables compiled from the catalog.

The warehouse is built only from compilers: event tables from `event_table`, `_dedup` views
(a plain SELECT * here; the real view dedupes), endpoint tables from `endpoint_table` in
dependency order. Each endpoint's transpiled query then runs with the run parameters, must
return exactly the columns its table declares, with types DuckDB stores in that table
without conversion, and its rows must insert into the table (what a local run does).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pytest

from dataplatform.compile.bigquery_schema import event_table
from dataplatform.compile.duckdb_ddl import create_schema_sql, create_table_sql, duckdb_type
from dataplatform.compile.endpoint_schema import dependency_order, endpoint_table
from dataplatform.compile.transpile import (
    SESSION_SETUP,
    bigquery_functions,
    duckdb_parameters,
    to_duckdb,
    unsupported_constructs,
)
from dataplatform.definitions.models import ENDPOINTS_DATASET, EVENTS_DATASET

REPO_ROOT = Path(__file__).resolve().parents[3]
ENDPOINT_NAMES = sorted(p.stem for p in (REPO_ROOT / "workflows").glob("*.yaml"))
TRANSPILE_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sql" / "transpile"
PARAMETERS = {"run_date": date(2024, 1, 7), "run_time": datetime(2024, 1, 7, 5, 30, tzinfo=timezone.utc)}

WIDENED = {"HUGEINT": "BIGINT", "INTEGER": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT"}
"""DuckDB result types that are the same BigQuery INT64 (SUM of BIGINT is a HUGEINT in DuckDB)."""


@pytest.fixture(scope="module")
def warehouse(catalog):
    con = duckdb.connect()
    for statement in SESSION_SETUP:
        con.execute(statement)
    for dataset in (EVENTS_DATASET, ENDPOINTS_DATASET):
        con.execute(create_schema_sql(dataset))
    for schema in catalog.schemas:
        con.execute(create_table_sql(event_table(schema)))
        con.execute(f'CREATE VIEW "{EVENTS_DATASET}"."{schema.dedup_view}" AS SELECT * FROM "{EVENTS_DATASET}"."{schema.table}"')
    for endpoint in dependency_order(catalog):
        con.execute(create_table_sql(endpoint_table(endpoint, catalog)))
    yield con
    con.close()


def test_the_example_catalog_has_endpoints(catalog) -> None:
    assert ENDPOINT_NAMES == sorted(e.name for e in catalog.endpoints)
    assert ENDPOINT_NAMES, "no example endpoints under workflows/"


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_transpiled_endpoint_runs_and_returns_its_declared_columns(name: str, catalog, warehouse) -> None:
    endpoint = catalog.endpoint(name)
    spec = endpoint_table(endpoint, catalog)
    sql = to_duckdb(endpoint.sql)
    relation = warehouse.execute(sql, duckdb_parameters(endpoint.sql, PARAMETERS))
    relation.fetchall()
    assert [d[0] for d in relation.description] == [f.name for f in spec.fields]

    query_types = warehouse.execute(f"DESCRIBE {sql}", duckdb_parameters(endpoint.sql, PARAMETERS)).fetchall()
    declared = warehouse.execute(f'DESCRIBE "{spec.dataset}"."{spec.table}"').fetchall()
    assert [WIDENED.get(row[1], row[1]) for row in query_types] == [row[1] for row in declared]


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_endpoint_rows_insert_into_the_endpoint_table(name: str, catalog, warehouse) -> None:
    endpoint = catalog.endpoint(name)
    spec = endpoint_table(endpoint, catalog)
    warehouse.execute("BEGIN TRANSACTION")
    try:
        warehouse.execute(
            f'INSERT INTO "{spec.dataset}"."{spec.table}" BY NAME {to_duckdb(endpoint.sql)}',
            duckdb_parameters(endpoint.sql, PARAMETERS),
        )
    finally:
        warehouse.execute("ROLLBACK")


def test_declared_types_are_the_compiled_duckdb_types(catalog, warehouse) -> None:
    for endpoint in catalog.endpoints:
        spec = endpoint_table(endpoint, catalog)
        declared = warehouse.execute(f'DESCRIBE "{spec.dataset}"."{spec.table}"').fetchall()
        expected = [duckdb_type(f).replace("TEXT", "VARCHAR").replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE") for f in spec.fields]
        assert [row[1] for row in declared] == expected


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_example_sql_has_no_unsupported_constructs(name: str, catalog) -> None:
    assert unsupported_constructs(catalog.endpoint(name).sql) == []


def test_every_function_of_the_example_sql_is_covered_by_an_executed_fixture(catalog) -> None:
    """test_transpile.py executes every fixture on DuckDB and checks BigQuery's rows."""
    used = set().union(*(bigquery_functions(e.sql) for e in catalog.endpoints))
    fixtures = [p for p in TRANSPILE_FIXTURES.glob("*.sql") if not p.name.startswith("_")]
    covered = set().union(*(bigquery_functions(p.read_text()) for p in fixtures))
    assert used, "the example SQL calls no function?"
    assert used - covered == set(), "add a fixture under tests/fixtures/sql/transpile/ for these"
