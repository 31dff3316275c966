"""In-memory fakes of the ports, for unit tests only.

Each fake keeps the semantics of the real adapter that its contract suite checks
(`tests/contracts/…`), so a use case tested on a fake behaves the same on Firestore or GCS.
They also record their calls, so tests can assert round trips (e.g. one `get_many` per
batch) without mocking.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from dataplatform.ports import UserKeys

UTC = timezone.utc
DEFAULT_NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class FixedClock:
    """A clock that always returns the same instant (ports.Clock)."""

    def __init__(self, now: datetime = DEFAULT_NOW) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = now

    def now(self) -> datetime:
        return self._now


class ManualClock:
    """A clock that only moves when a test says so (ports.Clock), for TTLs and deadlines."""

    def __init__(self, start: datetime = DEFAULT_NOW) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Move forward by `seconds` (plus any timedelta keywords); return the new time."""
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds, **kwargs)
            return self._now

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now


class MemoryKeyStore:
    """ports.KeyStore in a dict. Thread-safe; counts calls for round-trip assertions."""

    def __init__(self) -> None:
        self._records: dict[str, UserKeys] = {}
        self._lock = threading.Lock()
        self.get_many_calls: list[tuple[str, ...]] = []
        self.create_calls: list[str] = []
        self.create_many_calls: list[int] = []
        self.erase_calls: list[str] = []

    def get_many(self, record_ids: Sequence[str]) -> dict[str, UserKeys]:
        with self._lock:
            self.get_many_calls.append(tuple(record_ids))
            return {rid: self._records[rid] for rid in record_ids if rid in self._records}

    def create(self, record: UserKeys) -> UserKeys:
        with self._lock:
            self.create_calls.append(record.record_id)
            existing = self._records.get(record.record_id)
            if existing is not None:
                return existing
            self._records[record.record_id] = record
            return record

    def create_many(self, records: Sequence[UserKeys]) -> dict[str, UserKeys]:
        """One `create` per record (so a subclass overriding `create` scripts both)."""
        with self._lock:
            self.create_many_calls.append(len(records))
        return {record.record_id: self.create(record) for record in records}

    def erase(self, record_id: str, at: datetime) -> bool:
        with self._lock:
            self.erase_calls.append(record_id)
            existing = self._records.get(record_id)
            had_keys = existing is not None and not existing.erased
            tombstone = UserKeys(
                record_id=record_id,
                pseudonym=None,
                aead_keyset=None,
                daead_keyset=None,
                created_at=existing.created_at if existing is not None else at,
                status="erased",
                erased_at=existing.erased_at if existing is not None and existing.erased else at,
            )
            self._records[record_id] = tombstone
            return had_keys

    # --- test helpers (not part of the port)
    def put(self, record: UserKeys) -> None:
        """Store `record` unconditionally (to arrange a state)."""
        with self._lock:
            self._records[record.record_id] = record

    def all(self) -> dict[str, UserKeys]:
        with self._lock:
            return dict(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


class MemoryBlobStore:
    """ports.BlobStore in a dict: create-if-absent semantics like GCS `if_generation_match=0`."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.reads: list[str] = []

    def read(self, name: str) -> bytes | None:
        with self._lock:
            self.reads.append(name)
            return self._objects.get(name)

    def create(self, name: str, data: bytes) -> bool:
        with self._lock:
            if name in self._objects:
                return False
            self._objects[name] = bytes(data)
            return True

    # --- test helpers
    def put(self, name: str, data: bytes) -> None:
        with self._lock:
            self._objects[name] = bytes(data)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)


def tombstone_of(record: UserKeys, at: datetime) -> UserKeys:
    """The tombstone a store leaves for `record` when erased at `at` (for expectations)."""
    return replace(
        record, pseudonym=None, aead_keyset=None, daead_keyset=None, status="erased", erased_at=at
    )
