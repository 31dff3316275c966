"""The anonymize use case: raw-topic messages in, clean rows and failed events out.

Pure but for its ports (the key service and the platform keys); the Cloud Function in
`functions/main.py` only decodes the CloudEvent, calls `Anonymizer.anonymize`, publishes
the rows and the failed events, and acknowledges.

Every received event ends as exactly one clean row or one `FailedEvent`
(`counts.received == counts.clean + counts.failed_total`, always). A message that is not
the raw batch envelope at all counts as ONE received event (we cannot know how many it
held) and fails as `invalid_json` with the whole message quarantined. The checks, in order
(the first that fails is the reason):

1. `too_large`: the event's compact JSON is over `Limits.max_event_bytes` (measured only
   when the whole message is over the limit, so small batches pay nothing);
2. `invalid_envelope`: not `{event_id, event_type, schema_version, event_time, payload}`
   with the right types (event_id 1–128 chars, event_time RFC 3339 with a zone);
3. `unknown_event_type`: name/major version not in the catalog (with "did you mean");
4. `clock_skew`: event_time more than `Limits.max_clock_skew` after the batch's received_at;
5. `too_late`: event_time's partition has already expired (older than the schema's
   retention, as BigQuery's partition expiration counts it), or the event is older than
   `Limits.max_event_age` at arrival when that is set;
6. `schema_violation`: the payload breaks the schema (validator path + rule), the data
   subject's id is missing/empty, or a policy cannot apply (an "IP" that is no IP).

Then ONE `KeyService.resolve` call for all distinct subjects of the batch's valid events
(new users are minted there; erased users resolve to None and get `ERASED_PSEUDONYM` and
NULL encrypted fields, see `privacy.policies`), and the compiled plans write the rows.

Errors: `TransientError` from the key service propagates (Pub/Sub redelivers the batch;
the at-least-once readers dedupe on event_id). Per-event problems are caught by their
specific types only (`SchemaViolation`, `FieldRejected`), so a bug still fails loudly.
Failed-event details name paths and rules, never payload values; the event itself is kept
only as `payload_ciphertext` (platform quarantine key, associated data = event id or ""):
the event's JSON as parsed and re-serialized compactly (the same JSON value, which replay
needs; byte-exact whitespace is not kept), or the message's raw bytes when the message
itself could not be read.

Clean rows: dict keys in the column order of `compile.bigquery_schema.event_table` minus the
BigQuery-subscription metadata columns: `event_id`, `event_time` and `received_at` (aware
UTC `datetime`; `timestamp_micros` converts for Avro's timestamp-micros), `schema_version`,
then the payload columns from `privacy.policies.Plan`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import orjson

from dataplatform.compile.validator import PayloadValidator, SchemaViolation, compile_validator
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.messages import did_you_mean
from dataplatform.definitions.models import EventSchema
from dataplatform.pipeline import raw_batch
from dataplatform.pipeline.failed_events import FailedEvent, Reason
from dataplatform.ports import Clock, Message
from dataplatform.privacy.policies import ErasedCrypto, FieldRejected, Plan, compile_plan, parse_rfc3339
from dataplatform.privacy.user_keys import UserCrypto

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

RawMessage = Message
"""A message of a `<event>-raw` topic: data = the raw batch envelope JSON, attributes."""

ENVELOPE_KEYS = ("event_id", "event_type", "schema_version", "event_time", "payload")
BATCH_KEYS = frozenset({"received_at", "events"})
MAX_EVENT_ID = 128
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_PARTITION_UNIT = {"DAY": timedelta(days=1), "HOUR": timedelta(hours=1)}


class KeyResolver(Protocol):
    """What the anonymizer needs from `privacy.key_service.KeyService`."""

    minted: int
    """Key records this service has created so far (read before and after `resolve`)."""

    def resolve(self, user_ids: Iterable[str]) -> Mapping[str, UserCrypto | None]: ...


class Keys(Protocol):
    """What the anonymizer needs from `privacy.keys.PlatformKeys`."""

    def keyed_hash(self, value: str) -> str: ...

    def quarantine_encrypt(self, data: bytes, event_id: str) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    """Per-event limits. 100 KB = 100,000 bytes of the event's compact JSON."""

    max_event_bytes: int = 100_000
    max_clock_skew: timedelta = timedelta(minutes=10)
    max_event_age: timedelta | None = None


@dataclass(frozen=True)
class AnonymizeCounts:
    """What happened to one batch. `received == clean + failed_total` always holds."""

    received: int
    clean: int
    failed: Mapping[str, int]
    """Failed events by reason (only reasons that occurred)."""
    erased_fields: int
    """Encrypted values written as NULL (or left out of an array) because the user was erased."""
    minted_users: int
    """Users of the batch who had no key record before it (keys minted now). Read from the
    key service's counter, so batches resolved concurrently in one process may share counts."""
    erased_users: int
    """Distinct users of the batch whose keys were erased (tombstones)."""

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def balanced(self) -> bool:
        return self.received == self.clean + self.failed_total


@dataclass(frozen=True)
class AnonymizeResult:
    rows: Mapping[str, list[dict[str, Any]]]
    """Clean rows by event table key (`track_played_v1`), in arrival order."""
    failed: list[FailedEvent]
    counts: AnonymizeCounts


@dataclass(frozen=True)
class _Compiled:
    schema: EventSchema
    validator: PayloadValidator
    plan: Plan


_Pending = tuple[_Compiled, dict[str, Any], datetime, datetime, "str | None"]
"""A valid event waiting for its subject's keys: (compiled, event, event_time, received_at,
subject). A plain tuple: one is made per event on the hot path."""


@dataclass
class _Batch:
    """Mutable state of one `anonymize` call."""

    now: datetime
    failed: list[FailedEvent] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    received: int = 0


class Anonymizer:
    """Validates and anonymizes raw events; build once per process (compiles every schema)."""

    def __init__(
        self,
        schemas: Catalog | Iterable[EventSchema],
        keys: KeyResolver,
        platform: Keys,
        clock: Clock,
        limits: Limits | None = None,
    ) -> None:
        """`schemas`: the catalog, or the event schemas to accept (others are unknown types)."""
        all_schemas = schemas.schemas if isinstance(schemas, Catalog) else tuple(schemas)
        self._keys = keys
        self._platform = platform
        self._clock = clock
        self._limits = limits or Limits()
        self._compiled: dict[tuple[str, int], _Compiled] = {}
        for schema in all_schemas:
            self._compiled[(schema.name, schema.version)] = _Compiled(
                schema, compile_validator(schema), compile_plan(schema, platform)
            )
        self._versions: dict[str, list[int]] = {}
        for name, version in sorted(self._compiled):
            self._versions.setdefault(name, []).append(version)

    # ------------------------------------------------------------------ the use case

    def anonymize(self, messages: Sequence[RawMessage]) -> AnonymizeResult:
        now = self._clock.now()
        batch = _Batch(now=now)
        expired_before = {key: _expiry_threshold(now, c.schema) for key, c in self._compiled.items()}
        for message in messages:
            self._admit_message(message, batch, expired_before)

        subjects = {pending[4] for pending in batch.pending}
        subjects.discard(None)
        minted_before = self._keys.minted
        keys = self._keys.resolve(subjects) if subjects else {}
        minted = self._keys.minted - minted_before
        erased = ErasedCrypto()
        rows: dict[str, list[dict[str, Any]]] = {}
        for compiled, event, event_time, received_at, subject in batch.pending:
            crypto: Any = None
            if subject is not None:
                crypto = keys[subject]
                if crypto is None:
                    crypto = erased
            nulled_before = erased.nulled
            try:
                row = compiled.plan.row(
                    event["payload"], crypto, event["event_id"], event_time, received_at, event["schema_version"]
                )
            except FieldRejected as exc:
                erased.nulled = nulled_before  # the event fails: none of its values were written
                self._fail(batch, event, received_at, "schema_violation", str(exc), event_time)
                continue
            table_rows = rows.get(compiled.schema.key)
            if table_rows is None:
                table_rows = rows[compiled.schema.key] = []
            table_rows.append(row)

        failed_counts = Counter(f.reason for f in batch.failed)
        clean = sum(len(r) for r in rows.values())
        counts = AnonymizeCounts(
            received=batch.received,
            clean=clean,
            failed=dict(failed_counts),
            erased_fields=erased.nulled,
            minted_users=minted,
            erased_users=sum(1 for crypto in keys.values() if crypto is None),
        )
        return AnonymizeResult(rows=rows, failed=batch.failed, counts=counts)

    # ------------------------------------------------------------------ phase 1: admission

    def _admit_message(
        self, message: RawMessage, batch: _Batch, expired_before: Mapping[tuple[str, int], datetime]
    ) -> None:
        try:
            data = raw_batch.envelope_bytes(message.data, message.attributes)
        except raw_batch.RawBatchError as exc:
            self._fail_message(batch, message.data, str(exc))
            return
        try:
            envelope = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self._fail_message(batch, data, f"the message is not JSON (at byte {exc.pos}); expected the raw batch envelope")
            return
        read = _read_batch(envelope)
        if isinstance(read, str):
            self._fail_message(batch, data, read)
            return
        received_at, events = read
        batch.received += len(events)

        limits = self._limits
        check_size = len(data) > limits.max_event_bytes
        max_bytes = limits.max_event_bytes
        skew_limit = received_at + limits.max_clock_skew
        age_limit = received_at - limits.max_event_age if limits.max_event_age is not None else None
        compiled_by_type = self._compiled
        pending = batch.pending

        for event in events:
            if check_size:
                size = len(orjson.dumps(event))
                if size > max_bytes:
                    self._fail(batch, event, received_at, "too_large", f"the event is {size} bytes of JSON; the limit is {max_bytes}")
                    continue
            if type(event) is not dict or len(event) != 5:
                self._fail(batch, event, received_at, "invalid_envelope", _envelope_problem(event))
                continue
            event_id = event.get("event_id")
            event_type = event.get("event_type")
            version = event.get("schema_version")
            time_text = event.get("event_time")
            payload = event.get("payload")
            if not (
                type(event_id) is str
                and 0 < len(event_id) <= MAX_EVENT_ID
                and type(event_type) is str
                and type(version) is int
                and type(time_text) is str
                and type(payload) is dict
            ):
                self._fail(batch, event, received_at, "invalid_envelope", _envelope_problem(event))
                continue
            key = (event_type, version)
            compiled = compiled_by_type.get(key)
            if compiled is None:
                self._fail(batch, event, received_at, "unknown_event_type", self._unknown_type(event_type, version))
                continue
            event_time = parse_rfc3339(time_text)
            if event_time is None:
                self._fail(
                    batch, event, received_at, "invalid_envelope",
                    "$.event_time: not an RFC 3339 timestamp with Z or an offset (e.g. 2024-05-01T12:00:00Z)",
                )
                continue
            if event_time > skew_limit:
                self._fail(
                    batch, event, received_at, "clock_skew",
                    f"$.event_time: {_span(event_time - received_at)} after the batch was received; "
                    f"at most {_span(limits.max_clock_skew)} of clock skew is accepted: fix the client's clock",
                    event_time,
                )
                continue
            if event_time < expired_before[key]:
                schema = compiled.schema
                self._fail(
                    batch, event, received_at, "too_late",
                    f"$.event_time: {_span(batch.now - event_time)} old; its partition of "
                    f"{schema.table_ref} has expired (retention_days {schema.retention_days})",
                    event_time,
                )
                continue
            if age_limit is not None and event_time < age_limit:
                self._fail(
                    batch, event, received_at, "too_late",
                    f"$.event_time: {_span(received_at - event_time)} old on arrival; "
                    f"events older than {_span(limits.max_event_age)} are not accepted",  # type: ignore[arg-type]
                    event_time,
                )
                continue
            try:
                compiled.validator.validate(payload)
            except SchemaViolation as exc:
                self._fail(batch, event, received_at, "schema_violation", f"{exc.path}: {exc.reason}", event_time)
                continue
            plan = compiled.plan
            subject = None
            if plan.subject is not None:
                subject = payload.get(plan.subject[0]) if len(plan.subject) == 1 else plan.subject_of(payload)
                if not subject:
                    path = "$." + ".".join(plan.subject)
                    what = "missing" if subject is None else "empty"
                    self._fail(
                        batch, event, received_at, "schema_violation",
                        f"{path}: the data subject's id (privacy: user_id) is {what}; every event of "
                        f"{compiled.schema.key} needs it",
                        event_time,
                    )
                    continue
            pending.append((compiled, event, event_time, received_at, subject))

    def _unknown_type(self, event_type: str, version: int) -> str:
        shown = repr(event_type) if _SAFE_NAME.match(event_type) else "(name not shown: not an event type name)"
        versions = self._versions.get(event_type)
        if versions:
            return (
                f"event type {shown} has no major version {version}; known versions: "
                f"{', '.join(map(str, versions))}"
            )
        hint = did_you_mean(event_type, self._versions) if _SAFE_NAME.match(event_type) else ""
        return f"unknown event type {shown}{hint}; the catalog has no schema of that name"

    # ------------------------------------------------------------------ failures

    def _fail(
        self,
        batch: _Batch,
        event: object,
        received_at: datetime,
        reason: Reason,
        detail: str,
        event_time: datetime | None = None,
    ) -> None:
        event_id, event_type, version = _identity(event)
        if event_time is None and isinstance(event, dict) and isinstance(event.get("event_time"), str):
            event_time = parse_rfc3339(event["event_time"])
        batch.failed.append(
            FailedEvent.create(
                reason=reason,
                detail=detail,
                stage="anonymize",
                received_at=received_at,
                failed_at=batch.now,
                event_id=event_id,
                event_type=event_type,
                schema_version=version,
                event_time=event_time,
                payload_ciphertext=self._platform.quarantine_encrypt(orjson.dumps(event), event_id or ""),
            )
        )

    def _fail_message(self, batch: _Batch, data: bytes, detail: str) -> None:
        batch.received += 1
        batch.failed.append(
            FailedEvent.create(
                reason="invalid_json",
                detail=detail,
                stage="anonymize",
                received_at=batch.now,
                failed_at=batch.now,
                payload_ciphertext=self._platform.quarantine_encrypt(bytes(data), ""),
            )
        )


# --------------------------------------------------------------------------- helpers


def timestamp_micros(value: datetime) -> int:
    """Microseconds since the epoch: Avro `timestamp-micros` of a clean row's datetime."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _expiry_threshold(now: datetime, schema: EventSchema) -> datetime:
    """Events before this instant fall in partitions BigQuery has already expired.

    A partition expires when its start + retention is in the past, i.e. an event is too
    late iff floor(event_time) < now - retention, which is event_time < T with T the
    cutoff itself when it is on a partition boundary, else the next boundary after it.
    """
    unit = _PARTITION_UNIT[schema.partitioning]
    cutoff = now - timedelta(days=schema.retention_days)
    floor = EPOCH + ((cutoff - EPOCH) // unit) * unit
    return cutoff if floor == cutoff else floor + unit


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86_400:
        return f"{seconds // 86_400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _read_batch(envelope: object) -> tuple[datetime, list[Any]] | str:
    """(received_at, events) of a parsed raw batch envelope, or why it is not one."""
    if not isinstance(envelope, dict):
        return "the message is JSON but not an object; expected the raw batch envelope {received_at, events}"
    if set(envelope) != BATCH_KEYS:
        missing = sorted(BATCH_KEYS - set(envelope))
        extra = len(set(envelope) - BATCH_KEYS)
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"{extra} unknown key(s)")
        return f"the message is not the raw batch envelope {{received_at, events}}: {'; '.join(parts)}"
    events = envelope["events"]
    if not isinstance(events, list):
        return "the raw batch envelope's events must be an array"
    text = envelope["received_at"]
    received_at = parse_rfc3339(text) if isinstance(text, str) else None
    if received_at is None:
        return "the raw batch envelope's received_at must be an RFC 3339 timestamp"
    return received_at, events


_ENVELOPE_TYPES: dict[str, tuple[type, str]] = {
    "event_id": (str, "a string"),
    "event_type": (str, "a string"),
    "schema_version": (int, "an integer"),
    "event_time": (str, "an RFC 3339 timestamp string"),
    "payload": (dict, "an object"),
}


def _envelope_problem(event: object) -> str:
    """The first thing wrong with an event envelope, as path + rule (never a value)."""
    if not isinstance(event, dict):
        return "$: an event must be a JSON object {event_id, event_type, schema_version, event_time, payload}"
    for key in ENVELOPE_KEYS:
        if key not in event:
            return f"$.{key}: required envelope field is missing"
    for key, (kind, name) in _ENVELOPE_TYPES.items():
        value = event[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"$.{key}: expected {name}"
    if not 0 < len(event["event_id"]) <= MAX_EVENT_ID:
        return f"$.event_id: must be 1 to {MAX_EVENT_ID} characters"
    unknown = [key for key in event if key not in ENVELOPE_KEYS]
    safe = [key for key in unknown if isinstance(key, str) and _SAFE_NAME.match(key)]
    names = f" ({', '.join(map(repr, safe))})" if len(safe) == len(unknown) else ""
    return f"$: unknown envelope field(s){names}; an event has exactly {', '.join(ENVELOPE_KEYS)}"


def _identity(event: object) -> tuple[str | None, str | None, int | None]:
    """event_id, event_type, schema_version when present and well-formed, else None each."""
    if not isinstance(event, dict):
        return None, None, None
    event_id = event.get("event_id")
    event_type = event.get("event_type")
    version = event.get("schema_version")
    return (
        event_id if isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID else None,
        event_type if isinstance(event_type, str) and _SAFE_NAME.match(event_type) else None,
        version if isinstance(version, int) and not isinstance(version, bool) and -(2**63) <= version < 2**63 else None,
    )
