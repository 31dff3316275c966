"""FailedEvent's reasons and stages: the load stage's `dead_lettered` records round-trip."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dataplatform.errors import PlatformError
from dataplatform.pipeline.failed_events import QUARANTINE_RETENTION, REASONS, STAGES, FailedEvent

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def dead_lettered(**overrides: object) -> FailedEvent:
    values: dict[str, object] = {
        "reason": "dead_lettered",
        "detail": "message 42 on track_played_v1-raw-dead-letter-drain: delivered 30 times without an answer",
        "stage": "load",
        "received_at": NOW,
        "failed_at": NOW,
        "event_id": "e-1",
        "event_type": "track_played",
        "schema_version": 1,
        "payload_ciphertext": b"\x00sealed",
    }
    return FailedEvent.create(**(values | overrides))  # type: ignore[arg-type]


def test_dead_lettered_and_load_are_allowed() -> None:
    assert "dead_lettered" in REASONS and "load" in STAGES
    event = dead_lettered()
    assert (event.reason, event.stage) == ("dead_lettered", "load")
    assert event.quarantine_expires_at == NOW + QUARANTINE_RETENTION


def test_a_load_stage_record_round_trips_through_json_and_rows() -> None:
    event = dead_lettered()
    assert FailedEvent.from_json_bytes(event.to_json_bytes()) == event
    assert FailedEvent.from_record(event.to_record()) == event


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reason", "dead", "unknown failed-event reason 'dead'; use one of .*dead_lettered"),
        ("stage", "warehouse", "unknown failed-event stage 'warehouse'; use one of collect, anonymize, load"),
    ],
)
def test_other_reasons_and_stages_are_still_refused(field: str, value: str, message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        dead_lettered(**{field: value})
