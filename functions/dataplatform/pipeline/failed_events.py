"""The failed-event record: one rejected event, its typed reason and its quarantined payload.

Every stage that can reject an event (collect at the door, anonymize after validation,
load when a message is dead-lettered or a table refuses a row) produces the same `FailedEvent`, published as JSON to the `failed-events` topic
and loaded into `platform.failed_events` (columns: `compile.bigquery_schema.FAILED_EVENT_COLUMNS`,
same names and order as `to_record()`).

Why the shape is what it is:
- `detail` says what was wrong and where (field path and rule) and never holds a payload
  value, so operators can read it without seeing personal data.
- The original event is kept only as `payload_ciphertext`: encrypted with the platform
  quarantine key (associated data = the event id, or "" when there was none), so it can be
  fixed and replayed but is never readable in clear by analysts. It expires with its
  partition after `QUARANTINE_RETENTION_DAYS` (`quarantine_expires_at` says when).

JSON form (`to_json_bytes`): timestamps as RFC 3339 UTC text with microseconds
(`2024-05-01T12:00:00.000000Z`), bytes as standard base64 — the encodings a BigQuery
subscription and the local warehouse sink accept for TIMESTAMP and BYTES columns. The base64
goes through `pybase64` (SIMD): the standard library's decoder took ~0.55 ms for the 160 KB of
text of one oversize event's payload on the development VM, `pybase64` 0.017 ms.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, get_args

import orjson
import pybase64

from dataplatform.compile.bigquery_schema import QUARANTINE_RETENTION_DAYS
from dataplatform.errors import PlatformError

UTC = timezone.utc

Reason = Literal[
    "invalid_json",
    "invalid_envelope",
    "unknown_event_type",
    "schema_violation",
    "too_large",
    "clock_skew",
    "too_late",
    "undecryptable",
    "dead_lettered",
]
"""`dead_lettered`: the message ran out of delivery attempts (dead-letter topic) or a
warehouse table refused the row, so no stage could judge the event itself."""
REASONS: tuple[str, ...] = get_args(Reason)

Stage = Literal["collect", "anonymize", "load"]
"""`load`: after anonymize, loading into the warehouse (a sink or BigQuery subscription)."""
STAGES: tuple[str, ...] = get_args(Stage)

QUARANTINE_RETENTION = timedelta(days=QUARANTINE_RETENTION_DAYS)

FIELDS = (
    "event_id",
    "event_type",
    "schema_version",
    "reason",
    "detail",
    "event_time",
    "received_at",
    "failed_at",
    "stage",
    "payload_ciphertext",
    "quarantine_expires_at",
)
"""Record keys in column order (= `FAILED_EVENT_COLUMNS` of the failed-events table)."""

_TIMESTAMPS = ("event_time", "received_at", "failed_at", "quarantine_expires_at")


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """One rejected event. Build it with `FailedEvent.create` (it sets the expiry)."""

    event_id: str | None
    event_type: str | None
    schema_version: int | None
    reason: Reason
    detail: str
    event_time: datetime | None
    received_at: datetime
    failed_at: datetime
    stage: Stage
    payload_ciphertext: bytes | None
    quarantine_expires_at: datetime

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise PlatformError(f"unknown failed-event reason {self.reason!r}; use one of {', '.join(REASONS)}")
        if self.stage not in STAGES:
            raise PlatformError(f"unknown failed-event stage {self.stage!r}; use one of {', '.join(STAGES)}")
        for name in _TIMESTAMPS:
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise PlatformError(f"failed event {self.event_id!r}: {name} must be timezone-aware (UTC)")

    @classmethod
    def create(
        cls,
        *,
        reason: Reason,
        detail: str,
        stage: Stage,
        received_at: datetime,
        failed_at: datetime,
        event_id: str | None = None,
        event_type: str | None = None,
        schema_version: int | None = None,
        event_time: datetime | None = None,
        payload_ciphertext: bytes | None = None,
    ) -> FailedEvent:
        """A failed event whose quarantined payload expires `QUARANTINE_RETENTION` after it failed."""
        return cls(
            event_id=event_id,
            event_type=event_type,
            schema_version=schema_version,
            reason=reason,
            detail=detail,
            event_time=event_time,
            received_at=received_at,
            failed_at=failed_at,
            stage=stage,
            payload_ciphertext=payload_ciphertext,
            quarantine_expires_at=failed_at + QUARANTINE_RETENTION,
        )

    # ------------------------------------------------------------------ conversions

    def to_record(self) -> dict[str, Any]:
        """The row for `platform.failed_events`: datetimes and bytes as they are."""
        return {name: getattr(self, name) for name in FIELDS}

    def to_json_bytes(self) -> bytes:
        """The `failed-events` topic message: RFC 3339 UTC timestamps, base64 bytes."""
        record = self.to_record()
        for name in _TIMESTAMPS:
            if record[name] is not None:
                record[name] = format_timestamp(record[name])
        if record["payload_ciphertext"] is not None:
            record["payload_ciphertext"] = pybase64.b64encode(record["payload_ciphertext"]).decode("ascii")
        return orjson.dumps(record)

    @classmethod
    def from_json_bytes(cls, data: bytes) -> FailedEvent:
        """Parse `to_json_bytes` output; PlatformError naming the bad key otherwise."""
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise PlatformError(f"failed-event message is not JSON ({exc}); expected the output of FailedEvent.to_json_bytes") from None
        if not isinstance(record, Mapping):
            raise PlatformError("failed-event message must be a JSON object")
        return cls.from_record(_decode_json_record(record))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FailedEvent:
        """Rebuild from `to_record()` output (e.g. a row read back from the warehouse)."""
        missing = [name for name in FIELDS if name not in record]
        unknown = sorted(set(record) - set(FIELDS))
        if missing or unknown:
            problems = []
            if missing:
                problems.append(f"missing {', '.join(missing)}")
            if unknown:
                problems.append(f"unknown {', '.join(unknown)}")
            raise PlatformError(f"failed-event record has wrong keys: {'; '.join(problems)}")
        _expect(record, "event_id", (str, type(None)))
        _expect(record, "event_type", (str, type(None)))
        _expect(record, "detail", (str,))
        _expect(record, "reason", (str,))
        _expect(record, "stage", (str,))
        _expect(record, "payload_ciphertext", (bytes, type(None)))
        version = record["schema_version"]
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise PlatformError("failed-event record: schema_version must be an integer or null")
        for name in _TIMESTAMPS:
            _expect(record, name, (datetime,) if name != "event_time" else (datetime, type(None)))
        return cls(**{name: record[name] for name in FIELDS})


def _expect(record: Mapping[str, Any], name: str, types: tuple[type, ...]) -> None:
    if not isinstance(record[name], types):
        expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise PlatformError(f"failed-event record: {name} must be {expected}, found {type(record[name]).__name__}")


def _decode_json_record(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for name in _TIMESTAMPS:
        value = out.get(name)
        if isinstance(value, str):
            try:
                out[name] = parse_timestamp(value)
            except ValueError:
                raise PlatformError(f"failed-event message: {name} is not an RFC 3339 timestamp") from None
    value = out.get("payload_ciphertext")
    if isinstance(value, str):
        try:
            out["payload_ciphertext"] = pybase64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PlatformError("failed-event message: payload_ciphertext is not base64") from None
    return out


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with microseconds: `2024-05-01T12:00:00.000000Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Inverse of `format_timestamp` (any RFC 3339 offset accepted); ValueError otherwise."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {text!r}")
    return value.astimezone(UTC)
