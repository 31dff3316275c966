"""The local commands against the running stack, through the real typer app: `local up`
(idempotent), `local status`, `send -`, `query`, `demo --json`."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from typer.testing import CliRunner

from dataplatform.cli import app
from dataplatform.local.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-stack")]  # one worker, in order: the fault test kills stack processes

runner = CliRunner()
UTC = timezone.utc


@pytest.fixture
def env(e2e_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("DATAPLATFORM_STATE_DIR", str(e2e_stack.state_dir))
    return e2e_stack


def invoke(*args: str, stdin: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result


def test_up_and_status_report_the_running_stack(env: Stack) -> None:
    up = json.loads(invoke("local", "up", "--json").stdout)
    assert up["started"] is False and up["up"] is True
    status = json.loads(invoke("local", "status", "--json").stdout)
    assert {p["name"] for p in status["processes"]} == {"pubsub", "firestore", "gcs", "collect", "anonymize", "forget", "runtime"}
    assert all(p["alive"] for p in status["processes"])
    assert all(p["memory_bytes"] > 1_000_000 for p in status["processes"])
    assert " MB" in invoke("local", "status").stdout
    assert "events.track_played_v1" in status["runtime"]["tables"]
    assert "Sinks" in invoke("local", "status").stdout


def test_send_then_query(env: Stack) -> None:
    tag = f"cli-{uuid.uuid4().hex[:8]}"
    when = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    good = {
        "event_id": f"{tag}-1", "event_type": "search_performed", "schema_version": 1, "event_time": when,
        "payload": {"user_id": "cli-user", "search_id": "s-1", "query": "secret words", "query_length": 12,
                    "context": {"device": {"id": "dev-1"}}},
    }
    bad = {**good, "event_id": f"{tag}-2", "event_type": "search_perfomed"}
    sent = json.loads(invoke("send", "-", "--json", stdin=json.dumps(good) + "\n" + json.dumps(bad) + "\n").stdout)
    assert (sent["accepted"], sent["rejected"]) == (1, 1)
    assert "did you mean 'search_performed'" in sent["results"][1]["detail"]

    sql = (
        "SELECT event_id, query FROM events.search_performed_v1_dedup "
        "WHERE STARTS_WITH(event_id, @tag) AND event_time > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)"
    )
    deadline = time.monotonic() + 60
    rows: list[dict[str, Any]] = []
    while not rows and time.monotonic() < deadline:
        rows = json.loads(invoke("query", sql, "-p", f"tag={tag}", "--json").stdout)["rows"]
        time.sleep(0.2)
    assert [r["event_id"] for r in rows] == [f"{tag}-1"]
    assert rows[0]["query"] != "secret words"  # encrypted: BYTES, shown as base64
    failed = json.loads(
        invoke("query", "SELECT reason, stage FROM platform.failed_events WHERE event_id = @id", "-p", f"id={tag}-2", "--json").stdout
    )
    assert failed["rows"] == [{"reason": "unknown_event_type", "stage": "collect"}]


def test_demo_json_accounts_for_every_event(env: Stack) -> None:
    data = json.loads(invoke("demo", "--events", "600", "--json", "--timeout", "180").stdout)
    assert data["balanced"] is True and data["stack_started"] is False
    assert data["totals"]["posted"] == 600 and data["totals"]["unexpected"] == 0
    assert data["events_per_second"] > 0 and data["sample"]


def test_reveal_then_forget_on_the_running_stack(env: Stack) -> None:
    """The access request decrypts a user's own events; after `forget` nothing can be revealed."""
    tag = f"dsar-{uuid.uuid4().hex[:8]}"
    user = f"user-{tag}"
    when = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "event_id": f"{tag}-1", "event_type": "search_performed", "schema_version": 1, "event_time": when,
        "payload": {"user_id": user, "search_id": "s-1", "query": f"private words {tag}", "query_length": 12,
                    "context": {"device": {"id": "dev-1"}}},
    }
    assert json.loads(invoke("send", "-", "--json", stdin=json.dumps(event) + "\n").stdout)["accepted"] == 1
    deadline = time.monotonic() + 60
    revealed: dict[str, Any] = {}
    while time.monotonic() < deadline:
        revealed = json.loads(invoke("reveal", "-", "--json", stdin=user + "\n").stdout)
        if revealed["events"]:
            break
        time.sleep(0.3)
    assert revealed["status"] == "found" and revealed["events"] == 1
    [row] = revealed["tables"]["search_performed_v1"]
    assert row["query"] == f"private words {tag}" and row["event_id"] == f"{tag}-1"

    assert json.loads(invoke("forget", "-", "--json", stdin=user + "\n").stdout)["erased"] is True
    after = json.loads(invoke("reveal", "-", "--json", stdin=user + "\n").stdout)
    assert after["status"] == "erased" and after["events"] == 0
