"""`local status`, `send`, `query` through the real typer app, without a running stack
(the running stack is exercised by tests/e2e/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
from dataplatform.cli import app
from dataplatform.cli.local import parse_params, read_events
from dataplatform.errors import PlatformError
from dataplatform.pipeline.warehouse_setup import ensure_warehouse

runner = CliRunner()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATAPLATFORM_STATE_DIR", str(tmp_path))
    return tmp_path


def test_read_events_takes_a_batch_a_list_one_event_or_json_lines() -> None:
    assert read_events('{"events": [{"a": 1}, {"a": 2}]}', "f") == [{"a": 1}, {"a": 2}]
    assert read_events('[{"a": 1}]', "f") == [{"a": 1}]
    assert read_events('{\n  "a": 1\n}\n', "f") == [{"a": 1}]
    assert read_events('{"a": 1}\n\n{"a": 2}\n', "f") == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}\n{"a": \n', r"events.jsonl:2: not valid JSON"),
        ("", r"events.jsonl: no events"),
        ('{"events": {"a": 1}}', r'events.jsonl: "events" must be an array'),
    ],
)
def test_read_events_names_the_bad_line(text: str, message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        read_events(text, "events.jsonl")


def test_parse_params() -> None:
    assert parse_params(["n=3", "name=alice", "flag=true", 'q="7"']) == {"n": 3, "name": "alice", "flag": True, "q": "7"}
    with pytest.raises(PlatformError, match="--param 'oops' must look like name=value"):
        parse_params(["oops"])


def test_status_without_a_stack(state_dir: Path) -> None:
    result = runner.invoke(app, ["local", "status"])
    assert result.exit_code == 0 and "not up" in result.output
    result = runner.invoke(app, ["local", "status", "--json"])
    assert json.loads(result.output)["up"] is False


def test_down_without_a_stack(state_dir: Path) -> None:
    result = runner.invoke(app, ["local", "down", "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == {"purged": False, "stopped": []}


def test_send_needs_a_running_stack(state_dir: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e1"}\n')
    result = runner.invoke(app, ["send", str(events)])
    assert result.exit_code == 1 and "the local stack is not up" in result.output


def test_send_reports_an_unreadable_file(state_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["send", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1 and "cannot read" in result.output and "missing.jsonl" in result.output


def test_query_with_the_stack_down_reads_the_warehouse_file(state_dir: Path, catalog: Any) -> None:
    with DuckDBWarehouse(state_dir / "warehouse.duckdb") as warehouse:
        ensure_warehouse(warehouse, catalog)
    result = runner.invoke(app, ["query", "SELECT COUNT(*) AS n, @x AS x FROM events.track_played_v1", "-p", "x=5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"columns": ["n", "x"], "rows": [{"n": 0, "x": 5}]}
    table = runner.invoke(app, ["query", "SELECT 'a' AS letter"])
    assert "letter" in table.output and "1 row(s)" in table.output


def test_query_errors_are_one_message(state_dir: Path, catalog: Any) -> None:
    result = runner.invoke(app, ["query", "SELECT 1"])
    assert result.exit_code == 1 and "no local warehouse" in result.output
    with DuckDBWarehouse(state_dir / "warehouse.duckdb") as warehouse:
        ensure_warehouse(warehouse, catalog)
    result = runner.invoke(app, ["query", "SELEC 1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
