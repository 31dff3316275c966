"""The whole platform on the real local stack: 5,000 events (5% invalid, of eight kinds, and
2% resent duplicates) through collect → Pub/Sub → anonymize → Pub/Sub → runtime → DuckDB.

Must hold: `sent == loaded + failed` exactly per event type, and every event ends as the
generator said it would; no personal value is readable in any STRING or BYTES column of
any table; every failed event has its reason, and its event id whenever it had one (the
ones without are exactly collect's id-less rejections, payload quarantined); duplicates
reach the tables and the dedup views count each event id once.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from dataplatform.local.stack import Stack, StackState
from dataplatform.pipeline.demo import Accountant, CollectClient, send, wait_accounted
from dataplatform.pipeline.generator import EventGenerator, PiiIndex
from tests.e2e.helpers import assert_balanced, assert_dedup, null_id_rejections, pii_in_clear, scope

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-stack")]  # one worker, in order: the fault test kills stack processes

UTC = timezone.utc
EVENTS = 5000
TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def run(e2e_state: StackState, collect_client: CollectClient, stack_catalog: Any) -> dict[str, Any]:
    started = datetime.now(UTC)
    generator = EventGenerator(
        stack_catalog.schemas, seed=11, users=400, invalid_share=0.05, duplicate_share=0.02, run_id="e2e-main", now=started
    )
    events = generator.generate(EVENTS)
    report = send(events, collect_client)
    run_scope = scope("e2e-main", started)
    accountant = Accountant(stack_catalog.schemas, events, report, run_scope, e2e_state.runtime())
    accounting, _ = wait_accounted(accountant, timeout=TIMEOUT_S)
    return {"events": events, "report": report, "accounting": accounting, "scope": run_scope, "started": started}


def test_every_event_is_accounted_for_per_type(run: dict[str, Any]) -> None:
    accounting = run["accounting"]
    assert_balanced(accounting)
    kinds = {e.kind for e in run["events"]} - {"valid"}
    assert len(kinds) >= 5, kinds
    assert sum(t.sent for t in accounting.types.values()) == len({e.seq for e in run["events"]})
    reasons = {r for t in accounting.types.values() for r in t.failed_by_reason}
    assert {"schema_violation", "unknown_event_type", "invalid_envelope", "clock_skew", "too_late", "too_large"} <= reasons


def test_duplicates_are_loaded_and_removed_by_the_dedup_views(run: dict[str, Any]) -> None:
    assert any(e.duplicate for e in run["events"])
    assert_dedup(run["accounting"])


def test_no_personal_data_in_clear_in_any_table(run: dict[str, Any], e2e_state: StackState, stack_catalog: Any) -> None:
    pii = PiiIndex(run["events"])
    assert len(pii) > 1000 and len(pii.long) > 1000
    sample = next(e for e in run["events"] if e.valid and e.event_type == "user_registered")
    assert pii.in_bytes(orjson.dumps(sample.event)) is not None  # the scan does find PII in clear
    assert pii_in_clear(e2e_state.runtime(), stack_catalog, pii) == []


def test_every_failed_event_has_its_reason_and_event_id(run: dict[str, Any], e2e_state: StackState, stack_platform_keys: Any) -> None:
    runtime = e2e_state.runtime()
    params = run["scope"].params()
    rows = runtime.rows(
        "SELECT event_id, event_type, reason, detail, stage, payload_ciphertext FROM platform.failed_events "
        "WHERE STARTS_WITH(event_id, @prefix) AND failed_at >= TIMESTAMP(@since)",
        params,
    )
    by_id = {e.event_id: e for e in run["events"] if e.event_id is not None}
    expected = {e.event_id for e in run["events"] if not e.valid and e.event_id is not None}
    assert {r["event_id"] for r in rows} == expected
    for row in rows:
        event = by_id[row["event_id"]]
        assert (row["reason"], row["stage"]) == (event.reason, event.stage), row["event_id"]
        assert row["detail"] and row["event_type"] == event.event_type
        clear = stack_platform_keys.quarantine_decrypt(base64.b64decode(row["payload_ciphertext"]), row["event_id"])
        assert orjson.loads(clear) == event.event  # kept for fix and replay, readable only with the key
    report = run["report"]
    assert report.null_id_posts > 0
    assert null_id_rejections(runtime, run["events"], report, stack_platform_keys, run["started"]) == report.null_id_posts


def test_sinks_report_progress_and_no_errors(e2e_state: StackState) -> None:
    status = e2e_state.runtime().status()
    sinks = status["sinks"]
    assert sinks["track_played_v1-bq"]["messages"] > 0 and sinks["failed-events-bq"]["messages"] > 0
    assert all(s["errors"] == 0 for s in sinks.values()), {n: s["last_error"] for n, s in sinks.items() if s["errors"]}
    assert status["tables"]["events.track_played_v1"] > 0


def test_up_is_idempotent(e2e_stack: Stack, e2e_state: StackState) -> None:
    again = e2e_stack.up()
    assert again.started is False
    assert [r.pid for r in again.state.processes] == [r.pid for r in e2e_stack.load().processes]
