"""The platform's bookkeeping tables: columns, layout, golden schemas, and DuckDB accepts them."""

from __future__ import annotations

import json

import duckdb
import pytest

from dataplatform.compile.bigquery_schema import TableSpec, failed_events_table
from dataplatform.compile.duckdb_ddl import create_schema_sql, create_table_sql
from dataplatform.compile.endpoint_schema import CLUSTERABLE_TYPES, MAX_CLUSTERING_COLUMNS
from dataplatform.compile.platform_tables import (
    CHECK_STATUSES,
    PARTITION_STATUSES,
    PLATFORM_LOG_RETENTION_DAYS,
    RUN_STATUSES,
    check_results_table,
    freshness_table,
    partitions_table,
    platform_tables,
    runs_table,
)
from dataplatform.definitions.models import RETENTION_DAYS
from tests.golden import assert_golden

EXPECTED_COLUMNS = {
    "runs": {
        "run_id": "STRING", "endpoint": "STRING", "run_date": "DATE", "run_time": "TIMESTAMP", "status": "STRING",
        "reason": "STRING", "started_at": "TIMESTAMP", "finished_at": "TIMESTAMP", "rows_written": "INT64",
    },
    "partitions": {
        "table_ref": "STRING", "partition": "DATE", "status": "STRING", "updated_at": "TIMESTAMP", "run_id": "STRING",
        "row_count": "INT64",
    },
    "check_results": {
        "run_id": "STRING", "endpoint": "STRING", "partition": "DATE", "check": "STRING", "type": "STRING",
        "status": "STRING", "failing_rows": "INT64", "sample": "STRING", "duration_ms": "INT64", "checked_at": "TIMESTAMP",
    },
    "freshness": {
        "table_ref": "STRING", "kind": "STRING", "newest_complete_partition": "DATE", "deadline": "TIMESTAMP",
        "lag_seconds": "INT64", "breached": "BOOL", "checked_at": "TIMESTAMP",
    },
}


def _describe(spec: TableSpec) -> dict:
    return {
        "ref": spec.ref,
        "partition": [spec.partition_field, spec.partition_type],
        "expiration_days": spec.expiration_days,
        "clustering": list(spec.clustering),
        "require_partition_filter": spec.require_partition_filter,
        "labels": dict(spec.labels),
        "description": spec.description,
        "schema": spec.schema_api(),
    }


def test_platform_tables_are_golden() -> None:
    text = json.dumps([_describe(t) for t in platform_tables()], indent=2, ensure_ascii=False)
    assert_golden("warehouse/platform_tables.json", text + "\n")
    ddl = "\n\n".join(create_table_sql(t) + ";" for t in platform_tables())
    assert_golden("warehouse/platform_tables.duckdb.sql", ddl + "\n")


def test_all_platform_tables_failed_events_first() -> None:
    tables = platform_tables()
    assert [t.ref for t in tables] == [
        "platform.failed_events", "platform.runs", "platform.partitions", "platform.check_results", "platform.freshness",
    ]
    assert tables[0] == failed_events_table()


@pytest.mark.parametrize("spec", [runs_table(), partitions_table(), check_results_table(), freshness_table()], ids=lambda s: s.table)
def test_tables_have_the_columns_engineers_expect(spec: TableSpec) -> None:
    types = {f.name: f.type for f in spec.fields}
    expected = EXPECTED_COLUMNS[spec.table]
    assert {name: types.get(name) for name in expected} == expected
    assert all(f.description for f in spec.fields)
    assert all(f.mode in ("REQUIRED", "NULLABLE") for f in spec.fields)


@pytest.mark.parametrize("spec", platform_tables(), ids=lambda s: s.table)
def test_layout_is_valid_for_bigquery(spec: TableSpec) -> None:
    by_name = {f.name: f for f in spec.fields}
    partition = by_name[spec.partition_field]
    assert partition.type in ("DATE", "TIMESTAMP") and partition.mode == "REQUIRED"
    assert 1 <= len(spec.clustering) <= MAX_CLUSTERING_COLUMNS
    for column in spec.clustering:
        assert by_name[column].type in CLUSTERABLE_TYPES and by_name[column].mode != "REPEATED"
    assert spec.labels == {"owner": "platform", "domain": "platform"}
    assert not spec.require_partition_filter  # operators scan them ad hoc


def test_logs_expire_and_partition_states_outlive_every_table() -> None:
    assert runs_table().expiration_days == PLATFORM_LOG_RETENTION_DAYS
    assert check_results_table().expiration_days == PLATFORM_LOG_RETENTION_DAYS
    assert freshness_table().expiration_days == PLATFORM_LOG_RETENTION_DAYS
    assert partitions_table().expiration_days == RETENTION_DAYS[1]  # the longest table retention allowed
    assert runs_table().partition_field == "recorded_at"  # when written, not the run date a backfill targets


def test_status_columns_document_their_values() -> None:
    status = {t.table: next(f for f in t.fields if f.name == "status").description for t in platform_tables()[1:4]}
    assert all(s in status["runs"] for s in RUN_STATUSES)
    assert all(s in status["partitions"] for s in PARTITION_STATUSES)
    assert all(s in status["check_results"] for s in CHECK_STATUSES)


def test_duckdb_creates_every_platform_table() -> None:
    con = duckdb.connect()
    con.execute(create_schema_sql("platform"))
    for spec in platform_tables():
        con.execute(create_table_sql(spec))
        assert [row[0] for row in con.execute(f"DESCRIBE platform.{spec.table}").fetchall()] == [f.name for f in spec.fields]
