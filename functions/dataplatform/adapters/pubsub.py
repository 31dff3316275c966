"""Pub/Sub on google-cloud-pubsub: the `ports.Publisher` the functions publish with, and the
admin/pull helpers the local stack and the tests use (topics, subscriptions, pull, ack).

Why it is built this way:
- ONE long-lived `PublisherClient` per process (settings.py caches the publisher): the client
  keeps a gRPC channel, so creating one per request would pay a connection per request.
- Batching: a function publishes a whole batch at once and then waits for it, so `publish`
  cuts that batch itself into Publish requests of up to 1,000 messages / 9 MB (under the
  10 MB API limit), built as raw protobuf and sent one after the other through the client's
  generated `publish` (its retry, bounded by `timeout`). The client's own batcher (a future
  and a proto-plus wrapper per message) cost ~9x the CPU a message and bought nothing here:
  no latency to wait for other callers, no futures the caller does not wait for at once.
  Ordering is off (nothing downstream needs order: rows carry event_time).
- `publish` returns only once Pub/Sub has every message (at-least-once), and never hangs past
  its own deadline. Any failure is a `TransientError` naming the topic and the error type,
  never message contents (they are personal data), so Pub/Sub or the client retries.
- Against the emulator (`PUBSUB_EMULATOR_HOST` set) the client library connects to it with
  no credentials by itself; nothing here special-cases it except the schema client.
- Pulls block on the emulator until messages arrive, so every pull is bounded by a
  timeout, and a timeout is "no messages" (`[]`), not an error; `wait=False` does not block
  at all (`PubSubAdmin.pull` says when each is right).

google-cloud imports are lazy (inside functions), so importing this module is free.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from dataplatform.adapters.google_errors import transient_types
from dataplatform.errors import PlatformError, TransientError
from dataplatform.ports import Message

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
MAX_BATCH_MESSAGES = 1000
MAX_BATCH_BYTES = 9_000_000
MAX_BATCH_LATENCY_SECONDS = 0.01
PUBLISH_TIMEOUT_SECONDS = 60.0
ADMIN_TIMEOUT_SECONDS = 30.0
ACK_CHUNK = 1000
"""Ack ids per acknowledge request (the API caps a request at 512 KiB; an id is < 200 B)."""


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """google-cloud failures → TransientError (retry may fix it) or PlatformError (fix config)."""
    from google.api_core import exceptions as gexc

    try:
        yield
    except PlatformError:
        raise
    except transient_types() as exc:
        raise TransientError(
            f"Pub/Sub unavailable while {action}: {type(exc).__name__}; retry later"
        ) from exc
    except gexc.NotFound as exc:
        raise PlatformError(
            f"Pub/Sub: {action} failed: not found ({exc.message}); create the topic or "
            "subscription first (`dataplatform local up` or `pulumi up` creates them)"
        ) from exc
    except gexc.GoogleAPICallError as exc:
        raise PlatformError(
            f"Pub/Sub refused {action}: {type(exc).__name__}: {exc.message}; check the "
            "project, the names and the service account's Pub/Sub roles"
        ) from exc


def _check_id(kind: str, name: str) -> str:
    """Topic/subscription ids: 3–255 chars, starting with a letter (emulator and API agree)."""
    if not (3 <= len(name) <= 255) or not name[0].isalpha() or name.startswith("goog"):
        raise PlatformError(
            f"invalid Pub/Sub {kind} id {name!r}: use 3 to 255 characters starting with a "
            "letter (not 'goog')"
        )
    return name


# --------------------------------------------------------------------------- publishing


class PubSubPublisher:
    """`ports.Publisher` on one long-lived batching `PublisherClient`. Thread-safe."""

    def __init__(
        self,
        project: str,
        client: Any = None,
        *,
        max_messages: int = MAX_BATCH_MESSAGES,
        max_bytes: int = MAX_BATCH_BYTES,
        max_latency: float = MAX_BATCH_LATENCY_SECONDS,
        timeout: float = PUBLISH_TIMEOUT_SECONDS,
    ) -> None:
        if not project:
            raise PlatformError("PubSubPublisher needs a project id (DATAPLATFORM_PROJECT)")
        self._project = project
        self._timeout = timeout
        self._settings = (max_messages, max_bytes, max_latency)
        self._client = client
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PubSubPublisher({self._project!r})"

    @property
    def project(self) -> str:
        return self._project

    @property
    def client(self) -> Any:
        """The underlying `PublisherClient`, created on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        from google.cloud import pubsub_v1
        from google.cloud.pubsub_v1 import types

        max_messages, max_bytes, max_latency = self._settings
        with _translated("creating the publisher client"):
            return pubsub_v1.PublisherClient(
                batch_settings=types.BatchSettings(
                    max_bytes=max_bytes, max_latency=max_latency, max_messages=max_messages
                ),
                publisher_options=types.PublisherOptions(
                    enable_message_ordering=False,
                    retry=self._retry,
                    timeout=self._timeout,
                ),
            )

    def topic_path(self, topic: str) -> str:
        return f"projects/{self._project}/topics/{topic}"

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        """Publish all `messages` to `topic` in batched requests; return the message ids in order.

        The batches are built here as raw protobuf `PublishRequest`s (≤ max_messages and
        ≤ max_bytes each) and sent with the client's own GAPIC `publish`, retry and timeout:
        the batching client's per-message path (a future, a proto-plus wrapper, a batch
        lock per message) cost ~55 µs of CPU a message against ~6 µs (measured), and the
        caller waits for every message anyway, so nothing is gained by its futures.
        """
        if not messages:
            return []
        client = self.client
        path = self.topic_path(_check_id("topic", topic))
        try:
            ids: list[str] = []
            for batch in self._batches(messages):
                request = _PUBLISH_REQUEST.wrap(_PUBLISH_REQUEST.pb()(topic=path, messages=batch))
                response = _gapic_publish(client, request, self._retry, self._timeout)
                ids.extend(response._pb.message_ids)
            if len(ids) != len(messages):
                raise TransientError(
                    f"Pub/Sub topic {topic!r} answered {len(ids)} message id(s) for {len(messages)} message(s); retry"
                )
            return ids
        except PlatformError:
            raise
        except Exception as exc:  # noqa: BLE001 — every publish failure is retryable by the caller
            # The client raises gRPC errors, RetryError at the deadline, timeouts; whatever it
            # is, the messages are not all safely in Pub/Sub: let the caller retry (a missing
            # topic too: it may be being deployed; redelivery then dead-letters).
            from google.api_core import exceptions as gexc

            if isinstance(exc, gexc.NotFound):
                hint = "the topic does not exist: create it (`dataplatform local up` / `pulumi up`)"
            elif isinstance(exc, gexc.InvalidArgument):
                # A retry cannot fix it; raising still gets the input redelivered and, after
                # the last attempt, dead-lettered and recorded as failed events: not lost.
                hint = (
                    "Pub/Sub refused the messages: on a clean topic that means they do not match the "
                    "topic's schema (the function and the topic's schema revision are out of step: "
                    "deploy both from the same definitions)"
                )
            else:
                hint = "retry later (event ids make a retry idempotent downstream)"
            raise TransientError(
                f"publishing {len(messages)} message(s) to Pub/Sub topic {topic!r} failed: "
                f"{type(exc).__name__}; {hint}"
            ) from exc

    def _batches(self, messages: Sequence[Message]) -> Iterator[list[Any]]:
        """Raw `PubsubMessage`s in runs of ≤ max_messages and ≤ max_bytes (one oversized
        message goes alone, and Pub/Sub's refusal of it becomes the error).

        Messages that share one attributes mapping (all the clean messages of a raw batch)
        are copied from one template message (1.2 µs instead of 3.7 for building the map
        again), and sized by an upper bound instead of `ByteSize()` (the field tag and
        two length prefixes, at most 1 + 5 + 5 bytes)."""
        max_messages, max_bytes, _ = self._settings
        make = _PUBSUB_MESSAGE.pb()
        batch: list[Any] = []
        size = 0
        attributes: Any = None
        template = make()
        template_size = 0
        for message in messages:
            if message.attributes is not attributes:
                attributes = message.attributes
                template = make(attributes=attributes)
                template_size = template.ByteSize()
            raw = make()
            raw.CopyFrom(template)
            data = raw.data = bytes(message.data)
            grows = template_size + len(data) + 11
            if batch and (len(batch) >= max_messages or size + grows > max_bytes):
                yield batch
                batch, size = [], 0
            batch.append(raw)
            size += grows
        if batch:
            yield batch

    @property
    def _retry(self) -> Any:
        from google.api_core import exceptions as gexc
        from google.api_core.retry import Retry, if_exception_type

        # The library's default retry (same codes and backoff) runs for up to 10 minutes;
        # a function must answer before its own deadline.
        return Retry(
            initial=0.1,
            maximum=min(60.0, self._timeout),
            multiplier=4,
            predicate=if_exception_type(
                gexc.Aborted,
                gexc.Cancelled,
                gexc.DeadlineExceeded,
                gexc.InternalServerError,
                gexc.ResourceExhausted,
                gexc.ServiceUnavailable,
                gexc.Unknown,
            ),
            timeout=self._timeout,
        )

    def close(self) -> None:
        """Flush pending batches and stop the client's threads (end of process / tests)."""
        if self._client is not None:
            self._client.stop()
            self._client = None


# --------------------------------------------------------------------------- admin, pull


class ReceivedMessage(NamedTuple):
    """A pulled message: what a sink needs to load it and then ack it (a NamedTuple, not a
    frozen dataclass: a sink builds one per message, and that is 4x cheaper)."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_micros: int | None
    """When Pub/Sub accepted it, in microseconds since the epoch (Pub/Sub's own precision;
    what a TIMESTAMP column takes); None only if the server left it unset. An int, not a
    datetime, because a sink needs it as one and building a datetime per message cost more
    than the rest of the message together; `publish_time` is the datetime."""
    delivery_attempt: int
    """1 on first delivery; 0 when the subscription has no dead-letter policy (API rule)."""

    @property
    def publish_time(self) -> datetime | None:
        """When Pub/Sub accepted it (aware UTC); None only if the server left it unset."""
        micros = self.publish_micros
        return None if micros is None else _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class RetrySettings:
    """Push redelivery backoff (Pub/Sub retry policy) and dead-lettering."""

    min_backoff_seconds: float = 10.0
    max_backoff_seconds: float = 600.0


class PubSubAdmin:
    """Topics, subscriptions, schemas, pull and ack: for the local stack, infra checks, tests.

    Every `ensure_*` is idempotent (AlreadyExists is success) and returns whether it
    created something. Note: an existing subscription is not updated to new settings.
    """

    def __init__(
        self,
        project: str,
        publisher: Any = None,
        subscriber: Any = None,
        *,
        timeout: float = ADMIN_TIMEOUT_SECONDS,
    ) -> None:
        if not project:
            raise PlatformError("PubSubAdmin needs a project id (DATAPLATFORM_PROJECT)")
        self._project = project
        self._publisher = publisher
        self._subscriber = subscriber
        self._schemas: Any = None
        self._timeout = timeout
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PubSubAdmin({self._project!r})"

    @property
    def project(self) -> str:
        return self._project

    def topic_path(self, topic: str) -> str:
        return f"projects/{self._project}/topics/{_check_id('topic', topic)}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self._project}/subscriptions/{_check_id('subscription', subscription)}"

    def schema_path(self, schema_id: str) -> str:
        return f"projects/{self._project}/schemas/{schema_id}"

    # ------------------------------------------------------------------ clients

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            with self._lock:
                if self._publisher is None:
                    from google.cloud import pubsub_v1

                    self._publisher = pubsub_v1.PublisherClient()
        return self._publisher

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            with self._lock:
                if self._subscriber is None:
                    self._subscriber = _subscriber_client()
        return self._subscriber

    @property
    def schema_client(self) -> Any:
        if self._schemas is None:
            with self._lock:
                if self._schemas is None:
                    from google.pubsub_v1 import SchemaServiceClient

                    if os.environ.get(EMULATOR_ENV):
                        from google.auth.credentials import AnonymousCredentials

                        self._schemas = SchemaServiceClient(credentials=AnonymousCredentials())
                    else:
                        self._schemas = SchemaServiceClient()
        return self._schemas

    def close(self) -> None:
        """Close the subscriber's channel (the publisher has no background threads here)."""
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None

    # ------------------------------------------------------------------ topics and schemas

    def ensure_schema(self, schema_id: str, avro_json: str) -> bool:
        """An Avro Pub/Sub schema (the clean topics' `compile.avro.avro_schema_json`)."""
        from google.api_core import exceptions as gexc
        from google.pubsub_v1.types import Schema

        schema = Schema(name=self.schema_path(schema_id), type_=Schema.Type.AVRO, definition=avro_json)
        with _translated(f"creating schema {schema_id!r}"):
            try:
                self.schema_client.create_schema(
                    request={"parent": f"projects/{self._project}", "schema": schema, "schema_id": schema_id},
                    timeout=self._timeout,
                )
                return True
            except gexc.AlreadyExists:
                return False

    def ensure_topic(self, topic: str, *, schema_id: str | None = None, encoding: str = "BINARY") -> bool:
        """Create `topic` unless it exists; with `schema_id`, bound to that schema (Avro BINARY).

        Pub/Sub, and the emulator too, then parses every message published to it against the
        schema and refuses a request holding one that does not parse (`InvalidArgument`).
        """
        from google.api_core import exceptions as gexc

        request: dict[str, Any] = {"name": self.topic_path(topic)}
        if schema_id is not None:
            request["schema_settings"] = {"schema": self.schema_path(schema_id), "encoding": encoding}
        with _translated(f"creating topic {topic!r}"):
            try:
                self.publisher.create_topic(request=request, timeout=self._timeout)
                return True
            except gexc.AlreadyExists:
                return False

    def topic_exists(self, topic: str) -> bool:
        from google.api_core import exceptions as gexc

        with _translated(f"reading topic {topic!r}"):
            try:
                self.publisher.get_topic(request={"topic": self.topic_path(topic)}, timeout=self._timeout)
                return True
            except gexc.NotFound:
                return False

    def delete_topic(self, topic: str) -> bool:
        from google.api_core import exceptions as gexc

        with _translated(f"deleting topic {topic!r}"):
            try:
                self.publisher.delete_topic(request={"topic": self.topic_path(topic)}, timeout=self._timeout)
                return True
            except gexc.NotFound:
                return False

    # ------------------------------------------------------------------ subscriptions

    def ensure_push_subscription(
        self,
        name: str,
        topic: str,
        endpoint: str,
        *,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
        ack_deadline: int = 60,
        retry: RetrySettings | None = RetrySettings(),
    ) -> bool:
        """A push subscription POSTing `{"message", "subscription"}` to `endpoint`.

        A non-2xx answer is a nack: Pub/Sub redelivers with exponential backoff between
        `retry.min_backoff_seconds` and `retry.max_backoff_seconds`; after
        `max_delivery_attempts` (5–100) the message goes to `dead_letter_topic` (created
        here when missing) instead of being retried forever.

        `retry=None` sets no retry policy ("redeliver immediately"): the emulator needs it,
        because with a policy it strands nacked messages (see `local/topology.py`).
        """
        request = self._subscription_request(name, topic, ack_deadline, dead_letter_topic, max_delivery_attempts)
        request["push_config"] = {"push_endpoint": endpoint}
        if retry is not None:
            request["retry_policy"] = {
                "minimum_backoff": _duration(retry.min_backoff_seconds),
                "maximum_backoff": _duration(retry.max_backoff_seconds),
            }
        return self._create_subscription(name, request)

    def ensure_pull_subscription(
        self,
        name: str,
        topic: str,
        *,
        ack_deadline: int = 60,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
    ) -> bool:
        """A pull subscription (the local "BigQuery subscription" sinks, drains, tests)."""
        request = self._subscription_request(name, topic, ack_deadline, dead_letter_topic, max_delivery_attempts)
        return self._create_subscription(name, request)

    def delete_subscription(self, name: str) -> bool:
        from google.api_core import exceptions as gexc

        with _translated(f"deleting subscription {name!r}"):
            try:
                self.subscriber.delete_subscription(
                    request={"subscription": self.subscription_path(name)}, timeout=self._timeout
                )
                return True
            except gexc.NotFound:
                return False

    def _subscription_request(
        self, name: str, topic: str, ack_deadline: int, dead_letter_topic: str | None, attempts: int
    ) -> dict[str, Any]:
        if not 10 <= ack_deadline <= 600:
            raise PlatformError(f"subscription {name!r}: ack_deadline {ack_deadline}s must be 10 to 600 seconds")
        request: dict[str, Any] = {
            "name": self.subscription_path(name),
            "topic": self.topic_path(topic),
            "ack_deadline_seconds": ack_deadline,
        }
        if dead_letter_topic is not None:
            if not 5 <= attempts <= 100:
                raise PlatformError(
                    f"subscription {name!r}: max_delivery_attempts {attempts} must be 5 to 100 (Pub/Sub's range)"
                )
            self.ensure_topic(dead_letter_topic)
            request["dead_letter_policy"] = {
                "dead_letter_topic": self.topic_path(dead_letter_topic),
                "max_delivery_attempts": attempts,
            }
        return request

    def _create_subscription(self, name: str, request: dict[str, Any]) -> bool:
        from google.api_core import exceptions as gexc

        with _translated(f"creating subscription {name!r}"):
            try:
                self.subscriber.create_subscription(request=request, timeout=self._timeout)
                return True
            except gexc.AlreadyExists:
                return False

    # ------------------------------------------------------------------ pull / ack

    def pull(
        self, subscription: str, max_messages: int = 1000, timeout: float = 5.0, *, wait: bool = True
    ) -> list[ReceivedMessage]:
        """Up to `max_messages` messages, waiting at most `timeout` seconds; [] when none came.

        `wait=False` asks only for what is there now (`return_immediately`): nothing waits
        on the server. A waiting pull is answered by the emulator just before its deadline
        (~1 s before), but on a saturated machine the answer can arrive after the client
        gave up: the messages it carried come back only after the ack deadline. So code that
        pulls under load (the local sinks, the benchmark) pulls with `wait=False` and waits
        with a waiting pull only when idle.
        """
        from google.api_core import exceptions as gexc

        request = {"subscription": self.subscription_path(subscription), "max_messages": max_messages}
        if not wait:
            request["return_immediately"] = True
        with _translated(f"pulling from {subscription!r}"):
            try:
                response = self.subscriber.pull(
                    request=request, timeout=timeout if wait else max(timeout, self._timeout), retry=None
                )
            except gexc.DeadlineExceeded:
                return []
        # The raw protobuf, not the proto-plus wrappers: wrapping every field access costs
        # ~34 µs a message against ~5 µs (measured), a third of a sink's CPU at volume.
        return [_received(raw) for raw in response._pb.received_messages]

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        """Acknowledge (in chunks of `ACK_CHUNK`): the messages are done and will not come back."""
        path = self.subscription_path(subscription)
        for start in range(0, len(ack_ids), ACK_CHUNK):
            chunk = list(ack_ids[start : start + ACK_CHUNK])
            # A raw protobuf request: proto-plus would convert the ids one by one (~2 µs each).
            request = _ACK_REQUEST.wrap(_ACK_REQUEST.pb()(subscription=path, ack_ids=chunk))
            with _translated(f"acknowledging {len(chunk)} message(s) on {subscription!r}"):
                self.subscriber.acknowledge(request=request, timeout=self._timeout)

    def nack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        """Give messages back for redelivery now (ack deadline 0), e.g. after a failed load."""
        path = self.subscription_path(subscription)
        for start in range(0, len(ack_ids), ACK_CHUNK):
            chunk = list(ack_ids[start : start + ACK_CHUNK])
            with _translated(f"nacking {len(chunk)} message(s) on {subscription!r}"):
                self.subscriber.modify_ack_deadline(
                    request={"subscription": path, "ack_ids": chunk, "ack_deadline_seconds": 0},
                    timeout=self._timeout,
                )


class _LazyType:
    """A google-cloud proto-plus type, imported on first use (imports stay lazy)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._type: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._type is None:
            from google.pubsub_v1.types import pubsub

            self._type = getattr(pubsub, self._name)
        return getattr(self._type, attribute)


_PUBSUB_MESSAGE = _LazyType("PubsubMessage")
_PUBLISH_REQUEST = _LazyType("PublishRequest")
_ACK_REQUEST = _LazyType("AcknowledgeRequest")


def _gapic_publish(client: Any, request: Any, retry: Any, timeout: float) -> Any:
    """One Publish RPC through the generated client (not the batching `publish` override)."""
    from google.pubsub_v1.services.publisher.client import PublisherClient as GapicPublisherClient

    return GapicPublisherClient.publish(client, request=request, retry=retry, timeout=timeout)


def _subscriber_client() -> Any:
    """A `SubscriberClient` whose channel accepts pull responses of any size.

    Against Pub/Sub the library's channel has no message size limit, but against the
    emulator it opens a bare `grpc.insecure_channel`, whose 4 MB receive limit refuses a
    pull of a few big messages (RESOURCE_EXHAUSTED, forever: they come back every pull).
    So with `PUBSUB_EMULATOR_HOST` the channel is built here with the library's own limits.
    """
    from google.cloud import pubsub_v1

    host = os.environ.get(EMULATOR_ENV)
    if not host:
        return pubsub_v1.SubscriberClient()
    import grpc
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    channel = grpc.insecure_channel(host, options=_UNLIMITED_MESSAGES)
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(host=host, channel=channel))


_UNLIMITED_MESSAGES = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
"""What the library's own (non-emulator) channel sets: Pub/Sub bounds the sizes itself."""


def _received(raw: Any) -> ReceivedMessage:
    """One `google.pubsub.v1.ReceivedMessage` protobuf → `ReceivedMessage` (~2 µs: the
    publish time as int microseconds, not a datetime, and the attributes copied key by key,
    a little faster than `dict()` of a protobuf map)."""
    message = raw.message
    attributes = message.attributes
    published = message.publish_time if message.HasField("publish_time") else None
    return ReceivedMessage(  # positional: the cheapest construction, once per message
        raw.ack_id,
        message.message_id,
        message.data,
        {key: attributes[key] for key in attributes},
        None if published is None else published.seconds * 1_000_000 + published.nanos // 1000,
        raw.delivery_attempt,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": int(round((seconds - whole) * 1e9))}
