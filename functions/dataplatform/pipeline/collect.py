"""The collect use case: a client's batch of events in, raw-topic messages out.

`collect` is the platform's front door (the `collect` HTTP function). It stays cheap: it
checks who is calling, the size of the batch and each event's *envelope*, and publishes;
payloads are validated against their schemas later, in `anonymize`, which has the compiled
validators and can record a typed failure per event. So a payload that breaks its schema
is accepted here and fails there as `schema_violation` — still never lost.

Request: `POST` with header `X-Api-Key: <client key>` and body `{"events": [event, ...]}`,
each event `{"event_id", "event_type", "schema_version"?, "event_time", "payload"}`.

Checks, in order (the first failing one answers):
1. API key: compared with every configured key in constant time (`hmac.compare_digest` of
   SHA-256 digests, so neither the key nor its length leaks through timing) → 401 without
   saying why (no detail for unauthenticated callers).
2. Size: at most `max_batch_bytes` (5 MB = 5,000,000 bytes) of body and `max_events`
   (1,000) events → 413 naming the limit.
3. Body: JSON object with exactly the key `events` holding an array → 400 saying what is wrong.
4. Per event, each accepted or rejected on its own (`results` in the response):
   `event_id` string of 1–128 characters; `event_type` a known event type (with "did you
   mean"); `schema_version` an integer major version known for that type — when absent (or null) it
   defaults to the highest major version of the type, and the published event carries it
   explicitly, so a client that never sends it keeps working until it is migrated;
   `event_time` an RFC 3339 timestamp with `Z` or an offset; `payload` an object; no other
   keys; at most `max_event_bytes` (100 KB) of compact JSON as published, i.e. with
   `schema_version` filled in — the anonymizer's measure, so what collect accepts is never
   `too_large` there (→ `too_large`, which wins over any other reason: an oversize event is
   rejected as such).

Accepted events are grouped by event type and major version: ONE message per group per
request to `<name>_v<major>-raw`, carrying the raw batch envelope
`{"received_at": <RFC 3339 UTC>, "events": [...]}`, zstd-compressed (`pipeline/raw_batch.py`
says why), with attributes `event_type` (the key), `batch_id` (one random id per request)
and `content-encoding: zstd`. Rejected events are not dropped: each becomes a
`FailedEvent` (stage "collect", typed reason, detail = path + rule, never a value; the event
itself only as `payload_ciphertext`, encrypted with the platform quarantine key) published
to `failed-events`. Every publish is awaited before answering; if any fails (a
`TransientError`) the answer is 503 and the client retries the WHOLE batch — event ids
make the duplicates harmless (readers dedupe on event_id).

Answer 200: `{"accepted": n, "rejected": m, "results": [{"index", "event_id", "status":
"accepted"} | {"index", "event_id", "status": "rejected", "reason", "detail"}, ...]}` in
request order (`event_id` null when the event had no valid one).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from dataplatform.definitions.messages import did_you_mean
from dataplatform.definitions.models import EventSchema
from dataplatform.errors import TransientError
from dataplatform.pipeline import raw_batch
from dataplatform.pipeline.failed_events import FailedEvent, Reason, format_timestamp
from dataplatform.ports import Clock, Message, Publisher
from dataplatform.privacy.policies import parse_rfc3339

logger = logging.getLogger(__name__)

FAILED_EVENTS_TOPIC = "failed-events"
API_KEY_HEADER = "X-Api-Key"
ENVELOPE_KEYS = ("event_id", "event_type", "schema_version", "event_time", "payload")
REQUIRED_KEYS = ("event_id", "event_type", "event_time", "payload")
MAX_EVENT_ID = 128
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class CollectLimits:
    """Request limits. Bytes are decimal: 5 MB = 5,000,000 bytes, 100 KB = 100,000 bytes.

    `max_event_bytes` equals the anonymizer's `Limits.max_event_bytes`, so an event collect
    accepts is never `too_large` downstream; a batch message stays far below Pub/Sub's 10 MB.
    """

    max_events: int = 1000
    max_batch_bytes: int = 5_000_000
    max_event_bytes: int = 100_000


class Quarantine(Protocol):
    """What collect needs from `privacy.keys.PlatformKeys`."""

    def quarantine_encrypt(self, data: bytes, event_id: str) -> bytes: ...


@dataclass(frozen=True)
class CollectDeps:
    """Everything `collect` uses; built once per process by `settings.py`."""

    versions: Mapping[str, tuple[int, ...]]
    """Event type name → its known major versions, ascending."""
    api_key_digests: tuple[bytes, ...]
    publisher: Publisher
    platform: Quarantine
    clock: Clock
    limits: CollectLimits = CollectLimits()

    @classmethod
    def create(
        cls,
        schemas: Iterable[EventSchema],
        api_keys: Iterable[str],
        publisher: Publisher,
        platform: Quarantine,
        clock: Clock,
        limits: CollectLimits | None = None,
    ) -> CollectDeps:
        versions: dict[str, list[int]] = {}
        for schema in schemas:
            versions.setdefault(schema.name, []).append(schema.version)
        return cls(
            versions={name: tuple(sorted(v)) for name, v in versions.items()},
            api_key_digests=tuple(_digest(key) for key in api_keys if key),
            publisher=publisher,
            platform=platform,
            clock=clock,
            limits=limits or CollectLimits(),
        )


@dataclass(frozen=True)
class CollectResponse:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_flask(self) -> tuple[bytes, int, dict[str, str]]:
        """What a functions-framework HTTP function returns."""
        return orjson.dumps(self.body), self.status, {"Content-Type": "application/json", **self.headers}


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> CollectResponse:
    return CollectResponse(status, {"error": message}, dict(headers or {}))


# --------------------------------------------------------------------------- the use case


def authorized(headers: Mapping[str, str], deps: CollectDeps) -> bool:
    """Whether `X-Api-Key` matches a configured key; every key is compared (constant time)."""
    given = header(headers, API_KEY_HEADER)
    if not given or not deps.api_key_digests:
        return False
    digest = _digest(given)
    ok = False
    for expected in deps.api_key_digests:
        ok |= hmac.compare_digest(digest, expected)
    return ok


def collect(body: bytes, headers: Mapping[str, str], deps: CollectDeps) -> CollectResponse:
    """Check, publish and answer one batch (see the module docstring for the rules)."""
    if not authorized(headers, deps):
        return _unauthorized()
    limits = deps.limits
    if len(body) > limits.max_batch_bytes:
        return _too_large_body(len(body), limits)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _error(400, f"the body is not valid JSON (at byte {exc.pos}); send {{\"events\": [...]}}")
    problem = _body_problem(document)
    if problem is not None:
        return _error(400, problem)
    events: list[Any] = document["events"]
    if len(events) > limits.max_events:
        return _error(
            413,
            f"the batch has {len(events)} events; at most {limits.max_events} are accepted per "
            "request: split it into smaller batches",
        )

    now = deps.clock.now()
    max_bytes = limits.max_event_bytes
    body_may_hold_one = len(body) > max_bytes
    results: list[dict[str, Any]] = []
    groups: dict[str, list[bytes]] = {}
    failed: list[FailedEvent] = []
    for index, event in enumerate(events):
        checked = _check_event(event, deps.versions)
        as_sent: bytes | None = None  # the rejected event's JSON, when it is already at hand
        if not isinstance(checked, _Rejection):
            key, normalized = checked
            # Serialized once: measured here and spliced into the raw batch as it is.
            serialized = orjson.dumps(normalized)
            if len(serialized) <= max_bytes:
                groups.setdefault(key, []).append(serialized)
                results.append({"index": index, "event_id": normalized["event_id"], "status": "accepted"})
                continue
            checked = _too_large(len(serialized), max_bytes)
            as_sent = serialized if normalized is event else None
        elif body_may_hold_one:
            # An oversize event is `too_large` whatever else is wrong with it.
            as_sent = orjson.dumps(event)
            if len(as_sent) > max_bytes:
                checked = _too_large(len(as_sent), max_bytes)
        results.append(
            {"index": index, "event_id": _valid_event_id(event), "status": "rejected", "reason": checked.reason, "detail": checked.detail}
        )
        failed.append(_failed_event(event, checked, now, deps.platform, as_sent))

    batch_id = uuid.uuid4().hex
    received_at = format_timestamp(now)
    batches: dict[str, list[Message]] = {}
    for key, accepted in groups.items():
        data, encoding = raw_batch.encode_serialized(received_at, accepted)
        batches[f"{key}-raw"] = [Message(data, {"event_type": key, "batch_id": batch_id, **encoding})]
    if failed:
        batches[FAILED_EVENTS_TOPIC] = [failed_event_message(f) for f in failed]
    try:
        publish_all(deps.publisher, batches)
    except TransientError as exc:
        logger.warning("collect: batch %s not published, answering 503: %s", batch_id, exc)
        return _error(
            503,
            "the events could not be stored right now; retry the whole batch later "
            "(event ids make retries safe)",
            {"Retry-After": "1"},
        )
    accepted_count = len(events) - len(failed)
    logger.info(
        "collect: batch %s: %d accepted (%s), %d rejected",
        batch_id, accepted_count, ", ".join(f"{k}: {len(v)}" for k, v in groups.items()) or "none", len(failed),
    )
    return CollectResponse(200, {"accepted": accepted_count, "rejected": len(failed), "results": results})


def handle_http(request: Any, deps: CollectDeps) -> tuple[bytes, int, dict[str, str]]:
    """The `collect` Cloud Function over a Flask request: method and size before reading."""
    if request.method != "POST":
        return CollectResponse(405, {"error": "use POST with a JSON body {\"events\": [...]}"}, {"Allow": "POST"}).to_flask()
    if not authorized(request.headers, deps):
        return _unauthorized().to_flask()
    length = request.content_length
    if length is not None and length > deps.limits.max_batch_bytes:
        return _too_large_body(length, deps.limits).to_flask()
    return collect(request.get_data(cache=False), request.headers, deps).to_flask()


def _unauthorized() -> CollectResponse:
    return _error(401, f"missing or invalid API key: send a valid client key in the {API_KEY_HEADER} header")


def _too_large_body(size: int, limits: CollectLimits) -> CollectResponse:
    return _error(
        413,
        f"the body is {size} bytes; at most {limits.max_batch_bytes} bytes are accepted per "
        "request: split the batch",
    )


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively (Flask's headers are; plain dicts are not)."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)


def _body_problem(document: object) -> str | None:
    if not isinstance(document, dict):
        return "the body must be a JSON object {\"events\": [...]}"
    if "events" not in document:
        return "the body has no \"events\" key; send {\"events\": [...]}"
    unknown = [k for k in document if k != "events"]
    if unknown:
        names = ", ".join(repr(k) for k in unknown if _SAFE_NAME.match(k))
        return f"unknown top-level key(s) {names or '(names not shown)'}; the body has exactly one key, \"events\""
    if not isinstance(document["events"], list):
        return "\"events\" must be an array of events"
    return None


# --------------------------------------------------------------------------- one event


@dataclass(frozen=True)
class _Rejection:
    reason: Reason
    detail: str


def _too_large(size: int, limit: int) -> _Rejection:
    return _Rejection("too_large", f"the event is {size} bytes of JSON; the limit is {limit}")


def _check_event(event: object, versions: Mapping[str, tuple[int, ...]]) -> tuple[str, dict[str, Any]] | _Rejection:
    """(schema key, the event with schema_version set) or why its envelope is rejected (the
    size is checked by the caller, on the event as it will be published)."""
    if not isinstance(event, dict):
        return _Rejection(
            "invalid_envelope",
            "$: an event must be a JSON object {event_id, event_type, schema_version, event_time, payload}",
        )
    for key in REQUIRED_KEYS:
        if key not in event:
            return _Rejection("invalid_envelope", f"$.{key}: required envelope field is missing")
    unknown = [k for k in event if k not in ENVELOPE_KEYS]
    if unknown:
        safe = [k for k in unknown if _SAFE_NAME.match(k)]
        names = f" ({', '.join(map(repr, safe))})" if len(safe) == len(unknown) else ""
        return _Rejection(
            "invalid_envelope",
            f"$: unknown envelope field(s){names}; an event has exactly {', '.join(ENVELOPE_KEYS)} "
            "(put event data inside payload)",
        )
    event_id = event["event_id"]
    if not isinstance(event_id, str):
        return _Rejection("invalid_envelope", "$.event_id: expected a string")
    if not 0 < len(event_id) <= MAX_EVENT_ID:
        return _Rejection("invalid_envelope", f"$.event_id: must be 1 to {MAX_EVENT_ID} characters")
    event_type = event["event_type"]
    if not isinstance(event_type, str):
        return _Rejection("invalid_envelope", "$.event_type: expected a string (an event type name)")
    known = versions.get(event_type)
    if known is None:
        if _SAFE_NAME.match(event_type):
            return _Rejection(
                "unknown_event_type",
                f"$.event_type: unknown event type {event_type!r}{did_you_mean(event_type, versions)}; "
                "the catalog has no schema of that name",
            )
        return _Rejection("unknown_event_type", "$.event_type: unknown event type (name not shown: not an event type name)")
    version = event.get("schema_version")
    if version is None:
        version = known[-1]
    elif type(version) is not int:
        return _Rejection("invalid_envelope", "$.schema_version: expected an integer (the schema's major version)")
    elif version not in known:
        return _Rejection(
            "unknown_event_type",
            f"$.schema_version: event type {event_type!r} has no major version {version}; "
            f"known versions: {', '.join(map(str, known))}",
        )
    event_time = event["event_time"]
    if not isinstance(event_time, str) or parse_rfc3339(event_time) is None:
        return _Rejection(
            "invalid_envelope",
            "$.event_time: expected an RFC 3339 timestamp with Z or an offset (e.g. 2024-05-01T12:00:00Z)",
        )
    if not isinstance(event["payload"], dict):
        return _Rejection("invalid_envelope", "$.payload: expected an object")
    if "schema_version" in event and event["schema_version"] is not None:
        normalized = event
    else:
        normalized = {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": version,
            "event_time": event_time,
            "payload": event["payload"],
        }
    return f"{event_type}_v{version}", normalized


def _valid_event_id(event: object) -> str | None:
    if isinstance(event, dict):
        event_id = event.get("event_id")
        if isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID:
            return event_id
    return None


def _failed_event(
    event: object, rejection: _Rejection, now: datetime, platform: Quarantine, as_sent: bytes | None = None
) -> FailedEvent:
    """The failed-event record of a rejected event; its payload is the event as sent
    (`as_sent`: its compact JSON when the caller has it already, e.g. measured for size)."""
    event_id = _valid_event_id(event)
    event_type = version = event_time = None
    if isinstance(event, dict):
        if isinstance(event.get("event_type"), str) and _SAFE_NAME.match(event["event_type"]):
            event_type = event["event_type"]
        if type(event.get("schema_version")) is int and -(2**63) <= event["schema_version"] < 2**63:
            version = event["schema_version"]
        if isinstance(event.get("event_time"), str):
            event_time = parse_rfc3339(event["event_time"])
    return FailedEvent.create(
        reason=rejection.reason,
        detail=rejection.detail,
        stage="collect",
        received_at=now,
        failed_at=now,
        event_id=event_id,
        event_type=event_type,
        schema_version=version,
        event_time=event_time,
        payload_ciphertext=platform.quarantine_encrypt(as_sent if as_sent is not None else orjson.dumps(event), event_id or ""),
    )


def failed_event_message(failed: FailedEvent) -> Message:
    """A `failed-events` topic message: the record as JSON, reason and stage as attributes."""
    return Message(failed.to_json_bytes(), {"reason": failed.reason, "stage": failed.stage})


# --------------------------------------------------------------------------- publishing


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_POOL_WORKERS = 8


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=_POOL_WORKERS, thread_name_prefix="publish")
    return _POOL


def publish_all(publisher: Publisher, batches: Mapping[str, Sequence[Message]]) -> dict[str, list[str]]:
    """Publish to several topics at once and wait for all; topic → message ids.

    `Publisher.publish` waits for its topic's batch, which the client sends after its batch
    latency; publishing topics one after the other would add that latency per topic, so the
    topics are published concurrently (the publisher client is thread-safe). Every publish
    is awaited even when one fails; then the first failure is raised (TransientError, or
    whatever else went wrong — a bug must not be mistaken for a retryable outage).
    """
    work = {topic: list(messages) for topic, messages in batches.items() if messages}
    if not work:
        return {}
    if len(work) == 1:
        ((topic, messages),) = work.items()
        return {topic: publisher.publish(topic, messages)}
    futures: dict[str, Future[list[str]]] = {
        topic: _pool().submit(publisher.publish, topic, messages) for topic, messages in work.items()
    }
    ids: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    for topic, future in futures.items():
        try:
            ids[topic] = future.result()
        except BaseException as exc:  # noqa: BLE001 — collected, re-raised below
            errors.append(exc)
    if errors:
        transient = [e for e in errors if isinstance(e, TransientError)]
        other = [e for e in errors if not isinstance(e, TransientError)]
        raise (other or transient)[0]
    return ids
