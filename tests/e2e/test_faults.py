"""Faults on the real local stack: the anonymize function dies mid-run; a raw batch is
dead-lettered.

Crash: half of the events are sent, the anonymize function's whole process group is killed
(SIGKILL, as a crashed instance), the other half is sent while it is down (collect keeps
accepting; the emulator's pushes fail and are redelivered about once a second), then it is
restarted on the same port. The push subscriptions dead-letter only after
LOCAL_MAX_DELIVERY_ATTEMPTS (≈ 30 s of downtime), so nothing is dead-lettered: after
recovery every event is loaded or failed as generated, with duplicates allowed (a batch
may be published twice when the instance died after publishing and before answering) and
removed by the dedup views.

Dead letter: a raw batch published straight to `<key>-raw-dead-letter` (what Pub/Sub does
after the last failed delivery) ends as one `dead_lettered` failed event per event, with
the event quarantined.
"""

from __future__ import annotations

import base64
import signal
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from dataplatform.local.emulators import group_members
from dataplatform.local.servers import kill_group
from dataplatform.local.stack import Stack, StackState, platform_environment
from dataplatform.local.topology import LOCAL_MAX_DELIVERY_ATTEMPTS
from dataplatform.pipeline.demo import Accountant, CollectClient, SendReport, send, wait_accounted
from dataplatform.pipeline.generator import EventGenerator
from tests.e2e.helpers import assert_balanced, assert_dedup, scope

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-stack")]  # one worker, in order: the fault test kills stack processes

UTC = timezone.utc
DOWNTIME_S = 3.0
TIMEOUT_S = 240.0


def merge(first: SendReport, second: SendReport) -> SendReport:
    merged = SendReport(
        posted=first.posted + second.posted, requests=first.requests + second.requests,
        null_id_posts=first.null_id_posts + second.null_id_posts,
    )
    for part in (first, second):
        merged.accepted |= part.accepted
        merged.rejected.update(part.rejected)
        merged.rejected_without_id.update(part.rejected_without_id)
    return merged


def test_anonymize_killed_mid_run_and_restarted_loses_nothing(
    e2e_stack: Stack, e2e_state: StackState, collect_client: CollectClient, stack_catalog: Any
) -> None:
    assert LOCAL_MAX_DELIVERY_ATTEMPTS >= 2 * DOWNTIME_S + 10  # the restart fits before dead-lettering
    started = datetime.now(UTC)
    events = EventGenerator(
        stack_catalog.schemas, seed=5, users=300, invalid_share=0.05, duplicate_share=0.02, run_id="e2e-fault", now=started
    ).generate(5000)
    half = len(events) // 2
    old = e2e_stack.load().process("anonymize")

    first = send(events[:half], collect_client)
    kill_group(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while old.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not old.alive() and group_members(old.pgid) == []
    second = send(events[half:], collect_client)  # collect keeps accepting while anonymize is down
    time.sleep(DOWNTIME_S)
    new = e2e_stack.restart_function("anonymize")

    assert new.port == old.port and new.pgid != old.pgid and new.alive()
    assert e2e_stack.load().process("anonymize") == new
    report = merge(first, second)
    accountant = Accountant(stack_catalog.schemas, events, report, scope("e2e-fault", started), e2e_state.runtime())
    accounting, _ = wait_accounted(accountant, timeout=TIMEOUT_S)
    assert_balanced(accounting)
    assert_dedup(accounting)
    dead = e2e_state.runtime().rows(
        "SELECT COUNT(*) AS n FROM platform.failed_events WHERE reason = 'dead_lettered' AND STARTS_WITH(event_id, @p)",
        {"p": "e2e-fault-"},
    )
    assert dead[0]["n"] == 0


def test_a_dead_lettered_raw_batch_becomes_failed_events(e2e_state: StackState, stack_platform_keys: Any) -> None:
    from dataplatform.adapters.pubsub import PubSubPublisher
    from dataplatform.ports import Message

    tag = f"dl-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        {"event_id": f"{tag}-{i}", "event_type": "search_performed", "schema_version": 1, "event_time": now,
         "payload": {"user_id": f"user-{i}", "query": "private words"}}
        for i in range(3)
    ]
    with platform_environment(e2e_state.env):
        publisher = PubSubPublisher(e2e_state.project)
        try:
            publisher.publish(
                "search_performed_v1-raw-dead-letter",
                [Message(orjson.dumps({"received_at": now, "events": events}), {"CloudPubSubDeadLetterSourceDeliveryCount": "30"})],
            )
        finally:
            publisher.close()

    runtime = e2e_state.runtime()
    deadline = time.monotonic() + 60
    rows: list[dict[str, Any]] = []
    while len(rows) < 3 and time.monotonic() < deadline:
        rows = runtime.rows(
            "SELECT event_id, event_type, reason, stage, detail, payload_ciphertext FROM platform.failed_events "
            "WHERE STARTS_WITH(event_id, @tag) ORDER BY event_id",
            {"tag": tag},
        )
        time.sleep(0.2)
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in events]
    for row, event in zip(rows, events):
        assert (row["reason"], row["stage"], row["event_type"]) == ("dead_lettered", "anonymize", "search_performed")
        assert "after 30 failed deliveries" in row["detail"] and "private" not in row["detail"]
        clear = stack_platform_keys.quarantine_decrypt(base64.b64decode(row["payload_ciphertext"]), row["event_id"])
        assert orjson.loads(clear) == event
