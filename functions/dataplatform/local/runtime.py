"""The local runtime: the parts of GCP around the functions that have no emulator.

A separate long-running process started by `local up` (`python -m dataplatform.local.runtime`):

- **BigQuery subscriptions**: for every event schema it pulls `<key>-bq` (the clean topic,
  Avro BINARY), decodes each message with `compile.avro_codec`, adds the subscription's
  metadata columns (message_id, publish_time, subscription_name, attributes as JSON text —
  what `write_metadata = true` writes) and inserts the batch into `events.<key>` in ONE
  statement. `failed-events-bq` does the same for `platform.failed_events` (JSON messages,
  `FailedEvent.from_json_bytes`).
- **Dead-letter drains**: `<key>-raw-dead-letter-drain` receives raw batches the anonymize
  function could not take within the push subscription's attempts. Nothing may be lost, so
  each event of such a batch becomes a failed-event row with reason `dead_lettered` (stage
  `anonymize`, the event's id/type/time when readable) and the event itself quarantined
  (platform quarantine key, associated data = event id), like every other failed event.
- **The warehouse's only writer**: DuckDB lets one process open the file read-write, so this
  process also answers queries for everybody else on loopback HTTP:
  `POST /query {"sql": "<BigQuery SQL>", "params": {...}}` → `{"columns", "rows"}` (bytes
  as base64 text, times as RFC 3339), `GET /status` → readiness, row counts per table
  and per-sink progress and lag, and `GET /sinks` → the per-sink progress alone (no query:
  cheap enough to poll while waiting for rows).

Delivery semantics, as a BigQuery subscription has them: at-least-once. A batch is
acknowledged only AFTER its insert committed, so a crash between insert and ack loads the
batch again when Pub/Sub redelivers it; readers dedupe on event_id (the `_dedup` views).
A message that cannot be loaded (undecodable, or a row the table refuses) is not retried
forever: it becomes a failed-event row (`dead_lettered`, stage `load`, detail = what was
wrong) and is acknowledged — what a BigQuery subscription's dead-letter topic is for. Any
other failure (the warehouse itself) nacks the batch for redelivery and is counted in
`/status` (`errors`, `last_error`).

Throughput: each sink asks for up to 1,000 messages a pull (the emulator hands out at most
100), keeps pulling while a backlog lasts and paces itself while messages trickle, so that it
inserts 1,000 to 5,000 messages in one Arrow batch when traffic allows, within a quarter of a
second of the first (`Sink.gather`). One thread per subscription by default
(`--threads-per-sink`): a second one per event subscription doubled the pacing pulls and
cost ~15% more CPU per event for no more throughput (measured 2026-12-03). Event
subscriptions are decoded into columns and inserted column by column
(`AvroCodec.decode_values`, `DuckDBWarehouse.insert_columns`): no dict per row.
"""

from __future__ import annotations

import argparse
import base64
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import orjson

from dataplatform import gc_tuning
from dataplatform.errors import PlatformError
from dataplatform.local.topology import FAILED_EVENTS_TABLE, SinkPlan, Topology, plan_topology
from dataplatform.pipeline import raw_batch
from dataplatform.pipeline.failed_events import QUARANTINE_RETENTION, FailedEvent
from dataplatform.privacy.policies import parse_rfc3339

logger = logging.getLogger("dataplatform.local.runtime")

UTC = timezone.utc
PULL_MAX_MESSAGES = 1000
IDLE_PULL_SECONDS = 5.0
"""An idle sink waits for messages in one pull of up to this long (the emulator answers it
as soon as a message arrives, or empty just before its deadline)."""
ACTIVE_SECONDS = 1.0
"""For this long after its last message a sink pulls without waiting on the server (see
`Sink.gather`), then it goes back to one waiting pull at a time."""
POLL_PAUSE_SECONDS = 0.05
"""The pause between two non-waiting pulls that did not fill the batch."""
BATCH_MESSAGES = 5000
"""At most this many messages per insert: one DuckDB insert of 5,000 rows costs about 40%
less per row than five of 1,000."""
MIN_BATCH_MESSAGES = 1000
"""A batch smaller than this waits for more messages, up to `GATHER_SECONDS`."""
FULL_PULL = 100
"""A pull that returns this many messages means a backlog, even if more were asked for: the
Pub/Sub emulator hands out at most 100 messages a pull whatever `max_messages` says (and real
Pub/Sub may return fewer than asked)."""
GATHER_SECONDS = 0.25
"""How long a batch may wait for more messages after its first one: a trickle is loaded
within ~1/4 s."""
FAILED_PULL_MAX_MESSAGES = 50
"""Failed events carry their quarantined payload (up to ~140 KB for a 100 KB event), and the
Pub/Sub client refuses pull responses over 4 MB (see `Sink.gather`)."""
RETRY_PAUSE_SECONDS = 1.0
MAX_QUERY_BODY = 1_000_000
DEAD_LETTERED = "dead_lettered"
"""Failed-event reason of events whose message could not be delivered or loaded."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class Received(Protocol):
    """A pulled message (`adapters.pubsub.ReceivedMessage`)."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_micros: int | None
    """Microseconds since the epoch (what the columnar insert takes)."""

    @property
    def publish_time(self) -> datetime | None: ...


class Subscriber(Protocol):
    """What the sinks need from `adapters.pubsub.PubSubAdmin`."""

    project: str

    def pull(
        self, subscription: str, max_messages: int = 1000, timeout: float = 5.0, *, wait: bool = True
    ) -> Sequence[Received]: ...

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None: ...

    def nack(self, subscription: str, ack_ids: Sequence[str]) -> None: ...


class Writer(Protocol):
    """What the sinks and the HTTP API need from the DuckDB warehouse."""

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def insert_columns(self, table_ref: str, columns: Mapping[str, Sequence[Any]], count: int) -> int: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def row_count(self, table_ref: str, where: str | None = None, params: Mapping[str, Any] | None = None) -> int: ...


class Decoder(Protocol):
    def decode(self, data: bytes) -> dict[str, Any]: ...


class Quarantine(Protocol):
    def quarantine_encrypt(self, data: bytes, event_id: str) -> bytes: ...


# --------------------------------------------------------------------------- rows


def metadata(message: Received, subscription_path: str) -> dict[str, Any]:
    """The BigQuery subscription's metadata columns of one message."""
    return {
        "message_id": message.message_id,
        "publish_time": message.publish_time,
        "subscription_name": subscription_path,
        "attributes": attributes_text(message.attributes),
    }


def attributes_text(attributes: Mapping[str, str]) -> str | None:
    """The `attributes` metadata column: the message's attributes as JSON text, NULL when none."""
    return orjson.dumps(dict(attributes)).decode() if attributes else None


def failure_record(
    *,
    detail: str,
    stage: str,
    now: datetime,
    payload: bytes | None,
    quarantine: Quarantine | None,
    event_id: str | None = None,
    event_type: str | None = None,
    schema_version: int | None = None,
    event_time: datetime | None = None,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """A `platform.failed_events` row with reason `dead_lettered` (see the module docstring).

    Built as a row, not a `FailedEvent`, because `dead_lettered` and the stage `load` are
    the local runtime's (the platform's `failed_events.Reason` lists the functions' reasons).
    `payload` (the undeliverable message or event) is quarantined like every failed event's.
    """
    ciphertext = None
    if payload is not None:
        if quarantine is None:
            raise PlatformError("a failed event with a payload needs the quarantine key")
        ciphertext = quarantine.quarantine_encrypt(payload, event_id or "")
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": schema_version,
        "reason": DEAD_LETTERED,
        "detail": detail,
        "event_time": event_time,
        "received_at": received_at or now,
        "failed_at": now,
        "stage": stage,
        "payload_ciphertext": ciphertext,
        "quarantine_expires_at": now + QUARANTINE_RETENTION,
    }


@dataclass(frozen=True)
class Converted:
    """A pulled batch as rows for the sink's table, plus failed-event rows for what could not be.

    A columnar converter fills `columns` (name → values for `count` rows) instead of
    `rows`, and `as_rows` rebuilds the same rows as dicts for when the columnar insert is
    refused (the row insert then says which rows do not fit)."""

    rows: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    columns: dict[str, list[Any]] | None = None
    count: int = 0
    as_rows: Callable[[], list[dict[str, Any]]] | None = None


class EventRows:
    """Clean-topic messages (Avro BINARY) → rows of `events.<key>`, as columns when the
    codec can decode them so (`AvroCodec.decode_values`: no dict and no datetime per row)."""

    def __init__(self, key: str, codec: Decoder, subscription_path: str, quarantine: Quarantine) -> None:
        self.key = key
        self.codec = codec
        self.path = subscription_path
        self.quarantine = quarantine

    def convert(self, messages: Sequence[Received], now: datetime) -> Converted:
        decode_values = getattr(self.codec, "decode_values", None)
        if decode_values is None:
            return self._rows(messages, now)
        values: list[tuple[Any, ...]] = []
        decoded: list[Received] = []
        failures: list[dict[str, Any]] = []
        for message in messages:
            try:
                values.append(decode_values(message.data))
            except PlatformError as exc:
                failures.append(self._undecodable(message, exc, now))
                continue
            decoded.append(message)
        columns: dict[str, list[Any]] = {
            name: list(column) for name, column in zip(self.codec.columns, zip(*values))  # type: ignore[attr-defined]
        }
        attributes = _AttributesText()
        columns["message_id"] = [m.message_id for m in decoded]
        columns["publish_time"] = [m.publish_micros for m in decoded]
        columns["subscription_name"] = [self.path] * len(decoded)
        columns["attributes"] = [attributes(m.attributes) for m in decoded]
        return Converted([], failures, columns, len(decoded), lambda: self._rows(decoded, now).rows)

    def _rows(self, messages: Sequence[Received], now: datetime) -> Converted:
        rows: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        decode = self.codec.decode
        path = self.path
        attributes = _AttributesText()
        for message in messages:
            try:
                row = decode(message.data)
            except PlatformError as exc:
                failures.append(self._undecodable(message, exc, now))
                continue
            row["message_id"] = message.message_id
            row["publish_time"] = message.publish_time
            row["subscription_name"] = path
            row["attributes"] = attributes(message.attributes)
            rows.append(row)
        return Converted(rows, failures)

    def _undecodable(self, message: Received, exc: PlatformError, now: datetime) -> dict[str, Any]:
        return failure_record(
            detail=f"message {message.message_id} on {self.path} could not be loaded into events.{self.key}: {exc}",
            stage="load", now=now, payload=message.data, quarantine=self.quarantine,
            event_type=self.key.rsplit("_v", 1)[0],
        )


class _AttributesText:
    """The `attributes` column (JSON text, NULL when none), remembering the last answer:
    the messages of one raw batch arrive together with the same attributes."""

    def __init__(self) -> None:
        self._last: tuple[Mapping[str, str], str | None] | None = None

    def __call__(self, attributes: Mapping[str, str]) -> str | None:
        if self._last is not None and self._last[0] == attributes:
            return self._last[1]
        text = attributes_text(attributes)
        self._last = (attributes, text)
        return text


class FailedRows:
    """`failed-events` messages (FailedEvent JSON) → rows of `platform.failed_events`."""

    def __init__(self, subscription_path: str, quarantine: Quarantine) -> None:
        self.path = subscription_path
        self.quarantine = quarantine

    def convert(self, messages: Sequence[Received], now: datetime) -> Converted:
        rows: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for message in messages:
            try:
                row = FailedEvent.from_json_bytes(message.data).to_record()
            except PlatformError as exc:
                failures.append(
                    failure_record(
                        detail=f"message {message.message_id} on {self.path} is not a failed-event record: {exc}",
                        stage="load", now=now, payload=message.data, quarantine=self.quarantine,
                    )
                )
                continue
            row.update(metadata(message, self.path))
            rows.append(row)
        return Converted(rows, failures)


class DeadLetterRows:
    """Dead-lettered raw batches → one `dead_lettered` failed-event row per event."""

    def __init__(self, key: str, subscription_path: str, quarantine: Quarantine) -> None:
        self.key = key
        self.name = key.rsplit("_v", 1)[0]
        self.path = subscription_path
        self.quarantine = quarantine

    def convert(self, messages: Sequence[Received], now: datetime) -> Converted:
        rows: list[dict[str, Any]] = []
        for message in messages:
            attempts = message.attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "several")
            detail = (
                f"the raw batch message of {self.key} was dead-lettered after {attempts} failed deliveries to the "
                "anonymize function; the event is quarantined: replay it once the function works"
            )
            meta = metadata(message, self.path)
            problem = "the message is not a raw batch envelope"
            try:
                envelope = orjson.loads(raw_batch.envelope_bytes(message.data, message.attributes))
            except raw_batch.RawBatchError as exc:
                envelope, problem = None, str(exc)
            except orjson.JSONDecodeError:
                envelope = None
            events = envelope.get("events") if isinstance(envelope, dict) else None
            if not isinstance(events, list):
                row = failure_record(
                    detail=f"{detail} ({problem})", stage="anonymize", now=now,
                    payload=message.data, quarantine=self.quarantine, event_type=self.name,
                )
                rows.append({**row, **meta})
                continue
            received_text = envelope.get("received_at")
            received_at = parse_rfc3339(received_text) if isinstance(received_text, str) else None
            for event in events:
                event_id, event_type, version, event_time = _identity(event)
                row = failure_record(
                    detail=detail, stage="anonymize", now=now, payload=orjson.dumps(event),
                    quarantine=self.quarantine, event_id=event_id, event_type=event_type or self.name,
                    schema_version=version, event_time=event_time, received_at=received_at,
                )
                rows.append({**row, **meta})
        return Converted(rows, [])


def _identity(event: object) -> tuple[str | None, str | None, int | None, datetime | None]:
    if not isinstance(event, dict):
        return None, None, None, None
    event_id = event.get("event_id")
    event_type = event.get("event_type")
    version = event.get("schema_version")
    time_text = event.get("event_time")
    return (
        event_id if isinstance(event_id, str) and 0 < len(event_id) <= 128 else None,
        event_type if isinstance(event_type, str) and _SAFE_NAME.match(event_type) else None,
        version if type(version) is int and -(2**63) <= version < 2**63 else None,
        parse_rfc3339(time_text) if isinstance(time_text, str) else None,
    )


class Converter(Protocol):
    def convert(self, messages: Sequence[Received], now: datetime) -> Converted: ...


# --------------------------------------------------------------------------- sinks


@dataclass
class SinkStats:
    """Progress of one subscription's sink (all threads), for `/status`."""

    subscription: str
    kind: str
    table: str
    messages: int = 0
    pulls: int = 0
    """Pull calls that returned messages (messages ÷ pulls = the mean pull size: below ~100,
    the emulator and the client spend most of their time on the calls themselves)."""
    empty_pulls: int = 0
    """Pull calls that came back empty: the polls of an active sink that found nothing yet,
    and the idle waits that ended without a message. Each costs the client and the emulator
    about what a full pull does."""
    rows: int = 0
    failures: int = 0
    errors: int = 0
    last_error: str | None = None
    last_load_at: datetime | None = None
    lag_seconds: float | None = None
    """Seconds from the newest message's publish time to its load, at the last load."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def loaded(self, messages: int, rows: int, failures: int, newest_publish: datetime | None, now: datetime) -> None:
        with self.lock:
            self.messages += messages
            self.rows += rows
            self.failures += failures
            self.last_load_at = now
            if newest_publish is not None:
                self.lag_seconds = max(0.0, (now - newest_publish).total_seconds())

    def failed(self, error: str) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = error

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "kind": self.kind,
                "table": self.table,
                "messages": self.messages,
                "pulls": self.pulls,
                "empty_pulls": self.empty_pulls,
                "rows": self.rows,
                "failures": self.failures,
                "errors": self.errors,
                "last_error": self.last_error,
                "last_load_at": self.last_load_at,
                "lag_seconds": self.lag_seconds,
            }


class Sink:
    """Pull → convert → insert → ack, for one subscription (`load_once` is one round)."""

    def __init__(
        self,
        plan: SinkPlan,
        subscriber: Subscriber,
        writer: Writer,
        converter: Converter,
        clock: Callable[[], datetime],
        quarantine: Quarantine,
        *,
        max_messages: int = PULL_MAX_MESSAGES,
        batch_messages: int = BATCH_MESSAGES,
        min_batch: int = MIN_BATCH_MESSAGES,
        gather_seconds: float = GATHER_SECONDS,
        idle_pull_seconds: float = IDLE_PULL_SECONDS,
        active_seconds: float = ACTIVE_SECONDS,
        poll_pause: float = POLL_PAUSE_SECONDS,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.plan = plan
        self.subscriber = subscriber
        self.writer = writer
        self.converter = converter
        self.clock = clock
        self.quarantine = quarantine
        self.max_messages = max_messages
        self.pull_size = max_messages
        self.batch_messages = max(max_messages, batch_messages)
        self.min_batch = min(min_batch, self.batch_messages)
        self.gather_seconds = gather_seconds
        self.idle_pull_seconds = idle_pull_seconds
        self.active_seconds = active_seconds
        self.poll_pause = poll_pause
        self.timer = timer
        self.sleep = sleep
        self.last_message_at = float("-inf")
        self.stats = SinkStats(plan.name, plan.kind, plan.table_ref)

    def gather(self) -> list[Received]:
        """The next batch to insert: [] when none came.

        Idle (no message for `active_seconds`), a sink waits in ONE pull that the server
        answers when a message arrives. Active, it pulls without waiting on the server
        (`wait=False`) and paces itself: again at once while pulls come back full (a
        backlog: `size` messages, or `FULL_PULL`), else after `poll_pause`, until the batch
        holds `min_batch` messages or `gather_seconds` passed since its first message (at
        most `batch_messages`). Why not waiting pulls throughout: on a saturated machine a
        waiting pull's answer can arrive after the client's deadline, and the messages it
        carried came back only after the ack deadline (30 s stalls, one pass in ~six);
        and fewer, bigger inserts cost less per row.

        The Pub/Sub client against the emulator refuses a pull response over 4 MB
        (ResourceExhausted; the messages then come back only after their ack deadline). So
        the pull size adapts: a quarter after such a refusal (down to 1), doubled again
        after a full pull, up to `max_messages`.
        """
        name = self.plan.name
        messages: list[Received] = []
        deadline = self.timer() + self.gather_seconds
        while True:
            size = self.pull_size
            waiting = not messages and self.timer() - self.last_message_at >= self.active_seconds
            try:
                if waiting:
                    more = self.subscriber.pull(name, size, self.idle_pull_seconds)
                else:
                    more = self.subscriber.pull(name, size, 0.0, wait=False)
            except PlatformError as exc:
                if "ResourceExhausted" in str(exc) and size > 1:
                    self.pull_size = max(1, size // 4)
                    logger.warning("sink %s: a pull of %d messages was too large; pulling %d at a time", name, size, self.pull_size)
                if messages:
                    return messages
                raise
            now = self.timer()
            if more:
                if not messages:
                    deadline = now + self.gather_seconds
                messages.extend(more)
                self.last_message_at = now
                with self.stats.lock:
                    self.stats.pulls += 1
                if len(more) == size:
                    self.pull_size = min(self.max_messages, size * 2)
            else:
                with self.stats.lock:
                    self.stats.empty_pulls += 1
                if waiting:
                    return messages  # an idle wait that ended empty
            if len(messages) >= self.batch_messages or now >= deadline:
                return messages
            if len(more) >= min(size, FULL_PULL):
                continue
            if len(messages) >= self.min_batch:
                return messages
            self.sleep(min(self.poll_pause, max(0.0, deadline - now)))

    def load_once(self) -> int:
        """Gather a batch and load it; number of messages handled (0 when none came).

        Raises only when the batch could not be stored (it was nacked, and will come back).
        """
        messages = self.gather()
        if not messages:
            return 0
        ack_ids = [m.ack_id for m in messages]
        try:
            now = self.clock()
            converted = self.converter.convert(messages, now)
            failures = list(converted.failures)
            if converted.columns is not None:
                written = self._insert_columns(converted, failures, now)
            else:
                written = self._insert(converted.rows, failures, now)
            if failures:
                self.writer.insert_rows(FAILED_EVENTS_TABLE, failures)
        except Exception as exc:  # noqa: BLE001 — the batch goes back to Pub/Sub, whatever broke
            self.stats.failed(f"{type(exc).__name__}: {exc}"[:500])
            try:
                self.subscriber.nack(self.plan.name, ack_ids)
            except PlatformError:
                pass  # the ack deadline brings the messages back anyway
            raise
        self.subscriber.ack(self.plan.name, ack_ids)
        latest = max(
            (m for m in messages if m.publish_micros is not None), key=lambda m: m.publish_micros, default=None
        )
        newest = None if latest is None else latest.publish_time
        self.stats.loaded(len(messages), written, len(failures), newest, self.clock())
        return len(messages)

    def _insert_columns(self, converted: Converted, failures: list[dict[str, Any]], now: datetime) -> int:
        """The columnar insert; when it is refused, the same rows again as dicts (`_insert`
        finds and quarantines the rows that do not fit)."""
        assert converted.columns is not None and converted.as_rows is not None
        try:
            return self.writer.insert_columns(self.plan.table_ref, converted.columns, converted.count)
        except PlatformError as exc:
            logger.warning("sink %s: a columnar insert was refused, inserting row by row: %s", self.plan.name, exc)
            return self._insert(converted.as_rows(), failures, now)

    def _insert(self, rows: list[dict[str, Any]], failures: list[dict[str, Any]], now: datetime) -> int:
        """Insert `rows`; rows the table refuses become failed-event rows (appended to
        `failures`) with the (already anonymized) row quarantined, so nothing is lost."""
        from dataplatform.adapters.warehouse_base import InvalidRows

        if not rows:
            return 0
        try:
            return self.writer.insert_rows(self.plan.table_ref, rows)
        except InvalidRows as exc:
            bad = set(exc.rows)
            reasons: dict[int, list[str]] = {}
            for problem in exc.problems:
                reasons.setdefault(problem.index, []).append(str(problem))
            good = [row for i, row in enumerate(rows) if i not in bad]
            for index in sorted(bad):
                row = rows[index]
                failures.append(
                    failure_record(
                        detail=f"row refused by {self.plan.table_ref}: {'; '.join(reasons[index])[:400]}",
                        stage="load", now=now, payload=dumps(row), quarantine=self.quarantine,
                        event_id=row.get("event_id") if isinstance(row.get("event_id"), str) else None,
                        event_type=self.plan.event_key.rsplit("_v", 1)[0] if self.plan.event_key else None,
                    )
                )
            return self.writer.insert_rows(self.plan.table_ref, good) if good else 0


class SinkThread(threading.Thread):
    def __init__(self, sink: Sink, stop: threading.Event, index: int) -> None:
        super().__init__(name=f"sink-{sink.plan.name}-{index}", daemon=True)
        self.sink = sink
        self.stop_event = stop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.sink.load_once()
            except Exception as exc:  # noqa: BLE001 — counted in /status; the loop must go on
                logger.warning("sink %s: batch not loaded, retrying: %s", self.sink.plan.name, exc)
                self.stop_event.wait(RETRY_PAUSE_SECONDS)


# --------------------------------------------------------------------------- the runtime


class LocalRuntime:
    """Sinks + the HTTP API over one warehouse (see the module docstring)."""

    def __init__(
        self,
        topology: Topology,
        subscriber: Subscriber,
        writer: Writer,
        codecs: Mapping[str, Decoder],
        quarantine: Quarantine,
        *,
        threads_per_sink: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        warehouse_path: str = "",
    ) -> None:
        self.topology = topology
        self.writer = writer
        self.warehouse_path = warehouse_path
        self.started_at = clock()
        self.ready = False
        self._stop = threading.Event()
        self._threads: list[SinkThread] = []
        self.sinks: list[Sink] = []
        project = subscriber.project
        for plan in topology.sinks:
            path = f"projects/{project}/subscriptions/{plan.name}"
            converter: Converter
            if plan.kind == "events":
                assert plan.event_key is not None
                converter = EventRows(plan.event_key, codecs[plan.event_key], path, quarantine)
            elif plan.kind == "failed":
                converter = FailedRows(path, quarantine)
            else:
                assert plan.event_key is not None
                converter = DeadLetterRows(plan.event_key, path, quarantine)
            max_messages = FAILED_PULL_MAX_MESSAGES if plan.kind != "events" else PULL_MAX_MESSAGES
            self.sinks.append(Sink(plan, subscriber, writer, converter, clock, quarantine, max_messages=max_messages))
        self._threads_per_sink = max(1, threads_per_sink)

    def start(self) -> None:
        for sink in self.sinks:
            count = self._threads_per_sink if sink.plan.kind == "events" else 1
            for i in range(count):
                thread = SinkThread(sink, self._stop, i)
                thread.start()
                self._threads.append(thread)
        self.ready = True

    def stop(self, timeout: float = 10.0) -> None:
        """Let every sink finish its batch (insert + ack) and end."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def status(self) -> dict[str, Any]:
        tables: dict[str, int | None] = {}
        for ref in sorted({s.plan.table_ref for s in self.sinks}):
            try:
                tables[ref] = self.writer.row_count(ref)
            except PlatformError:
                tables[ref] = None
        return {
            "ready": self.ready,
            "started_at": self.started_at,
            "warehouse": self.warehouse_path,
            "tables": tables,
            "sinks": self.sink_progress(),
        }

    def sink_progress(self) -> dict[str, Any]:
        """Per-sink counters only: no warehouse query (`/status` counts every table's rows,
        ~12 ms of this process's CPU; a waiting client polls this instead)."""
        return {sink.plan.name: sink.stats.snapshot() for sink in self.sinks}

    def query(self, sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        rows = self.writer.query(sql, params)
        return {"columns": list(rows[0]) if rows else [], "rows": rows}


# --------------------------------------------------------------------------- HTTP API


def json_default(value: Any) -> Any:
    """orjson fallback: bytes as base64 text, NUMERIC as text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=json_default, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def make_handler(runtime: LocalRuntime) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dataplatform-runtime"

        def _answer(self, status: int, body: Any) -> None:
            data = dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 — http.server's naming
            path = self.path.rstrip("/")
            if path == "/status":
                self._answer(HTTPStatus.OK, runtime.status())
            elif path == "/sinks":
                self._answer(HTTPStatus.OK, {"sinks": runtime.sink_progress()})
            else:
                self._answer(
                    HTTPStatus.NOT_FOUND, {"error": f"no such resource {self.path!r}; use GET /status, GET /sinks or POST /query"}
                )

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/query":
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no such resource {self.path!r}; use POST /query"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_QUERY_BODY:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"the query body is over {MAX_QUERY_BODY} bytes"})
                return
            try:
                document = orjson.loads(self.rfile.read(length))
            except orjson.JSONDecodeError:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON; send {\"sql\": \"...\", \"params\": {...}}"})
                return
            if not isinstance(document, dict) or not isinstance(document.get("sql"), str):
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "send {\"sql\": \"<BigQuery SQL>\", \"params\": {...}}"})
                return
            params = document.get("params") or {}
            if not isinstance(params, dict):
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "params must be an object {name: value}"})
                return
            try:
                result = runtime.query(document["sql"], params)
            except PlatformError as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            self._answer(HTTPStatus.OK, result)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — http.server's signature
            logger.debug("http: " + format, *args)

    return Handler


class RuntimeClient:
    """The runtime's HTTP API from another process (CLI, demo, tests)."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            data = orjson.dumps(body, default=json_default) if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            response = conn.getresponse()
            status, text = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise PlatformError(
                f"the local runtime on {self.host}:{self.port} does not answer ({type(exc).__name__}); "
                "is the stack up? (`dataplatform local status`, `dataplatform local up`)"
            ) from None
        finally:
            conn.close()
        try:
            return status, orjson.loads(text)
        except orjson.JSONDecodeError:
            raise PlatformError(f"the local runtime answered {status} with a body that is not JSON") from None

    def status(self) -> dict[str, Any]:
        status, body = self._call("GET", "/status")
        if status != 200:
            raise PlatformError(f"the local runtime's /status answered {status}: {body}")
        return dict(body)

    def sinks(self) -> dict[str, Any]:
        """`{"sinks": {name: counters}}`: `/status` without the table counts (cheap to poll)."""
        status, body = self._call("GET", "/sinks")
        if status != 200:
            raise PlatformError(f"the local runtime's /sinks answered {status}: {body}")
        return dict(body)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`{"columns": [...], "rows": [{...}]}`; PlatformError with the warehouse's message."""
        status, body = self._call("POST", "/query", {"sql": sql, "params": dict(params or {})})
        if status != 200:
            message = body.get("error") if isinstance(body, dict) else body
            raise PlatformError(str(message))
        return dict(body)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self.query(sql, params)["rows"])


# --------------------------------------------------------------------------- process entry


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dataplatform.local.runtime --port P --warehouse FILE` (env: settings)."""
    parser = argparse.ArgumentParser(prog="dataplatform-runtime", description="Local sinks and warehouse API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--threads-per-sink", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    gc_tuning.apply()

    from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
    from dataplatform.adapters.pubsub import PubSubAdmin
    from dataplatform.pipeline.scheduler import LocalScheduler
    from dataplatform.pipeline.warehouse_setup import ensure_warehouse
    from dataplatform.settings import runtime as platform_runtime

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    wiring = platform_runtime()
    catalog = wiring.catalog
    warehouse = DuckDBWarehouse(args.warehouse)
    try:
        steps = ensure_warehouse(warehouse, catalog)
        created = sum(1 for s in steps if s.outcome != "unchanged")
        logger.info("warehouse %s: %d object(s), %d created or updated", args.warehouse, len(steps), created)
        admin = PubSubAdmin(wiring.settings.project)
        local = LocalRuntime(
            plan_topology(catalog.schemas, None),
            admin,
            warehouse,
            wiring.codecs,
            wiring.platform_keys,
            threads_per_sink=args.threads_per_sink,
            warehouse_path=str(args.warehouse),
        )
        server = ThreadingHTTPServer((args.host, args.port), make_handler(local))
        server.daemon_threads = True
        http_thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        # Cloud Scheduler / Data Transfer's part: endpoints fire on their cron, waiting
        # partitions are retried when their upstreams become ready (pipeline/scheduler.py).
        scheduler = LocalScheduler(catalog, warehouse, wiring.clock)
        scheduler_thread = threading.Thread(target=scheduler.run_forever, args=(stop,), name="scheduler", daemon=True)
        local.start()
        http_thread.start()
        scheduler_thread.start()
        logger.info("runtime ready on %s:%d with %d sink(s)", args.host, args.port, len(local.sinks))
        stop.wait()
        logger.info("stopping: finishing the batches in flight")
        server.shutdown()
        scheduler_thread.join(timeout=10)
        local.stop()
        admin.close()
    finally:
        warehouse.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
