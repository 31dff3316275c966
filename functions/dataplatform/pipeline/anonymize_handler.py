"""The `anonymize` function's body: one Pub/Sub push (as a CloudEvent) → clean and failed topics.

functions-framework turns the Pub/Sub push request `{"message": {...}, "subscription": ...}`
into a CloudEvent of type `google.cloud.pubsub.topic.v1.messagePublished` whose data is
`{"message": {"data": <base64>, "attributes": {...}, "messageId", "publishTime"}}` (in GCP
the Eventarc trigger delivers the same shape, plus `subscription`). `handle_push`:

1. decodes the message (base64 data, attributes, id, publish time);
2. runs `privacy.anonymizer.Anonymizer` over it (validation, privacy policies, keys);
3. encodes each clean row as Avro BINARY (`compile.avro_codec`) and publishes it to the
   clean topic `<name>_v<major>`, and publishes each `FailedEvent` as JSON to
   `failed-events` — all topics at once, waiting for every future;
4. returns, so the function answers 2xx and Pub/Sub drops the message.

Delivery semantics (at-least-once, nothing lost, nothing retried forever):
- A TransientError (key store, KMS, publish) propagates: the function answers 500 and
  Pub/Sub redelivers the whole message later. Rows already published are published again;
  readers dedupe on event_id.
- A poison message (not base64, not JSON, not the raw batch envelope) is recorded as ONE
  failed event (`invalid_json`, the raw bytes quarantined) and acknowledged: retrying it
  cannot help.
- Anything else (a bug, a configuration error) also propagates, so it is loud in the logs;
  after the subscription's max delivery attempts the message goes to the dead-letter topic,
  whose drain records it in `platform.failed_events`.

Logs name the message id, the event type attribute and the counts; never payload values.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import pybase64

from dataplatform.compile.avro_codec import AvroCodec
from dataplatform.pipeline.collect import FAILED_EVENTS_TOPIC, failed_event_message, publish_all
from dataplatform.pipeline.failed_events import FailedEvent
from dataplatform.ports import Clock, Message, Publisher
from dataplatform.privacy.anonymizer import AnonymizeCounts, AnonymizeResult

logger = logging.getLogger(__name__)


class Anonymizes(Protocol):
    """What the handler needs from `privacy.anonymizer.Anonymizer`."""

    def anonymize(self, messages: Sequence[Message]) -> AnonymizeResult: ...


class Quarantine(Protocol):
    def quarantine_encrypt(self, data: bytes, event_id: str) -> bytes: ...


@dataclass(frozen=True)
class AnonymizeDeps:
    """Everything `handle_push` uses; built once per process by `settings.py`."""

    anonymizer: Anonymizes
    publisher: Publisher
    codecs: Mapping[str, AvroCodec]
    """Clean-topic codec by event key (`track_played_v1`), one per schema of the catalog."""
    platform: Quarantine
    clock: Clock
    failed_topic: str = FAILED_EVENTS_TOPIC


@dataclass(frozen=True)
class PushMessage:
    """The Pub/Sub message inside a push CloudEvent."""

    message_id: str | None
    publish_time: str | None
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HandleResult:
    message_id: str | None
    counts: AnonymizeCounts
    published: Mapping[str, int]
    """Topic → messages published there."""


class PoisonMessage(Exception):
    """The push body holds no decodable Pub/Sub message; `detail` says why (never its content)."""

    def __init__(self, detail: str, raw: bytes, message_id: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.raw = raw
        self.message_id = message_id


def decode_push(cloud_event: Any) -> PushMessage:
    """The Pub/Sub message of a push CloudEvent; PoisonMessage when there is none."""
    data = getattr(cloud_event, "data", None)
    if isinstance(data, (bytes, str)):
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise PoisonMessage("the CloudEvent data is not JSON; expected a Pub/Sub push body", raw) from None
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise PoisonMessage(
            "the CloudEvent data has no Pub/Sub \"message\" object; expected a Pub/Sub push body",
            _dump(data),
        )
    message = data["message"]
    message_id = message.get("messageId") or message.get("message_id")
    message_id = message_id if isinstance(message_id, str) else None
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise PoisonMessage("the Pub/Sub message's data is not a base64 string", _dump(message), message_id)
    try:
        payload = pybase64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PoisonMessage("the Pub/Sub message's data is not valid base64", encoded.encode("utf-8", "surrogatepass"), message_id) from None
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        attributes = {}
    publish_time = message.get("publishTime") or message.get("publish_time")
    return PushMessage(
        message_id=message_id,
        publish_time=publish_time if isinstance(publish_time, str) else None,
        data=payload,
        attributes={str(k): str(v) for k, v in attributes.items()},
    )


def handle_push(cloud_event: Any, deps: AnonymizeDeps) -> HandleResult:
    """Anonymize one pushed message and publish the results; raise only to get a redelivery."""
    try:
        message = decode_push(cloud_event)
    except PoisonMessage as poison:
        return _record_poison(poison, deps)
    result = deps.anonymizer.anonymize([Message(message.data, message.attributes)])
    batches: dict[str, list[Message]] = {}
    clean_attributes = {"raw_message_id": message.message_id} if message.message_id else {}
    for key, rows in result.rows.items():
        codec = deps.codecs[key]
        encode = codec.encode
        batches[key] = [Message(encode(row), clean_attributes) for row in rows]
    if result.failed:
        batches[deps.failed_topic] = [failed_event_message(f) for f in result.failed]
    publish_all(deps.publisher, batches)
    published = {topic: len(messages) for topic, messages in batches.items()}
    counts = result.counts
    logger.info(
        "anonymize: message %s (%s): %d received, %d clean, %d failed %s",
        message.message_id, message.attributes.get("event_type", "?"),
        counts.received, counts.clean, counts.failed_total, dict(counts.failed) or "",
    )
    return HandleResult(message.message_id, counts, published)


def _record_poison(poison: PoisonMessage, deps: AnonymizeDeps) -> HandleResult:
    """A push that holds no message: one failed event, published, then acknowledged."""
    now = deps.clock.now()
    failed = FailedEvent.create(
        reason="invalid_json",
        detail=poison.detail,
        stage="anonymize",
        received_at=now,
        failed_at=now,
        payload_ciphertext=deps.platform.quarantine_encrypt(poison.raw, ""),
    )
    publish_all(deps.publisher, {deps.failed_topic: [failed_event_message(failed)]})
    logger.warning("anonymize: message %s is poison, recorded as a failed event: %s", poison.message_id, poison.detail)
    counts = AnonymizeCounts(
        received=1, clean=0, failed={"invalid_json": 1}, erased_fields=0, minted_users=0, erased_users=0
    )
    return HandleResult(poison.message_id, counts, {deps.failed_topic: 1})


def _dump(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return repr(value).encode("utf-8", "replace")
