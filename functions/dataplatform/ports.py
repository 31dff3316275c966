"""The ports: what the use cases need from the outside world, as Protocols.

Use cases in `pipeline/` and `privacy/` depend only on these; `adapters/` implement them
(Cloud KMS or a local Tink key file, Firestore, Pub/Sub, GCS, BigQuery or DuckDB) and
`settings.py` is the one place that picks the adapters. Unit tests use in-memory fakes
that pass the same contract suites as the real adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@runtime_checkable
class Kms(Protocol):
    """Encrypts small secrets (the platform wrapping keyset) under the platform KMS key.

    Raw symmetric encryption, as Cloud KMS `encrypt` does: that is the format BigQuery's
    `KEYS.KEYSET_CHAIN(kms_key_uri, wrapped_keyset)` unwraps.
    """

    @property
    def key_uri(self) -> str:
        """`gcp-kms://projects/…/cryptoKeys/…` in GCP; `local-kms://<path>` locally."""
        ...

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes: ...

    def decrypt(self, ciphertext: bytes, associated_data: bytes = b"") -> bytes: ...


@runtime_checkable
class BlobStore(Protocol):
    """The platform config bucket (GCS): small objects, created once, read often."""

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None when absent."""
        ...

    def create(self, name: str, data: bytes) -> bool:
        """Create-if-absent; False when the object already existed (nothing written)."""
        ...


@dataclass(frozen=True)
class UserKeys:
    """One data subject's key record, keyed by `record_id` = HMAC(secret, user_id).

    `aead_keyset` / `daead_keyset` are Tink keysets (AES-256-GCM / AES-SIV) serialized and
    encrypted by the platform wrapping keyset with `record_id` as associated data.
    An erased record is a tombstone: no pseudonym, no keysets, so late events of that user
    mint no new key.
    """

    record_id: str
    pseudonym: str | None
    aead_keyset: bytes | None
    daead_keyset: bytes | None
    created_at: datetime
    status: Literal["active", "erased"] = "active"
    erased_at: datetime | None = None

    @property
    def erased(self) -> bool:
        return self.status == "erased"


@runtime_checkable
class KeyStore(Protocol):
    """Per-user key records. Firestore in GCP and locally (emulator); a dict in unit tests."""

    def get_many(self, record_ids: Sequence[str]) -> dict[str, UserKeys]:
        """All existing records among `record_ids`, in one round trip (Firestore `get_all`)."""
        ...

    def create(self, record: UserKeys) -> UserKeys:
        """Store a new record unless one exists; return the record that won (maybe another's)."""
        ...

    def create_many(self, records: Sequence[UserKeys]) -> dict[str, UserKeys]:
        """`create` for every record, in as few round trips as the store allows (Firestore:
        one batched commit per 500); record id → the record that won (maybe another's)."""
        ...

    def erase(self, record_id: str, at: datetime) -> bool:
        """Replace the record by a tombstone (creating one if absent). True if keys existed."""
        ...


@dataclass(frozen=True)
class Message:
    data: bytes
    attributes: Mapping[str, str]


@runtime_checkable
class Publisher(Protocol):
    """Pub/Sub publishing. `publish` returns only when every message is acknowledged."""

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        """Publish all, wait for every future; return message ids. Raises TransientError."""
        ...


@runtime_checkable
class Warehouse(Protocol):
    """BigQuery in GCP, DuckDB locally: one interface, small capability differences.

    SQL given to `query` is BigQuery SQL; the DuckDB adapter transpiles it. This is what
    the hot paths (sinks, reveal) need; setup and endpoint runs use the fuller
    `adapters.warehouse_base.ManagedWarehouse` (tables, views, partition replacement), which
    both adapters implement.
    """

    name: str

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int: ...
