"""The local Pub/Sub topology planned from the catalog, and the order it is created in."""

from __future__ import annotations

from typing import Any

import pytest

from dataplatform.compile.avro import avro_schema_json
from dataplatform.errors import PlatformError
from dataplatform.local.topology import (
    FAILED_EVENTS_SUBSCRIPTION,
    FAILED_EVENTS_TABLE,
    FAILED_EVENTS_TOPIC,
    LOCAL_MAX_DELIVERY_ATTEMPTS,
    PUSH_ACK_DEADLINE_SECONDS,
    SINK_ACK_DEADLINE_SECONDS,
    EmulatorAdmin,
    apply_topology,
    plan_topology,
)

URL = "http://127.0.0.1:9999/"


def test_names_per_event_schema(catalog: Any) -> None:
    plan = plan_topology(catalog.schemas, URL)
    schema = catalog.schema("track_played")
    topics = {t.name for t in plan.topics}
    assert {"track_played_v1-raw", "track_played_v1", "track_played_v1-raw-dead-letter", FAILED_EVENTS_TOPIC} <= topics
    assert len(topics) == 3 * len(catalog.schemas) + 1
    clean = next(t for t in plan.topics if t.name == "track_played_v1")
    assert clean.schema_id == "track_played_v1" and clean.avro_json == avro_schema_json(schema)
    push = next(p for p in plan.pushes if p.topic == "track_played_v1-raw")
    assert (push.name, push.endpoint, push.dead_letter_topic, push.max_delivery_attempts) == (
        "track_played_v1-raw-anonymize", URL, "track_played_v1-raw-dead-letter", LOCAL_MAX_DELIVERY_ATTEMPTS,
    )
    sinks = {s.name: s for s in plan.sinks}
    assert sinks["track_played_v1-bq"].table_ref == "events.track_played_v1"
    assert sinks["track_played_v1-bq"].kind == "events" and sinks["track_played_v1-bq"].event_key == "track_played_v1"
    drain = sinks["track_played_v1-raw-dead-letter-drain"]
    assert (drain.topic, drain.kind, drain.table_ref) == ("track_played_v1-raw-dead-letter", "dead_letter", FAILED_EVENTS_TABLE)
    failed = sinks[FAILED_EVENTS_SUBSCRIPTION]
    assert (failed.topic, failed.kind, failed.table_ref, failed.event_key) == (FAILED_EVENTS_TOPIC, "failed", FAILED_EVENTS_TABLE, None)
    assert plan.sink("track_played_v1-bq") is sinks["track_played_v1-bq"]


def test_without_a_function_url_there_are_only_sinks(catalog: Any) -> None:
    plan = plan_topology(catalog.schemas, None)
    assert plan.pushes == () and len(plan.sinks) == 2 * len(catalog.schemas) + 1


def test_unknown_sink_is_named(catalog: Any) -> None:
    with pytest.raises(PlatformError, match="no sink subscription 'nope-bq'"):
        plan_topology(catalog.schemas, None).sink("nope-bq")


class RecordingAdmin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def ensure_schema(self, schema_id: str, avro_json: str) -> bool:
        self.calls.append(("schema", schema_id))
        return True

    def ensure_topic(self, topic: str, *, schema_id: str | None = None, encoding: str = "BINARY") -> bool:
        self.calls.append(("topic", topic, str(schema_id)))
        return True

    def ensure_pull_subscription(self, name: str, topic: str, *, ack_deadline: int = 60, **_: Any) -> bool:
        self.calls.append(("pull", name, topic, str(ack_deadline)))
        return False

    def ensure_push_without_retry_policy(self, name: str, topic: str, endpoint: str, **kwargs: Any) -> bool:
        self.calls.append(("push", name, topic, endpoint, str(kwargs["ack_deadline"])))
        return True


def test_topics_then_sinks_then_pushes(catalog: Any) -> None:
    admin = RecordingAdmin()
    created = apply_topology(admin, plan_topology(catalog.schemas, URL))
    kinds = [c[0] for c in admin.calls]
    last_topic = max(i for i, k in enumerate(kinds) if k == "topic")
    first_pull, last_pull = kinds.index("pull"), max(i for i, k in enumerate(kinds) if k == "pull")
    first_push = kinds.index("push")
    assert last_topic < first_pull and last_pull < first_push
    for schema in catalog.schemas:
        bound = ("topic", schema.key, schema.key)
        assert admin.calls.index(("schema", schema.key)) < admin.calls.index(bound)
    assert all(c[3] == str(SINK_ACK_DEADLINE_SECONDS) for c in admin.calls if c[0] == "pull")
    assert all(c[4] == str(PUSH_ACK_DEADLINE_SECONDS) for c in admin.calls if c[0] == "push")
    assert created["subscription:track_played_v1-bq"] is False and created["subscription:track_played_v1-raw-anonymize"]


class AdapterLike:
    """The public `PubSubAdmin.ensure_push_subscription` that EmulatorAdmin relies on."""

    def __init__(self) -> None:
        self.created: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def ensure_push_subscription(self, *args: str, **kwargs: Any) -> bool:
        self.created.append((args, kwargs))
        return True

    def ensure_topic(self, topic: str) -> str:
        return f"delegated {topic}"


def test_push_subscriptions_have_no_retry_policy_on_the_emulator() -> None:
    adapter = AdapterLike()
    admin = EmulatorAdmin(adapter)
    assert admin.ensure_push_without_retry_policy(
        "a-raw-anonymize", "a-raw", URL, dead_letter_topic="a-raw-dead-letter", max_delivery_attempts=30, ack_deadline=60
    )
    ((args, kwargs),) = adapter.created
    assert args == ("a-raw-anonymize", "a-raw", URL)
    assert kwargs == {
        "dead_letter_topic": "a-raw-dead-letter", "max_delivery_attempts": 30, "ack_deadline": 60, "retry": None,
    }
    assert admin.ensure_topic("x") == "delegated x"  # type: ignore[attr-defined]
