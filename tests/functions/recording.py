"""Test helpers for the delivery use cases: a recording Publisher and ready-wired dependencies.

Unit tests only. The dependencies are the real ones (catalog, Anonymizer, KeyService,
PlatformKeys on a local Tink key file, compiled Avro codecs) except the storage and
messaging ports, which are the in-memory fakes of tests/fakes.py and `RecordingPublisher`.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cloudevents.http import CloudEvent

from dataplatform.compile.avro_codec import codec_for
from dataplatform.definitions.models import EventSchema
from dataplatform.errors import PlatformError, TransientError
from dataplatform.pipeline.anonymize_handler import AnonymizeDeps
from dataplatform.pipeline.collect import CollectDeps
from dataplatform.pipeline.failed_events import FailedEvent
from dataplatform.ports import Clock, Message
from dataplatform.privacy.anonymizer import Anonymizer
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import PlatformKeys
from tests.fakes import FixedClock, MemoryKeyStore
from tests.fixtures.privacy.keys import platform_keys

API_KEY = "test-client-key-0123456789"
PUBSUB_CE_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


class RecordingPublisher:
    """ports.Publisher that keeps every published message by topic (thread-safe).

    `fail_topics` makes publishing to those topics raise `error` (a TransientError by
    default), after recording nothing for them, as a real failed publish would.
    """

    def __init__(self, fail_topics: Iterable[str] = (), error: BaseException | None = None) -> None:
        self.published: dict[str, list[Message]] = {}
        self.calls: list[tuple[str, int]] = []
        self.fail_topics = set(fail_topics)
        self.error = error
        self._lock = threading.Lock()
        self._next_id = 0

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        with self._lock:
            self.calls.append((topic, len(messages)))
            if topic in self.fail_topics:
                raise self.error or TransientError(f"publishing to Pub/Sub topic {topic!r} failed: Unavailable")
            ids = []
            for message in messages:
                self.published.setdefault(topic, []).append(message)
                self._next_id += 1
                ids.append(str(self._next_id))
            return ids

    def messages(self, topic: str) -> list[Message]:
        with self._lock:
            return list(self.published.get(topic, []))

    def failed_events(self) -> list[FailedEvent]:
        return [FailedEvent.from_json_bytes(m.data) for m in self.messages("failed-events")]

    def all_bytes(self) -> bytes:
        with self._lock:
            return b"".join(m.data + repr(dict(m.attributes)).encode() for ms in self.published.values() for m in ms)


def platform(directory: Path) -> PlatformKeys:
    return platform_keys(directory)


def collect_deps(
    schemas: Iterable[EventSchema],
    keys: PlatformKeys,
    publisher: RecordingPublisher,
    clock: Clock | None = None,
    api_keys: Sequence[str] = (API_KEY,),
) -> CollectDeps:
    return CollectDeps.create(schemas, api_keys, publisher, keys, clock or FixedClock())


def anonymize_deps(
    schemas: Sequence[EventSchema],
    keys: PlatformKeys,
    publisher: Any,
    store: MemoryKeyStore | None = None,
    clock: Clock | None = None,
) -> AnonymizeDeps:
    clock = clock or FixedClock()
    service = KeyService(store if store is not None else MemoryKeyStore(), keys, clock)
    anonymizer = Anonymizer(schemas, service, keys, clock)
    codecs = {schema.key: codec_for(schema) for schema in schemas}
    return AnonymizeDeps(anonymizer, publisher, codecs, keys, clock)


def push_body(data: bytes, attributes: dict[str, str] | None = None, message_id: str = "1001") -> dict[str, Any]:
    """The JSON body the Pub/Sub emulator (and Pub/Sub) POSTs to a push endpoint."""
    return {
        "message": {
            "data": base64.b64encode(data).decode("ascii"),
            "attributes": attributes or {},
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2024-05-01T12:00:01.123Z",
            "publish_time": "2024-05-01T12:00:01.123Z",
        },
        "subscription": "projects/dataplatform-local/subscriptions/track_played_v1-raw-anonymize",
    }


def push_event(data: bytes, attributes: dict[str, str] | None = None, message_id: str = "1001") -> CloudEvent:
    """The CloudEvent functions-framework makes of a push (see tests/functions/test_main.py)."""
    body = push_body(data, attributes, message_id)
    message = {k: body["message"][k] for k in ("data", "attributes", "messageId", "publishTime")}
    return CloudEvent(
        {"type": PUBSUB_CE_TYPE, "source": "//pubsub.googleapis.com/", "id": message_id},
        {"message": {"@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage", **message}},
    )


class BrokenPublisher:
    """A publisher whose failure is a bug, not an outage (must not be turned into a 503)."""

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        raise PlatformError(f"publisher misconfigured for {topic!r}")
