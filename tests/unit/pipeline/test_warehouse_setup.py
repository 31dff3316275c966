"""ensure_warehouse on the example catalog: every object, in order, idempotent, on both engines."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from dataplatform.adapters.bigquery_warehouse import BigQueryWarehouse
from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
from dataplatform.compile.bigquery_schema import event_table
from dataplatform.definitions.models import FieldDef
from dataplatform.errors import PlatformError
from dataplatform.pipeline.warehouse_setup import ensure_warehouse, warehouse_plan
from tests.golden import assert_golden
from tests.unit.adapters.test_bigquery_warehouse import FakeClient


def _plan_text(catalog) -> str:
    plan = warehouse_plan(catalog)
    lines = [f"dataset {name}" for name, _ in plan.datasets]
    for spec in plan.tables:
        layout = f"partition {spec.partition_field} {spec.partition_type}" if spec.partition_field else "unpartitioned"
        expiry = f"expires {spec.expiration_days}d" if spec.expiration_days else "never expires"
        filt = ", partition filter required" if spec.require_partition_filter else ""
        cluster = f"cluster {', '.join(spec.clustering)}" if spec.clustering else "unclustered"
        lines.append(f"table {spec.ref}: {len(spec.fields)} columns, {layout}, {expiry}, {cluster}{filt}")
    lines += [f"view {view.ref}" for view in plan.views]
    return "\n".join(lines) + "\n"


def test_plan_of_the_example_catalog_is_golden(catalog) -> None:
    assert_golden("warehouse/plan.txt", _plan_text(catalog))


def test_first_run_creates_everything_in_dependency_order(catalog) -> None:
    with DuckDBWarehouse() as warehouse:
        steps = ensure_warehouse(warehouse, catalog)
        assert {s.outcome for s in steps} == {"created"}
        refs = [s.ref for s in steps]
        assert refs[:3] == ["events", "endpoints", "platform"]
        expected_tables = (
            [s.table_ref for s in catalog.schemas]
            + ["platform.failed_events", "platform.runs", "platform.partitions", "platform.check_results", "platform.freshness"]
            + [e.table_ref for e in catalog.endpoints]
        )
        assert sorted(s.ref for s in steps if s.kind == "table") == sorted(expected_tables)
        assert sorted(s.ref for s in steps if s.kind == "view") == sorted(f"events.{s.dedup_view}" for s in catalog.schemas)
        for schema in catalog.schemas:  # each view right after its table
            assert refs.index(f"events.{schema.dedup_view}") == refs.index(schema.table_ref) + 1
        position = {ref: i for i, ref in enumerate(refs)}
        assert position["endpoints.daily_track_plays"] < position["endpoints.weekly_top_tracks"]
        assert position["endpoints.daily_track_plays"] < position["endpoints.artist_daily_summary"]
        for ref in expected_tables:
            assert warehouse.table_exists(ref)


def test_second_run_changes_nothing(catalog, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with DuckDBWarehouse(path) as warehouse:
        first = ensure_warehouse(warehouse, catalog)
        assert {s.outcome for s in ensure_warehouse(warehouse, catalog)} == {"unchanged"}
    with DuckDBWarehouse(path) as reopened:  # and in a new process, from the file
        again = ensure_warehouse(reopened, catalog)
    assert [(s.kind, s.ref) for s in again] == [(s.kind, s.ref) for s in first]
    assert {s.outcome for s in again} == {"unchanged"}


def test_every_endpoint_query_runs_against_the_created_tables(catalog) -> None:
    """The tables ensure_warehouse creates are exactly what each endpoint's SQL reads and writes."""
    run_date = date(2024, 5, 1)
    params = {"run_date": run_date, "run_time": datetime(2024, 5, 2, 3, tzinfo=timezone.utc)}
    with DuckDBWarehouse() as warehouse:
        ensure_warehouse(warehouse, catalog)
        for endpoint in catalog.endpoints:
            assert warehouse.replace_partition(endpoint.table_ref, endpoint.partition_field, run_date, endpoint.sql, params) == 0


def test_a_schema_that_grew_adds_columns(catalog) -> None:
    with DuckDBWarehouse() as warehouse:
        ensure_warehouse(warehouse, catalog)
        schema = catalog.schema("track_played_v1")
        grown = schema.model_copy(
            update={"fields": (*schema.fields, FieldDef(name="volume", type="FLOAT64", description="Playback volume."))}
        )
        assert warehouse.ensure_table(event_table(grown)) == "updated"
        columns = warehouse.query(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'events' AND table_name = 'track_played_v1'"
        )
        assert columns[-1] == {"column_name": "volume"}


def test_a_breaking_change_stops_setup_with_the_table_named(catalog) -> None:
    with DuckDBWarehouse() as warehouse:
        ensure_warehouse(warehouse, catalog)
        warehouse.query("ALTER TABLE platform.runs ALTER COLUMN rows_written SET DATA TYPE STRING")
        with pytest.raises(PlatformError, match="(?s)platform.runs .*rows_written is STRING in the table but INT64"):
            ensure_warehouse(warehouse, catalog)


def test_same_setup_on_bigquery(catalog) -> None:
    client = FakeClient()
    warehouse = BigQueryWarehouse("demo-project", location="EU", client=client)
    first = ensure_warehouse(warehouse, catalog)
    assert {s.outcome for s in first} == {"created"}
    with DuckDBWarehouse() as local:
        assert [(s.kind, s.ref) for s in ensure_warehouse(local, catalog)] == [(s.kind, s.ref) for s in first]
    assert {s.outcome for s in ensure_warehouse(warehouse, catalog)} == {"unchanged"}
    assert client.datasets["demo-project.events"]["labels"] == {"owner": "platform", "domain": "platform"}
    view = client.tables["demo-project.events.track_played_v1_dedup"]["view"]
    assert view["useLegacySql"] is False and "QUALIFY" in view["query"]
