"""The function entry points through functions-framework (`create_app(...).test_client()`).

These are the exact code paths Cloud Functions runs: functions-framework loads
`functions/main.py`, routes the HTTP request, and for `anonymize` converts a Pub/Sub push
body `{"message": ..., "subscription": ...}` into a CloudEvent (functions_framework/
event_conversion.py: `marshal_background_event_data` → `background_event_to_cloud_event`,
which keeps data, attributes, messageId and publishTime under `data["message"]`). The
runtime's dependencies are real but for the fakes of ports (see tests/functions/recording.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from functions_framework import create_app

from dataplatform import settings
from dataplatform.compile.avro_codec import codec_for
from dataplatform.definitions.models import EventSchema
from dataplatform.pipeline.anonymize_handler import AnonymizeDeps
from dataplatform.pipeline.collect import CollectDeps
from dataplatform.pipeline.forget import ForgetDeps
from dataplatform.pipeline.monitor import MonitorDeps
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import PlatformKeys
from tests.fakes import FixedClock, ManualClock, MemoryKeyStore
from tests.fixtures.endpoints.seed import LATE_ENOUGH, new_warehouse
from tests.functions.recording import API_KEY, RecordingPublisher, anonymize_deps, collect_deps, platform, push_body

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@dataclass
class StubRuntime:
    """Stands in for `settings.Runtime`: the same deps objects, built from fakes."""

    collect: CollectDeps
    anonymize: AnonymizeDeps
    forget: ForgetDeps
    monitor: MonitorDeps | None = None

    def monitor_deps(self) -> MonitorDeps:
        assert self.monitor is not None
        return self.monitor

    def collect_deps(self) -> CollectDeps:
        return self.collect

    def anonymize_deps(self) -> AnonymizeDeps:
        return self.anonymize

    def forget_deps(self) -> ForgetDeps:
        return self.forget


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform(tmp_path_factory.mktemp("function-keys"))


@pytest.fixture(scope="module")
def schemas(catalog: Any) -> tuple[EventSchema, ...]:
    return tuple(catalog.schemas)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def runtime(
    schemas: tuple[EventSchema, ...], keys: PlatformKeys, publisher: RecordingPublisher, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StubRuntime]:
    stub = StubRuntime(
        collect=collect_deps(schemas, keys, publisher),
        anonymize=anonymize_deps(schemas, keys, publisher),
        forget=ForgetDeps(KeyService(MemoryKeyStore(), keys, FixedClock())),
    )
    monkeypatch.setattr(settings, "_RUNTIME", stub)
    yield stub


def client(target: str, signature_type: str = "http") -> Any:
    return create_app(target=target, source=SOURCE, signature_type=signature_type).test_client()


def play(event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "track_played",
        "schema_version": 1,
        "event_time": "2024-05-01T11:58:00Z",
        "payload": {
            "user_id": "u-1",
            "track_id": "t-1",
            "artist_id": "a-1",
            "ms_played": 31_000,
            "track_duration_ms": 200_000,
            "skipped": False,
            "context": {"device": {"id": "device-1"}, "ip": "10.1.2.3"},
        },
    }


# --------------------------------------------------------------------------- collect


def test_collect_accepts_a_batch(runtime: StubRuntime, publisher: RecordingPublisher) -> None:
    response = client("collect").post("/", json={"events": [play("e-1"), play("e-2") | {"event_type": "trak_played"}]},
                                       headers={"X-Api-Key": API_KEY})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    answer = response.get_json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["results"][1]["reason"] == "unknown_event_type"
    assert len(publisher.messages("track_played_v1-raw")) == 1
    assert len(publisher.messages("failed-events")) == 1


@pytest.mark.parametrize(
    ("method", "kwargs", "status"),
    [
        ("post", {"json": {"events": []}}, 401),
        ("post", {"json": {"events": []}, "headers": {"X-Api-Key": "nope"}}, 401),
        ("get", {"headers": {"X-Api-Key": API_KEY}}, 405),
        ("post", {"data": b"{oops", "headers": {"X-Api-Key": API_KEY}}, 400),
        ("post", {"data": b"x" * 5_000_001, "headers": {"X-Api-Key": API_KEY}}, 413),
        ("post", {"json": {"events": [play(str(i)) for i in range(1001)]}, "headers": {"X-Api-Key": API_KEY}}, 413),
    ],
    ids=["no-key", "bad-key", "get", "not-json", "too-large", "too-many"],
)
def test_collect_refusals(runtime: StubRuntime, publisher: RecordingPublisher, method: str, kwargs: dict, status: int) -> None:
    response = getattr(client("collect"), method)("/", **kwargs)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert publisher.calls == []


def test_collect_answers_503_when_publishing_fails(runtime: StubRuntime) -> None:
    runtime.collect = CollectDeps.create(
        (), [API_KEY], RecordingPublisher(fail_topics={"failed-events"}), runtime.collect.platform, FixedClock()
    )
    response = client("collect").post("/", json={"events": [play("e-1")]}, headers={"X-Api-Key": API_KEY})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


# --------------------------------------------------------------------------- anonymize (Pub/Sub push)


def raw(*events: Any) -> bytes:
    return orjson.dumps({"received_at": "2024-05-01T12:00:00.000000Z", "events": list(events)})


def test_anonymize_turns_a_pubsub_push_into_clean_avro_messages(
    runtime: StubRuntime, publisher: RecordingPublisher, schemas: tuple[EventSchema, ...]
) -> None:
    body = push_body(raw(play("e-1"), play("e-2")), {"event_type": "track_played_v1", "batch_id": "b"}, "4242")
    response = client("anonymize", "cloudevent").post("/", json=body)

    assert response.status_code == 200
    codec = codec_for(next(s for s in schemas if s.key == "track_played_v1"))
    rows = [codec.decode(m.data) for m in publisher.messages("track_played_v1")]
    assert [r["event_id"] for r in rows] == ["e-1", "e-2"]
    assert rows[0]["context"]["ip"] == "10.1.2.0"
    # messageId survived functions-framework's conversion into the CloudEvent
    assert publisher.messages("track_played_v1")[0].attributes == {"raw_message_id": "4242"}


def test_anonymize_acknowledges_a_poison_message(runtime: StubRuntime, publisher: RecordingPublisher) -> None:
    response = client("anonymize", "cloudevent").post("/", json=push_body(b"definitely not json"))
    assert response.status_code == 200
    assert [f.reason for f in publisher.failed_events()] == ["invalid_json"]


def test_anonymize_transient_error_is_500_so_pubsub_redelivers(
    runtime: StubRuntime, schemas: tuple[EventSchema, ...], keys: PlatformKeys
) -> None:
    runtime.anonymize = anonymize_deps(schemas, keys, RecordingPublisher(fail_topics={"track_played_v1"}))
    response = client("anonymize", "cloudevent").post("/", json=push_body(raw(play("e-1"))))
    assert response.status_code == 500


def test_anonymize_accepts_a_structured_cloudevent_too(runtime: StubRuntime, publisher: RecordingPublisher) -> None:
    """Eventarc (the GCP Pub/Sub trigger) delivers a real CloudEvent, not a push body."""
    body = push_body(raw(play("e-9")))
    headers = {
        "ce-id": "1", "ce-specversion": "1.0", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "Content-Type": "application/json",
    }
    response = client("anonymize", "cloudevent").post("/", data=orjson.dumps(body), headers=headers)
    assert response.status_code == 200
    assert len(publisher.messages("track_played_v1")) == 1


def test_a_push_without_data_cannot_be_converted_and_is_refused(runtime: StubRuntime, publisher: RecordingPublisher) -> None:
    """functions-framework only recognises a push body whose message has `data`; anything else
    is not a CloudEvent and fails before our code runs (Pub/Sub retries, then dead-letters)."""
    body = {"message": {"attributes": {"a": "b"}, "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}
    response = client("anonymize", "cloudevent").post("/", json=body)
    assert response.status_code == 400
    assert publisher.calls == []


# --------------------------------------------------------------------------- forget


def test_forget(runtime: StubRuntime, keys: PlatformKeys) -> None:
    response = client("forget").post("/", json={"user_id": "someone"})
    assert response.status_code == 200
    assert response.get_json() == {"record_id": keys.record_id("someone"), "erased": False}
    assert b"someone" not in response.data


@pytest.mark.parametrize(
    ("method", "kwargs", "status"),
    [("get", {}, 405), ("post", {"data": b"nope"}, 400), ("post", {"json": {"user_id": ""}}, 400),
     ("post", {"data": b" " * 20_000}, 413)],
    ids=["get", "not-json", "empty-id", "too-large"],
)
def test_forget_refusals(runtime: StubRuntime, method: str, kwargs: dict, status: int) -> None:
    response = getattr(client("forget"), method)("/", **kwargs)
    assert response.status_code == status
    assert "error" in response.get_json()


# --------------------------------------------------------------------------- monitor


def test_monitor_records_freshness_and_answers_json(runtime: StubRuntime, catalog: Any) -> None:
    warehouse = new_warehouse(catalog)
    runtime.monitor = MonitorDeps(catalog, warehouse, ManualClock(LATE_ENOUGH))
    response = client("monitor").post("/", json={})
    assert response.status_code == 200, response.data
    body = response.get_json()
    tables = {f["table"] for f in body["freshness"]}
    assert {s.table_ref for s in catalog.schemas} <= tables
    assert {e.table_ref for e in catalog.endpoints} <= tables
    # nothing was ever loaded or run: every table is late, and monitor recorded it
    assert all(f["breached"] for f in body["freshness"])
    assert warehouse.row_count("platform.freshness") == len(tables)
