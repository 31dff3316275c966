"""`run`, `backfill` and `monitor` through the real typer app, on a seeded local warehouse file."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from dataplatform.cli import app
from tests.fixtures.endpoints.seed import new_warehouse, seed_events

runner = CliRunner()


@pytest.fixture()
def warehouse_file(catalog, tmp_path):
    """A warehouse file with the fixture events (the CLI opens it with --warehouse)."""
    warehouse = new_warehouse(catalog)
    seed_events(warehouse, catalog)
    source = warehouse.path
    warehouse.close()
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(source, path)
    return path


def invoke(repo_root, warehouse_file, *args: str):
    return runner.invoke(app, [*args, "--root", str(repo_root), "--warehouse", str(warehouse_file)])


def test_run_succeeds_and_prints_its_checks(repo_root, warehouse_file) -> None:
    result = invoke(repo_root, warehouse_file, "run", "daily_track_plays", "--date", "2024-05-01")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout and "3 rows" in result.stdout and "unique_date_track_id" in result.stdout


def test_run_json_and_idempotent_rerun(repo_root, warehouse_file) -> None:
    first = json.loads(invoke(repo_root, warehouse_file, "run", "daily_track_plays", "--date", "2024-05-01", "--json").stdout)
    second = json.loads(invoke(repo_root, warehouse_file, "run", "daily_track_plays", "--date", "2024-05-01", "--json").stdout)
    assert (first["status"], first["rows_written"]) == (second["status"], second["rows_written"]) == ("succeeded", 3)
    assert [c["status"] for c in first["checks"]] == ["passed"] * 4


def test_run_exits_2_while_waiting_with_the_reason(repo_root, warehouse_file) -> None:
    result = invoke(repo_root, warehouse_file, "run", "artist_daily_summary", "--date", "2024-05-01")
    assert result.exit_code == 2
    assert "endpoints.daily_track_plays partition 2024-05-01 has not run" in result.stdout


def test_run_exits_1_when_a_check_fails(repo_root, warehouse_file) -> None:
    result = invoke(repo_root, warehouse_file, "run", "daily_track_plays", "--date", "2024-04-01", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reasons"] == ["quality checks failed: row_count (1 failing row)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "daily_trak_plays", "--date", "2024-05-01"), "unknown endpoint 'daily_trak_plays'"),
        (("run", "daily_track_plays", "--date", "1/5/2024"), "--date '1/5/2024' is not a date; write it as YYYY-MM-DD"),
        (("backfill", "daily_track_plays", "--from", "2024-05-02", "--to", "2024-05-01"), "--from 2024-05-02 is after --to 2024-05-01"),
        (("backfill", "daily_track_plays", "--from", "yesterday", "--to", "2024-05-01"), "--from 'yesterday' is not a date"),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(repo_root, warehouse_file, args, message) -> None:
    result = invoke(repo_root, warehouse_file, *args)
    assert result.exit_code == 1
    assert message in result.stderr


def test_backfill_with_downstream_runs_in_order(repo_root, warehouse_file) -> None:
    result = invoke(repo_root, warehouse_file, "backfill", "daily_track_plays", "--from", "2024-04-30", "--to", "2024-05-01", "--with-downstream", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"] == {"succeeded": 6, "failed": 0, "waiting": 0}
    assert [(r["run_date"], r["endpoint"]) for r in data["runs"]] == [
        (day, name) for day in ("2024-04-30", "2024-05-01") for name in ("daily_track_plays", "artist_daily_summary", "weekly_top_tracks")
    ]


def test_backfill_table_output(repo_root, warehouse_file) -> None:
    result = invoke(repo_root, warehouse_file, "backfill", "daily_track_plays", "--from", "2024-04-30", "--to", "2024-05-01")
    assert result.exit_code == 0, result.output
    assert "2 succeeded, 0 failed, 0 waiting" in result.stdout


def test_monitor_reports_late_tables_and_exits_1(repo_root, warehouse_file) -> None:
    invoke(repo_root, warehouse_file, "run", "daily_track_plays", "--date", "2024-05-01")
    result = invoke(repo_root, warehouse_file, "monitor", "--json")
    assert result.exit_code == 1  # the fixture is from 2024: by the system clock everything is late
    data = json.loads(result.stdout)
    tables = {f["table"]: f for f in data["freshness"]}
    assert tables["endpoints.daily_track_plays"]["newest_complete_partition"] == "2024-05-01"
    assert tables["events.track_played_v1"]["breached"] is True
    assert "freshness_breach" not in result.stderr  # the structured lines are for Cloud Logging
