"""collect: API key, size limits, body shape, per-event envelope checks, publishing, 503.

Real catalog schemas, real platform keys (quarantine encryption), a recording publisher.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from dataplatform.definitions.models import EventSchema
from dataplatform.errors import PlatformError, TransientError
from dataplatform.pipeline.collect import (
    CollectDeps,
    CollectLimits,
    authorized,
    collect,
    header,
    publish_all,
)
from dataplatform.pipeline.raw_batch import envelope_bytes
from dataplatform.ports import Message
from dataplatform.privacy.keys import PlatformKeys
from tests.fakes import DEFAULT_NOW, FixedClock
from tests.functions.recording import API_KEY, BrokenPublisher, RecordingPublisher, collect_deps, platform

UTC = timezone.utc
HEADERS = {"X-Api-Key": API_KEY}
SECRET_EMAIL = "alice.secret@example.com"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform(tmp_path_factory.mktemp("collect-keys"))


@pytest.fixture(scope="module")
def schemas(catalog: Any) -> tuple[EventSchema, ...]:
    """The example catalog plus a second major version of user_registered."""
    v2 = catalog.schema("user_registered").model_copy(update={"version": 2})
    return (*catalog.schemas, v2)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def deps(schemas: tuple[EventSchema, ...], keys: PlatformKeys, publisher: RecordingPublisher) -> CollectDeps:
    return collect_deps(schemas, keys, publisher)


def track(event_id: str = "e-1", **overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id,
        "event_type": "track_played",
        "schema_version": 1,
        "event_time": "2024-05-01T11:59:00Z",
        "payload": {"user_id": "u-1", "track_id": "t-1"},
    }
    event.update(overrides)
    return event


def registered(event_id: str = "r-1", **overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id,
        "event_type": "user_registered",
        "schema_version": 1,
        "event_time": "2024-05-01T11:59:00+02:00",
        "payload": {"user_id": "u-2", "email": SECRET_EMAIL},
    }
    event.update(overrides)
    return event


def body(*events: Any) -> bytes:
    return orjson.dumps({"events": list(events)})


def post(deps: CollectDeps, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = collect(data, HEADERS if headers is None else headers, deps)
    return response.status, dict(response.body)


def raw_envelope(publisher: RecordingPublisher, topic: str) -> dict[str, Any]:
    (message,) = publisher.messages(topic)
    assert message.attributes["content-encoding"] == "zstd"
    return orjson.loads(envelope_bytes(message.data, message.attributes))


# --------------------------------------------------------------------------- accepted


def test_good_batch_publishes_one_raw_message_per_event_type(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    status, answer = post(deps, body(track("e-1"), registered("r-1"), track("e-2")))

    assert status == 200
    assert answer == {
        "accepted": 3,
        "rejected": 0,
        "results": [
            {"index": 0, "event_id": "e-1", "status": "accepted"},
            {"index": 1, "event_id": "r-1", "status": "accepted"},
            {"index": 2, "event_id": "e-2", "status": "accepted"},
        ],
    }
    assert sorted(publisher.published) == ["track_played_v1-raw", "user_registered_v1-raw"]
    envelope = raw_envelope(publisher, "track_played_v1-raw")
    assert envelope == {"received_at": "2024-05-01T12:00:00.000000Z", "events": [track("e-1"), track("e-2")]}
    (message,) = publisher.messages("track_played_v1-raw")
    (other,) = publisher.messages("user_registered_v1-raw")
    assert message.attributes["event_type"] == "track_played_v1"
    assert len(message.attributes["batch_id"]) == 32
    assert other.attributes["batch_id"] == message.attributes["batch_id"]
    assert "failed-events" not in publisher.published


def test_missing_schema_version_defaults_to_the_highest_major(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    event = registered()
    del event["schema_version"]

    status, answer = post(deps, body(event))

    assert status == 200 and answer["accepted"] == 1
    assert list(publisher.published) == ["user_registered_v2-raw"]
    (published,) = raw_envelope(publisher, "user_registered_v2-raw")["events"]
    assert published == {**event, "schema_version": 2}
    assert list(published) == ["event_id", "event_type", "schema_version", "event_time", "payload"]


def test_null_schema_version_is_treated_as_absent(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    status, _ = post(deps, body(registered(schema_version=None)))
    assert status == 200
    (published,) = raw_envelope(publisher, "user_registered_v2-raw")["events"]
    assert published["schema_version"] == 2


def test_explicit_older_major_version_goes_to_its_own_topic(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    status, _ = post(deps, body(registered("a", schema_version=1), registered("b", schema_version=2)))
    assert status == 200
    assert sorted(publisher.published) == ["user_registered_v1-raw", "user_registered_v2-raw"]


def test_empty_batch_is_accepted_and_publishes_nothing(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    assert post(deps, body()) == (200, {"accepted": 0, "rejected": 0, "results": []})
    assert publisher.calls == []


def test_payload_is_not_validated_here(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    """Schema checks happen in anonymize (typed failures there); collect only checks envelopes."""
    status, answer = post(deps, body(track(payload={"no_such_field": 1})))
    assert status == 200 and answer["accepted"] == 1


# --------------------------------------------------------------------------- whole-request errors


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Api-Key": ""}, {"X-Api-Key": "wrong"}, {"X-Api-Key": API_KEY + "x"}, {"Authorization": API_KEY}],
    ids=["absent", "empty", "wrong", "longer", "other-header"],
)
def test_bad_api_key_is_401_without_detail(deps: CollectDeps, publisher: RecordingPublisher, headers: dict[str, str]) -> None:
    status, answer = post(deps, body(track()), headers)
    assert status == 401
    assert answer == {"error": "missing or invalid API key: send a valid client key in the X-Api-Key header"}
    assert publisher.calls == []


def test_api_key_header_name_is_case_insensitive_and_any_configured_key_works(
    schemas: tuple[EventSchema, ...], keys: PlatformKeys, publisher: RecordingPublisher
) -> None:
    deps = collect_deps(schemas, keys, publisher, api_keys=("first-key", "second-key"))
    assert authorized({"x-api-key": "second-key"}, deps)
    assert authorized({"X-API-KEY": "first-key"}, deps)
    assert not authorized({"x-api-key": "third-key"}, deps)
    assert header({"x-api-key": "v"}, "X-Api-Key") == "v"


def test_no_configured_keys_refuses_everybody(schemas: tuple[EventSchema, ...], keys: PlatformKeys) -> None:
    deps = collect_deps(schemas, keys, RecordingPublisher(), api_keys=())
    assert post(deps, body(track()), {"X-Api-Key": ""})[0] == 401
    assert post(deps, body(track()), {"X-Api-Key": "anything"})[0] == 401


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "the body is not valid JSON (at byte 1)"),
        (b"", "the body is not valid JSON"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b'{"event": []}', "the body has no \"events\" key"),
        (b'{"events": [], "sent_at": 1}', "unknown top-level key(s) 'sent_at'"),
        (b'{"events": {"a": 1}}', "\"events\" must be an array of events"),
    ],
    ids=["not-json", "empty", "array", "no-events", "extra-key", "events-not-array"],
)
def test_malformed_body_is_400_with_a_clear_message(
    deps: CollectDeps, publisher: RecordingPublisher, data: bytes, expected: str
) -> None:
    status, answer = post(deps, data)
    assert status == 400
    assert answer["error"].startswith(expected), answer
    assert publisher.calls == []


def test_too_many_events_is_413(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    status, answer = post(deps, body(*(track(f"e-{i}") for i in range(1001))))
    assert status == 413
    assert answer["error"].startswith("the batch has 1001 events; at most 1000 are accepted")
    assert publisher.calls == []
    assert post(deps, body(*(track(f"e-{i}") for i in range(1000))))[0] == 200


def test_too_large_body_is_413(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    data = body(track(payload={"user_id": "u", "track_id": "x" * 5_000_000}))
    status, answer = post(deps, data)
    assert status == 413
    assert answer["error"] == (
        f"the body is {len(data)} bytes; at most 5000000 bytes are accepted per request: split the batch"
    )
    assert publisher.calls == []


# --------------------------------------------------------------------------- per-event rejections


def _without(key: str) -> dict[str, Any]:
    event = track()
    del event[key]
    return event


ENVELOPE_CASES = [
    ("not-object", ["an event"], "invalid_envelope", "$: an event must be a JSON object"),
    ("no-event-id", _without("event_id"), "invalid_envelope", "$.event_id: required envelope field is missing"),
    ("no-type", _without("event_type"), "invalid_envelope", "$.event_type: required envelope field is missing"),
    ("no-time", _without("event_time"), "invalid_envelope", "$.event_time: required envelope field is missing"),
    ("no-payload", _without("payload"), "invalid_envelope", "$.payload: required envelope field is missing"),
    ("id-not-string", track(event_id=17), "invalid_envelope", "$.event_id: expected a string"),
    ("id-empty", track(event_id=""), "invalid_envelope", "$.event_id: must be 1 to 128 characters"),
    ("id-too-long", track(event_id="x" * 129), "invalid_envelope", "$.event_id: must be 1 to 128 characters"),
    ("type-not-string", track(event_type=["track_played"]), "invalid_envelope", "$.event_type: expected a string"),
    (
        "unknown-type",
        track(event_type="trak_played"),
        "unknown_event_type",
        "$.event_type: unknown event type 'trak_played' (did you mean 'track_played'?); "
        "the catalog has no schema of that name",
    ),
    (
        "unknown-type-odd-name",
        track(event_type="<script>"),
        "unknown_event_type",
        "$.event_type: unknown event type (name not shown: not an event type name)",
    ),
    (
        "unknown-version",
        track(schema_version=3),
        "unknown_event_type",
        "$.schema_version: event type 'track_played' has no major version 3; known versions: 1",
    ),
    ("version-not-int", track(schema_version="1"), "invalid_envelope", "$.schema_version: expected an integer"),
    ("version-bool", track(schema_version=True), "invalid_envelope", "$.schema_version: expected an integer"),
    ("time-not-string", track(event_time=1714564800), "invalid_envelope", "$.event_time: expected an RFC 3339 timestamp"),
    ("time-no-zone", track(event_time="2024-05-01T11:59:00"), "invalid_envelope", "$.event_time: expected an RFC 3339"),
    ("time-garbage", track(event_time="yesterday"), "invalid_envelope", "$.event_time: expected an RFC 3339"),
    ("payload-not-object", track(payload=[1]), "invalid_envelope", "$.payload: expected an object"),
    ("unknown-key", track(user_id="u-1"), "invalid_envelope", "$: unknown envelope field(s) ('user_id')"),
]


@pytest.mark.parametrize(("name", "event", "reason", "detail"), ENVELOPE_CASES, ids=[c[0] for c in ENVELOPE_CASES])
def test_bad_envelope_rejects_that_event_only(
    deps: CollectDeps,
    publisher: RecordingPublisher,
    keys: PlatformKeys,
    name: str,
    event: Any,
    reason: str,
    detail: str,
) -> None:
    status, answer = post(deps, body(track("good-1"), event, track("good-2")))

    assert status == 200
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    rejected = answer["results"][1]
    assert rejected["index"] == 1 and rejected["status"] == "rejected"
    assert rejected["reason"] == reason
    assert rejected["detail"].startswith(detail), rejected["detail"]
    assert [e["event_id"] for e in raw_envelope(publisher, "track_played_v1-raw")["events"]] == ["good-1", "good-2"]

    (failed,) = publisher.failed_events()
    assert (failed.reason, failed.detail, failed.stage) == (reason, rejected["detail"], "collect")
    assert failed.event_id == rejected["event_id"]
    assert failed.received_at == failed.failed_at == DEFAULT_NOW
    assert failed.payload_ciphertext is not None
    assert orjson.loads(keys.quarantine_decrypt(failed.payload_ciphertext, failed.event_id or "")) == event


def test_oversized_event_is_rejected_as_too_large(
    deps: CollectDeps, publisher: RecordingPublisher, keys: PlatformKeys
) -> None:
    big = track("big", payload={"user_id": "u", "track_id": "x" * 100_000})
    status, answer = post(deps, body(track("small"), big))
    assert status == 200
    assert answer["results"][1]["reason"] == "too_large"
    assert answer["results"][1]["detail"].startswith("the event is 100")
    assert answer["results"][1]["detail"].endswith("bytes of JSON; the limit is 100000")
    assert [f.event_id for f in publisher.failed_events()] == ["big"]
    (failed,) = publisher.failed_events()
    assert failed.payload_ciphertext is not None
    assert orjson.loads(keys.quarantine_decrypt(failed.payload_ciphertext, "big")) == big


def test_the_limit_applies_to_the_event_as_published_with_its_schema_version(
    schemas: tuple[EventSchema, ...], keys: PlatformKeys
) -> None:
    # Without schema_version the event is ',"schema_version":1' (19 bytes) shorter as sent
    # than as published; the anonymizer measures it as published, so collect must too.
    sent = {k: v for k, v in track("edge").items() if k != "schema_version"}
    published_size = len(orjson.dumps({**sent, "schema_version": 1}))
    assert published_size == len(orjson.dumps(sent)) + 19
    for limit, status in [(published_size, "accepted"), (published_size - 1, "rejected")]:
        publisher = RecordingPublisher()
        deps = CollectDeps.create(schemas, [API_KEY], publisher, keys, FixedClock(), CollectLimits(max_event_bytes=limit))
        _, answer = post(deps, body(sent))
        assert answer["results"][0]["status"] == status, limit
        if status == "rejected":
            assert answer["results"][0]["reason"] == "too_large"
            assert answer["results"][0]["detail"] == f"the event is {published_size} bytes of JSON; the limit is {limit}"
            (failed,) = publisher.failed_events()
            assert failed.payload_ciphertext is not None  # the event as it was sent, not as published
            assert orjson.loads(keys.quarantine_decrypt(failed.payload_ciphertext, "edge")) == sent
        else:
            assert raw_envelope(publisher, "track_played_v1-raw")["events"] == [{**sent, "schema_version": 1}]


def test_an_oversize_event_is_too_large_whatever_else_is_wrong(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    big_and_unknown = track("big", event_type="no_such_event", payload={"pad": "x" * 100_000})
    big_not_an_object = ["x" * 100_000]
    _, answer = post(deps, body(big_and_unknown, big_not_an_object, track("small")))
    assert [r.get("reason") for r in answer["results"]] == ["too_large", "too_large", None]


def test_per_event_limit_is_configurable(schemas: tuple[EventSchema, ...], keys: PlatformKeys) -> None:
    publisher = RecordingPublisher()
    deps = CollectDeps.create(schemas, [API_KEY], publisher, keys, FixedClock(), CollectLimits(max_event_bytes=200))
    status, answer = post(deps, body(track("a"), track("b", payload={"user_id": "u", "track_id": "x" * 200})))
    assert status == 200 and [r["status"] for r in answer["results"]] == ["accepted", "rejected"]


def test_rejected_events_carry_no_personal_data_in_clear(
    deps: CollectDeps, publisher: RecordingPublisher, keys: PlatformKeys
) -> None:
    bad = registered("r-9", event_time="last tuesday")

    status, answer = post(deps, body(bad))

    assert status == 200 and answer["rejected"] == 1
    assert SECRET_EMAIL.encode() not in publisher.all_bytes()
    assert SECRET_EMAIL not in orjson.dumps(answer).decode()
    (failed,) = publisher.failed_events()
    assert (failed.event_id, failed.event_type, failed.schema_version) == ("r-9", "user_registered", 1)
    assert failed.event_time is None
    assert SECRET_EMAIL.encode() in keys.quarantine_decrypt(failed.payload_ciphertext or b"", "r-9")
    (message,) = publisher.messages("failed-events")
    assert message.attributes == {"reason": "invalid_envelope", "stage": "collect"}


def test_failed_event_keeps_a_valid_event_time(deps: CollectDeps, publisher: RecordingPublisher) -> None:
    post(deps, body(track("x", payload="nope")))
    (failed,) = publisher.failed_events()
    assert failed.event_time == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)


# --------------------------------------------------------------------------- publishing


def test_transient_publish_failure_is_503_so_the_client_retries(
    schemas: tuple[EventSchema, ...], keys: PlatformKeys
) -> None:
    publisher = RecordingPublisher(fail_topics={"user_registered_v1-raw"})
    deps = collect_deps(schemas, keys, publisher)

    response = collect(body(track(), registered(), track(event_time="bad")), HEADERS, deps)

    assert response.status == 503
    assert response.headers == {"Retry-After": "1"}
    assert "retry the whole batch" in response.body["error"]
    # every topic was attempted (all futures awaited), not just up to the failure
    assert sorted(topic for topic, _ in publisher.calls) == [
        "failed-events", "track_played_v1-raw", "user_registered_v1-raw"
    ]


def test_a_non_transient_publish_error_is_not_hidden_as_503(schemas: tuple[EventSchema, ...], keys: PlatformKeys) -> None:
    deps = CollectDeps.create(schemas, [API_KEY], BrokenPublisher(), keys, FixedClock())
    with pytest.raises(PlatformError, match="publisher misconfigured"):
        collect(body(track()), HEADERS, deps)


def test_publish_all_waits_for_every_topic_and_prefers_a_real_bug_over_an_outage() -> None:
    class Mixed(RecordingPublisher):
        def publish(self, topic: str, messages: Any) -> list[str]:
            if topic == "bug":
                raise ValueError("bug")
            return super().publish(topic, messages)

    publisher = Mixed(fail_topics={"down"})
    one = [Message(b"x", {})]
    with pytest.raises(ValueError):
        publish_all(publisher, {"down": one, "bug": one, "fine": one})
    assert publisher.messages("fine") == one

    with pytest.raises(TransientError):
        publish_all(RecordingPublisher(fail_topics={"down"}), {"down": one, "fine": one})


def test_publish_all_returns_ids_per_topic_and_skips_empty_batches() -> None:
    publisher = RecordingPublisher()
    one = [Message(b"x", {})]
    ids = publish_all(publisher, {"a": one, "b": [], "c": one * 2})
    assert sorted(ids) == ["a", "c"]
    assert len(ids["a"]) == 1 and len(ids["c"]) == 2
    assert sorted(t for t, _ in publisher.calls) == ["a", "c"]
    assert publish_all(publisher, {}) == {}


def test_flask_form_is_json_with_content_type(deps: CollectDeps) -> None:
    data, status, headers = collect(body(track()), HEADERS, deps).to_flask()
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert orjson.loads(data)["accepted"] == 1


def test_deps_list_versions_per_name(schemas: tuple[EventSchema, ...], keys: PlatformKeys) -> None:
    deps = collect_deps(schemas, keys, RecordingPublisher())
    assert deps.versions["user_registered"] == (1, 2)
    assert deps.versions["track_played"] == (1,)
