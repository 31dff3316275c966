"""anonymize handler: push CloudEvent → Avro clean messages + failed events; poison acked; transient raises.

Real Anonymizer, KeyService (in-memory key store), platform keys and Avro codecs; a
recording publisher in place of Pub/Sub.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from cloudevents.http import CloudEvent

from dataplatform.compile.avro_codec import codec_for
from dataplatform.definitions.models import EventSchema
from dataplatform.errors import TransientError
from dataplatform.pipeline.anonymize_handler import AnonymizeDeps, PoisonMessage, decode_push, handle_push
from dataplatform.privacy.keys import PlatformKeys
from tests.fakes import DEFAULT_NOW, MemoryKeyStore
from tests.functions.recording import PUBSUB_CE_TYPE, RecordingPublisher, anonymize_deps, platform, push_event

UTC = timezone.utc
SECRET_EMAIL = "bob.private@example.com"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform(tmp_path_factory.mktemp("anonymize-keys"))


@pytest.fixture(scope="module")
def schemas(catalog: Any) -> tuple[EventSchema, ...]:
    return (catalog.schema("track_played"), catalog.schema("user_registered"))


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def deps(schemas: tuple[EventSchema, ...], keys: PlatformKeys, publisher: RecordingPublisher) -> AnonymizeDeps:
    return anonymize_deps(schemas, keys, publisher)


def play(event_id: str, user: str = "u-1", **payload: Any) -> dict[str, Any]:
    body = {
        "user_id": user,
        "track_id": "t-1",
        "artist_id": "a-1",
        "ms_played": 31_000,
        "track_duration_ms": 200_000,
        "skipped": False,
        "context": {"device": {"id": "device-123", "os": "ios"}, "ip": "192.168.7.42"},
    }
    body.update(payload)
    return {
        "event_id": event_id,
        "event_type": "track_played",
        "schema_version": 1,
        "event_time": "2024-05-01T11:58:00.250Z",
        "payload": body,
    }


def registered(event_id: str, user: str = "u-2") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "user_registered",
        "schema_version": 1,
        "event_time": "2024-05-01T11:59:00Z",
        "payload": {
            "user_id": user,
            "email": SECRET_EMAIL,
            "birth_year": 1990,
            "country": "SE",
            "signup_method": "email",
            "marketing_opt_in": False,
        },
    }


def raw(*events: Any) -> bytes:
    return orjson.dumps({"received_at": "2024-05-01T12:00:00.000000Z", "events": list(events)})


# --------------------------------------------------------------------------- decoding


def test_decode_push_reads_the_pubsub_message() -> None:
    message = decode_push(push_event(b"hello", {"event_type": "track_played_v1"}, "77"))
    assert message.data == b"hello"
    assert message.attributes == {"event_type": "track_played_v1"}
    assert message.message_id == "77"
    assert message.publish_time == "2024-05-01T12:00:01.123Z"


def test_decode_push_accepts_json_text_data_and_a_message_without_data() -> None:
    event = CloudEvent({"type": PUBSUB_CE_TYPE, "source": "//pubsub.googleapis.com/"}, None)
    event.data = orjson.dumps({"message": {"messageId": "5", "attributes": {"a": "b"}}})
    message = decode_push(event)
    assert (message.data, message.attributes, message.message_id) == (b"", {"a": "b"}, "5")


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ({"no": "message"}, "the CloudEvent data has no Pub/Sub \"message\" object"),
        ([1, 2], "the CloudEvent data has no Pub/Sub \"message\" object"),
        (b"\xff not json", "the CloudEvent data is not JSON"),
        ({"message": {"data": "***not base64***", "messageId": "1"}}, "the Pub/Sub message's data is not valid base64"),
        ({"message": {"data": "YWJj\u00e9", "messageId": "1"}}, "the Pub/Sub message's data is not valid base64"),
        ({"message": {"data": "YQ", "messageId": "1"}}, "the Pub/Sub message's data is not valid base64"),
        ({"message": {"data": 12, "messageId": "1"}}, "the Pub/Sub message's data is not a base64 string"),
    ],
    ids=["no-message", "array", "not-json", "bad-base64", "non-ascii-base64", "unpadded-base64", "data-not-string"],
)
def test_decode_push_poison(data: Any, detail: str) -> None:
    event = CloudEvent({"type": PUBSUB_CE_TYPE, "source": "//pubsub.googleapis.com/"}, None)
    event.data = data
    with pytest.raises(PoisonMessage) as info:
        decode_push(event)
    assert info.value.detail.startswith(detail)


# --------------------------------------------------------------------------- clean path


def test_clean_events_are_published_as_avro_to_their_clean_topics(
    deps: AnonymizeDeps, publisher: RecordingPublisher, schemas: tuple[EventSchema, ...]
) -> None:
    result = handle_push(push_event(raw(play("p-1"), play("p-2", user="u-3"), registered("r-1")), message_id="900"), deps)

    assert result.message_id == "900"
    assert (result.counts.received, result.counts.clean, result.counts.failed_total) == (3, 3, 0)
    assert result.published == {"track_played_v1": 2, "user_registered_v1": 1}
    assert "failed-events" not in publisher.published

    codec = codec_for(schemas[0])
    rows = [codec.decode(m.data) for m in publisher.messages("track_played_v1")]
    assert [r["event_id"] for r in rows] == ["p-1", "p-2"]
    first = rows[0]
    assert first["event_time"] == datetime(2024, 5, 1, 11, 58, 0, 250_000, tzinfo=UTC)
    assert first["received_at"] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert len(first["user_pseudonym"]) == 32 and first["user_pseudonym"] != rows[1]["user_pseudonym"]
    assert first["context"]["ip"] == "192.168.7.0"
    assert first["context"]["device"]["id"] != "device-123" and len(first["context"]["device"]["id"]) == 64
    assert first["album_id"] is None and first["source"] is None
    assert all(m.attributes == {"raw_message_id": "900"} for m in publisher.messages("track_played_v1"))

    (reg,) = [codec_for(schemas[1]).decode(m.data) for m in publisher.messages("user_registered_v1")]
    assert isinstance(reg["email"], bytes) and SECRET_EMAIL.encode() not in reg["email"]
    assert SECRET_EMAIL.encode() not in publisher.all_bytes()


def test_invalid_events_become_failed_events_and_the_rest_is_published(
    deps: AnonymizeDeps, publisher: RecordingPublisher, keys: PlatformKeys
) -> None:
    bad = play("p-bad", ms_played="a lot")
    result = handle_push(push_event(raw(play("p-1"), bad, registered("r-1") | {"event_type": "user_registred"})), deps)

    assert (result.counts.received, result.counts.clean, result.counts.failed_total) == (3, 1, 2)
    assert result.counts.balanced
    failed = {f.event_id: f for f in publisher.failed_events()}
    assert failed["p-bad"].reason == "schema_violation"
    assert failed["p-bad"].detail.startswith("$.ms_played: expected an integer")
    assert failed["p-bad"].stage == "anonymize"
    assert failed["r-1"].reason == "unknown_event_type"
    assert "did you mean 'user_registered'" in failed["r-1"].detail
    assert SECRET_EMAIL.encode() not in publisher.all_bytes()
    assert orjson.loads(keys.quarantine_decrypt(failed["p-bad"].payload_ciphertext or b"", "p-bad")) == bad
    assert all(m.attributes == {"reason": m_reason, "stage": "anonymize"}
               for m, m_reason in zip(publisher.messages("failed-events"), ["schema_violation", "unknown_event_type"]))
    assert len(publisher.messages("track_played_v1")) == 1


# --------------------------------------------------------------------------- poison


@pytest.mark.parametrize(
    "data",
    [b"not json at all", b'{"events": []}', b"[]", b""],
    ids=["not-json", "no-received-at", "array", "empty"],
)
def test_poison_message_is_recorded_and_acknowledged(
    deps: AnonymizeDeps, publisher: RecordingPublisher, keys: PlatformKeys, data: bytes
) -> None:
    result = handle_push(push_event(data), deps)  # returns: the push is acknowledged

    assert (result.counts.received, result.counts.failed_total) == (1, 1)
    (failed,) = publisher.failed_events()
    assert failed.reason == "invalid_json" and failed.event_id is None
    assert keys.quarantine_decrypt(failed.payload_ciphertext or b"", "") == data
    assert set(publisher.published) == {"failed-events"}


def test_a_push_without_a_message_is_recorded_as_poison(
    deps: AnonymizeDeps, publisher: RecordingPublisher, keys: PlatformKeys
) -> None:
    event = CloudEvent({"type": PUBSUB_CE_TYPE, "source": "//pubsub.googleapis.com/"}, {"surprise": True})

    result = handle_push(event, deps)

    assert result.counts.failed == {"invalid_json": 1}
    (failed,) = publisher.failed_events()
    assert failed.detail.startswith("the CloudEvent data has no Pub/Sub \"message\" object")
    assert orjson.loads(keys.quarantine_decrypt(failed.payload_ciphertext or b"", "")) == {"surprise": True}
    assert failed.received_at == DEFAULT_NOW


def test_invalid_base64_is_poison(deps: AnonymizeDeps, publisher: RecordingPublisher) -> None:
    event = CloudEvent({"type": PUBSUB_CE_TYPE, "source": "//pubsub.googleapis.com/"}, {"message": {"data": "%%%", "messageId": "3"}})
    result = handle_push(event, deps)
    assert result.message_id == "3"
    assert [f.reason for f in publisher.failed_events()] == ["invalid_json"]


# --------------------------------------------------------------------------- transient errors


def test_publish_failure_raises_transient_so_pubsub_redelivers(
    schemas: tuple[EventSchema, ...], keys: PlatformKeys
) -> None:
    publisher = RecordingPublisher(fail_topics={"track_played_v1"})
    deps = anonymize_deps(schemas, keys, publisher)
    with pytest.raises(TransientError, match="track_played_v1"):
        handle_push(push_event(raw(play("p-1"), play("p-bad", ms_played="x"))), deps)
    # the other topic was still published and awaited (duplicates on redelivery are deduped)
    assert [f.event_id for f in publisher.failed_events()] == ["p-bad"]


def test_failed_events_publish_failure_also_raises(schemas: tuple[EventSchema, ...], keys: PlatformKeys) -> None:
    deps = anonymize_deps(schemas, keys, RecordingPublisher(fail_topics={"failed-events"}))
    with pytest.raises(TransientError):
        handle_push(push_event(b"poison"), deps)


def test_key_store_outage_raises_transient(schemas: tuple[EventSchema, ...], keys: PlatformKeys) -> None:
    class DownStore(MemoryKeyStore):
        def get_many(self, record_ids: Any) -> Any:
            raise ConnectionError("firestore is down")

    publisher = RecordingPublisher()
    deps = anonymize_deps(schemas, keys, publisher, store=DownStore())
    with pytest.raises(TransientError):
        handle_push(push_event(raw(play("p-1"))), deps)
    assert publisher.calls == []


def test_same_user_keeps_one_pseudonym_across_messages(
    deps: AnonymizeDeps, publisher: RecordingPublisher, schemas: tuple[EventSchema, ...]
) -> None:
    handle_push(push_event(raw(play("p-1", user="carol"))), deps)
    handle_push(push_event(raw(play("p-2", user="carol"))), deps)
    codec = codec_for(schemas[0])
    pseudonyms = {codec.decode(m.data)["user_pseudonym"] for m in publisher.messages("track_played_v1")}
    assert len(pseudonyms) == 1


def test_push_event_helper_matches_base64_encoding() -> None:
    event = push_event(b"\x00\x01")
    assert base64.b64decode(event.data["message"]["data"]) == b"\x00\x01"
