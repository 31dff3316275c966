"""PubSubPublisher and PubSubAdmin against Google's Pub/Sub emulator.

Each test uses its own topic/subscription names (the emulator is shared by the session).
Every pull is bounded by a timeout; loops have deadlines, so no test can hang.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dataplatform.adapters.pubsub import PubSubAdmin, PubSubPublisher, ReceivedMessage
from dataplatform.errors import PlatformError, TransientError
from dataplatform.local.emulators import Emulator, free_port
from dataplatform.ports import Message

pytestmark = pytest.mark.emulator


@pytest.fixture
def admin(pubsub_emulator: Emulator, emulator_project: str) -> Iterator[PubSubAdmin]:
    admin = PubSubAdmin(emulator_project)
    yield admin
    admin.close()


@pytest.fixture
def publisher(pubsub_emulator: Emulator, emulator_project: str) -> Iterator[PubSubPublisher]:
    publisher = PubSubPublisher(emulator_project, timeout=30)
    yield publisher
    publisher.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pull_all(admin: PubSubAdmin, subscription: str, expected: int, deadline_s: float = 30.0) -> list[ReceivedMessage]:
    """Pull until `expected` messages arrived or the deadline passed; ack what came."""
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < expected and time.monotonic() < deadline:
        batch = admin.pull(subscription, max_messages=1000, timeout=2.0)
        if batch:
            admin.ack(subscription, [m.ack_id for m in batch])
            got.extend(batch)
    return got


def test_topics_and_subscriptions_are_idempotent(admin: PubSubAdmin) -> None:
    topic = unique("topic")
    assert not admin.topic_exists(topic)
    assert admin.ensure_topic(topic) is True
    assert admin.ensure_topic(topic) is False
    assert admin.topic_exists(topic)
    sub = unique("sub")
    assert admin.ensure_pull_subscription(sub, topic) is True
    assert admin.ensure_pull_subscription(sub, topic) is False
    assert admin.delete_subscription(sub) is True
    assert admin.delete_subscription(sub) is False
    assert admin.delete_topic(topic) is True
    assert admin.delete_topic(topic) is False


def test_publish_pull_ack_round_trip(admin: PubSubAdmin, publisher: PubSubPublisher) -> None:
    topic, sub = unique("raw"), unique("sink")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    messages = [Message(f"m{i}".encode() + b"\x00\xff", {"event_type": "t_v1", "n": str(i)}) for i in range(3)]

    ids = publisher.publish(topic, messages)

    assert len(ids) == 3 and len(set(ids)) == 3
    got = pull_all(admin, sub, 3)
    assert sorted(m.message_id for m in got) == sorted(ids)
    by_n = {m.attributes["n"]: m for m in got}
    for i, sent in enumerate(messages):
        received = by_n[str(i)]
        assert received.data == sent.data
        assert dict(received.attributes) == dict(sent.attributes)
        assert received.publish_time.tzinfo is not None
    # acked: nothing comes back
    assert admin.pull(sub, timeout=1.0) == []


def test_many_messages_are_batched_and_all_arrive(admin: PubSubAdmin, publisher: PubSubPublisher) -> None:
    topic, sub = unique("bulk"), unique("bulk-sink")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    messages = [Message(b"x" * 100 + str(i).encode(), {}) for i in range(2500)]

    ids = publisher.publish(topic, messages)

    assert len(set(ids)) == 2500
    got = pull_all(admin, sub, 2500, deadline_s=60)
    assert len({m.message_id for m in got}) == 2500


def test_pull_on_an_empty_subscription_returns_nothing_within_its_timeout(admin: PubSubAdmin) -> None:
    topic, sub = unique("quiet"), unique("quiet-sub")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    started = time.monotonic()
    assert admin.pull(sub, timeout=1.5) == []
    assert time.monotonic() - started < 15  # bounded (generous for a loaded machine)


def test_a_pull_that_does_not_wait_answers_at_once(admin: PubSubAdmin, publisher: PubSubPublisher) -> None:
    """`wait=False` never waits on the server (a waiting pull is held until just before its
    deadline: ~29 s here), and returns what is there."""
    topic, sub = unique("no-wait"), unique("no-wait-sub")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    started = time.monotonic()
    assert admin.pull(sub, timeout=30.0, wait=False) == []
    assert time.monotonic() - started < 10
    (sent_id,) = publisher.publish(topic, [Message(b"now", {})])
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        got = admin.pull(sub, wait=False)
        time.sleep(0.05)
    assert [m.message_id for m in got] == [sent_id]


def test_nack_redelivers(admin: PubSubAdmin, publisher: PubSubPublisher) -> None:
    topic, sub = unique("nack"), unique("nack-sub")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    (sent_id,) = publisher.publish(topic, [Message(b"again", {})])

    first = []
    deadline = time.monotonic() + 30
    while not first and time.monotonic() < deadline:
        first = admin.pull(sub, timeout=2.0)
    assert [m.message_id for m in first] == [sent_id]
    admin.nack(sub, [m.ack_id for m in first])

    again = pull_all(admin, sub, 1)
    assert [m.message_id for m in again] == [sent_id]


def test_publishing_to_a_missing_topic_is_a_transient_error_naming_it(publisher: PubSubPublisher) -> None:
    topic = unique("missing")
    with pytest.raises(TransientError, match=f"topic {topic!r} failed: NotFound; the topic does not exist") as info:
        publisher.publish(topic, [Message(b"secret payload", {})])
    assert "secret payload" not in str(info.value)


def test_unreachable_pubsub_is_a_transient_error_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, emulator_project: str
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    publisher = PubSubPublisher(emulator_project, timeout=3)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="publishing 1 message"):
            publisher.publish("some-topic", [Message(b"x", {})])
    finally:
        publisher.close()
    assert time.monotonic() - started < 30


def test_schema_bound_topic(admin: PubSubAdmin) -> None:
    schema_id, topic = unique("schema"), unique("clean")
    avro = '{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}'
    assert admin.ensure_schema(schema_id, avro) is True
    assert admin.ensure_schema(schema_id, avro) is False
    assert admin.ensure_topic(topic, schema_id=schema_id) is True
    assert admin.topic_exists(topic)


def test_a_schema_bound_topic_refuses_messages_that_do_not_match_its_schema(
    admin: PubSubAdmin, publisher: PubSubPublisher
) -> None:
    # The emulator parses every message against the topic's Avro schema, as Pub/Sub does
    # (measured: it makes a message ~40% dearer for the emulator, bench/README.md).
    schema_id, topic = unique("schema"), unique("clean")
    admin.ensure_schema(schema_id, '{"type":"record","name":"r","fields":[{"name":"a","type":"string"}]}')
    admin.ensure_topic(topic, schema_id=schema_id)
    admin.ensure_pull_subscription(f"{topic}-sub", topic)
    assert len(publisher.publish(topic, [Message(b"\x06abc", {})])) == 1  # "abc" in Avro binary
    with pytest.raises(TransientError, match="InvalidArgument; Pub/Sub refused the messages: .*the topic's schema") as info:
        publisher.publish(topic, [Message(b"\x06abc", {}), Message(b"\x7fsecret payload", {})])
    assert "secret payload" not in str(info.value)
    assert [m.data for m in pull_all(admin, f"{topic}-sub", 1)] == [b"\x06abc"]  # all or nothing


def test_invalid_names_and_settings_are_refused_before_any_call(admin: PubSubAdmin) -> None:
    with pytest.raises(PlatformError, match="invalid Pub/Sub topic id 'ab'"):
        admin.ensure_topic("ab")
    with pytest.raises(PlatformError, match="invalid Pub/Sub subscription id '9lives'"):
        admin.ensure_pull_subscription("9lives", "some-topic")
    with pytest.raises(PlatformError, match="max_delivery_attempts 3 must be 5 to 100"):
        admin.ensure_pull_subscription("valid-sub", "some-topic", dead_letter_topic="dead-letters", max_delivery_attempts=3)
    with pytest.raises(PlatformError, match="ack_deadline 5s must be 10 to 600 seconds"):
        admin.ensure_pull_subscription("valid-sub", "some-topic", ack_deadline=5)


def test_subscription_on_a_missing_topic_says_to_create_it(admin: PubSubAdmin) -> None:
    with pytest.raises(PlatformError, match="not found"):
        admin.ensure_pull_subscription(unique("orphan"), unique("no-topic"))


def test_a_pull_response_over_grpcs_default_4_mb_limit_arrives(admin: PubSubAdmin, publisher: PubSubPublisher) -> None:
    """The subscriber's channel must accept big responses: 12 × 1 MB in one pull ≈ 12 MB."""
    topic, sub = unique("big"), unique("big-sink")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    messages = [Message(bytes([i]) * 1_000_000, {"n": str(i)}) for i in range(12)]

    ids = publisher.publish(topic, messages)

    got = pull_all(admin, sub, 12, deadline_s=60)
    assert sorted(m.message_id for m in got) == sorted(ids)
    assert {m.attributes["n"]: m.data for m in got} == {str(i): bytes([i]) * 1_000_000 for i in range(12)}


def test_pulled_messages_carry_utc_publish_times_and_plain_values(
    admin: PubSubAdmin, publisher: PubSubPublisher
) -> None:
    from datetime import datetime, timedelta, timezone

    topic, sub = unique("plain"), unique("plain-sink")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    before = datetime.now(timezone.utc)
    publisher.publish(topic, [Message(b"v", {"k": "v"})])

    (received,) = pull_all(admin, sub, 1)

    assert type(received.data) is bytes and received.attributes == {"k": "v"}
    assert type(received.attributes) is dict and type(received.ack_id) is str
    assert received.publish_time is not None and received.publish_time.utcoffset() == timedelta(0)
    assert before - timedelta(minutes=1) < received.publish_time < datetime.now(timezone.utc) + timedelta(minutes=1)
    assert type(received.publish_micros) is int
    assert received.publish_time == datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=received.publish_micros)
    assert received.delivery_attempt == 0  # no dead-letter policy on this subscription


def test_push_subscription_with_and_without_a_retry_policy(admin: PubSubAdmin) -> None:
    from dataplatform.adapters.pubsub import RetrySettings

    topic = unique("push")
    admin.ensure_topic(topic)
    plain, backoff = unique("push-plain"), unique("push-backoff")
    assert admin.ensure_push_subscription(plain, topic, "http://127.0.0.1:9/", retry=None) is True
    assert admin.ensure_push_subscription(backoff, topic, "http://127.0.0.1:9/", retry=RetrySettings(10, 60)) is True

    def stored(name: str) -> Any:
        return admin.subscriber.get_subscription(request={"subscription": admin.subscription_path(name)}, timeout=10)

    assert stored(plain).push_config.push_endpoint == "http://127.0.0.1:9/"
    assert "retry_policy" not in stored(plain)
    assert stored(backoff).retry_policy.maximum_backoff.total_seconds() == 60


def test_publish_splits_into_requests_by_count_and_size_and_returns_ids_in_order(admin: PubSubAdmin) -> None:
    topic, sub = unique("split"), unique("split-sink")
    admin.ensure_topic(topic)
    admin.ensure_pull_subscription(sub, topic)
    publisher = PubSubPublisher(admin.project, max_messages=7, max_bytes=3_000, timeout=30)
    messages = [Message(str(i).encode() * (400 if i % 5 == 0 else 1), {"n": str(i)}) for i in range(40)]
    try:
        ids = publisher.publish(topic, messages)
    finally:
        publisher.close()

    assert len(set(ids)) == 40
    got = {m.message_id: m for m in pull_all(admin, sub, 40)}
    assert [got[message_id].data for message_id in ids] == [m.data for m in messages]
    assert [got[message_id].attributes["n"] for message_id in ids] == [str(i) for i in range(40)]
