"""The Pub/Sub topology of the local stack, planned from the catalog and created on the emulator.

In GCP, Pulumi (infra/) creates the topics and subscriptions and the BigQuery subscriptions
load the warehouse. Locally the same flow needs the same topics, plus pull subscriptions for
the runtime (local/runtime.py), which plays the BigQuery subscriptions and the dead-letter
drains. Per event schema (key = `<name>_v<major>`):

| what | name | kind |
|---|---|---|
| raw topic (collect publishes raw batches) | `<key>-raw` | topic |
| clean topic (Avro BINARY, schema `<key>`) | `<key>` | topic |
| dead-letter topic of the raw subscription | `<key>-raw-dead-letter` | topic |
| raw → anonymize function | `<key>-raw-anonymize` | push, dead letter after `max_delivery_attempts` |
| "BigQuery subscription" → `events.<key>` | `<key>-bq` | pull (runtime sink) |
| dead-letter drain → `platform.failed_events` | `<key>-raw-dead-letter-drain` | pull (runtime) |

and once: topic `failed-events` with the pull subscription `failed-events-bq` →
`platform.failed_events`.

Redelivery, measured on this emulator (cloud-pubsub-emulator 0.8.x): without a retry policy
a nacked push (5xx, refused connection) is redelivered about once a second; WITH a retry
policy the emulator strands messages after two or three failed attempts (they are neither
redelivered nor dead-lettered for minutes). So local push subscriptions get NO retry policy,
and the redelivery *time* a deployment tolerates comes from the number of attempts instead:
`LOCAL_MAX_DELIVERY_ATTEMPTS` = 30 attempts ≈ 30 s during which the anonymize function may
be down (a crash and restart) before its messages are dead-lettered. (In GCP, 5 attempts
with a 10 s–600 s exponential backoff tolerate minutes.) A message that is dead-lettered
anyway is not lost: the drain records each event of it as a failed event (`dead_lettered`).

Everything is created idempotently (AlreadyExists is success), so `local up` can apply it
again; subscriptions are created BEFORE anything is published (a topic without
subscriptions drops messages), sinks first, push subscriptions last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from dataplatform.compile.avro import avro_schema_json
from dataplatform.definitions.models import EventSchema
from dataplatform.errors import PlatformError

FAILED_EVENTS_TOPIC = "failed-events"
FAILED_EVENTS_SUBSCRIPTION = "failed-events-bq"
FAILED_EVENTS_TABLE = "platform.failed_events"
LOCAL_MAX_DELIVERY_ATTEMPTS = 30
PUSH_ACK_DEADLINE_SECONDS = 60
"""How long the emulator waits for the anonymize function's answer before redelivering."""
SINK_ACK_DEADLINE_SECONDS = 30
"""How long a pulled message may take to be inserted before it is redelivered (a batch
takes well under a second; a pull whose response was lost comes back after this)."""

SinkKind = Literal["events", "failed", "dead_letter"]


def raw_topic(schema: EventSchema) -> str:
    return schema.raw_topic


def clean_topic(schema: EventSchema) -> str:
    return schema.clean_topic


def dead_letter_topic(schema: EventSchema) -> str:
    return f"{schema.raw_topic}-dead-letter"


def push_subscription(schema: EventSchema) -> str:
    return f"{schema.raw_topic}-anonymize"


def sink_subscription(schema: EventSchema) -> str:
    return f"{schema.key}-bq"


def drain_subscription(schema: EventSchema) -> str:
    return f"{dead_letter_topic(schema)}-drain"


@dataclass(frozen=True)
class TopicPlan:
    name: str
    schema_id: str | None = None
    avro_json: str | None = None


@dataclass(frozen=True)
class PushPlan:
    """A push subscription to the anonymize function, dead-lettering after N attempts."""

    name: str
    topic: str
    endpoint: str
    dead_letter_topic: str
    max_delivery_attempts: int


@dataclass(frozen=True)
class SinkPlan:
    """A pull subscription the runtime loads into a warehouse table."""

    name: str
    topic: str
    kind: SinkKind
    table_ref: str
    event_key: str | None
    """The event schema key for `events` and `dead_letter` sinks; None for failed events."""


@dataclass(frozen=True)
class Topology:
    topics: tuple[TopicPlan, ...]
    sinks: tuple[SinkPlan, ...]
    pushes: tuple[PushPlan, ...]

    def sink(self, name: str) -> SinkPlan:
        for sink in self.sinks:
            if sink.name == name:
                return sink
        raise PlatformError(f"no sink subscription {name!r} in the local topology")


def plan_topology(
    schemas: Iterable[EventSchema],
    anonymize_url: str | None,
    *,
    max_delivery_attempts: int = LOCAL_MAX_DELIVERY_ATTEMPTS,
) -> Topology:
    """Every topic and subscription of the catalog. Without `anonymize_url`, no push
    subscriptions (the runtime only needs the sinks)."""
    topics: list[TopicPlan] = [TopicPlan(FAILED_EVENTS_TOPIC)]
    sinks: list[SinkPlan] = [
        SinkPlan(FAILED_EVENTS_SUBSCRIPTION, FAILED_EVENTS_TOPIC, "failed", FAILED_EVENTS_TABLE, None)
    ]
    pushes: list[PushPlan] = []
    for schema in sorted(schemas, key=lambda s: s.key):
        topics.append(TopicPlan(raw_topic(schema)))
        topics.append(TopicPlan(clean_topic(schema), schema_id=schema.key, avro_json=avro_schema_json(schema)))
        topics.append(TopicPlan(dead_letter_topic(schema)))
        sinks.append(SinkPlan(sink_subscription(schema), clean_topic(schema), "events", schema.table_ref, schema.key))
        sinks.append(
            SinkPlan(drain_subscription(schema), dead_letter_topic(schema), "dead_letter", FAILED_EVENTS_TABLE, schema.key)
        )
        if anonymize_url is not None:
            pushes.append(
                PushPlan(
                    push_subscription(schema), raw_topic(schema), anonymize_url, dead_letter_topic(schema),
                    max_delivery_attempts,
                )
            )
    return Topology(tuple(topics), tuple(sinks), tuple(pushes))


class Admin(Protocol):
    """What applying a topology needs from `adapters.pubsub.PubSubAdmin`."""

    def ensure_schema(self, schema_id: str, avro_json: str) -> bool: ...

    def ensure_topic(self, topic: str, *, schema_id: str | None = None, encoding: str = "BINARY") -> bool: ...

    def ensure_pull_subscription(
        self, name: str, topic: str, *, ack_deadline: int = 60, dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
    ) -> bool: ...

    def ensure_push_without_retry_policy(
        self, name: str, topic: str, endpoint: str, *, dead_letter_topic: str, max_delivery_attempts: int,
        ack_deadline: int,
    ) -> bool: ...


def apply_topology(admin: Admin, topology: Topology) -> dict[str, bool]:
    """Create what is missing; resource name → True if created now (False: it existed)."""
    created: dict[str, bool] = {}
    for topic in topology.topics:
        if topic.schema_id is not None and topic.avro_json is not None:
            created[f"schema:{topic.schema_id}"] = admin.ensure_schema(topic.schema_id, topic.avro_json)
        created[f"topic:{topic.name}"] = admin.ensure_topic(topic.name, schema_id=topic.schema_id)
    for sink in topology.sinks:
        created[f"subscription:{sink.name}"] = admin.ensure_pull_subscription(
            sink.name, sink.topic, ack_deadline=SINK_ACK_DEADLINE_SECONDS
        )
    for push in topology.pushes:
        created[f"subscription:{push.name}"] = admin.ensure_push_without_retry_policy(
            push.name, push.topic, push.endpoint, dead_letter_topic=push.dead_letter_topic,
            max_delivery_attempts=push.max_delivery_attempts, ack_deadline=PUSH_ACK_DEADLINE_SECONDS,
        )
    return created


class EmulatorAdmin:
    """`Admin` over `PubSubAdmin`: push subscriptions are made without a retry policy.

    A retry policy strands messages on the emulator (see the module docstring), so every
    push subscription of the local stack passes `retry=None`; the rest is delegated as is.
    """

    def __init__(self, admin: object) -> None:
        self._admin = admin

    def __getattr__(self, name: str) -> object:
        return getattr(self._admin, name)

    def ensure_push_without_retry_policy(
        self, name: str, topic: str, endpoint: str, *, dead_letter_topic: str, max_delivery_attempts: int,
        ack_deadline: int,
    ) -> bool:
        return bool(
            self._admin.ensure_push_subscription(  # type: ignore[attr-defined]
                name, topic, endpoint, dead_letter_topic=dead_letter_topic,
                max_delivery_attempts=max_delivery_attempts, ack_deadline=ack_deadline, retry=None,
            )
        )
