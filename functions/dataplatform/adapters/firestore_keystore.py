"""ports.KeyStore on Firestore: one document per data subject, id = record id (an HMAC).

Why these calls:
- `get_many` is ONE `client.get_all(refs)` (BatchGetDocuments): the anonymizer resolves
  every distinct user of a Pub/Sub batch in a single round trip.
- `create` is `DocumentReference.create()`, which fails with AlreadyExists when the
  document exists. Two anonymizers racing on a new user therefore cannot both write: the
  loser re-reads and uses the winner's keys, so every user ends with exactly one keyset.
- `create_many` writes all the new users of a batch in ONE batched commit of `create`s (up
  to 500 a commit): against the emulator 0.4–0.65 ms a record instead of 6–10 ms for one
  `create()` each (measured). The commit is atomic: if another writer created any of them
  first it fails whole with AlreadyExists; the records are then read back in one `get_all`
  (those that exist are the winners, used as they are) and the rest committed again. This
  is the common case on a cold start: concurrent batches of different event types share
  new users, and settling a failed commit one `create` at a time made it slower than before.
- `erase` runs in a transaction that replaces the document by a tombstone (status
  "erased", erased_at; no pseudonym, no keysets). The tombstone stays forever, so a late
  event of an erased user finds it and mints no new key (create() on it fails too).

Document fields: pseudonym (string), aead_keyset / daead_keyset (Firestore bytes),
created_at / erased_at (timestamps), status ("active" | "erased").
Against the emulator (FIRESTORE_EMULATOR_HOST set) the client uses anonymous credentials.
Retryable failures (unavailable, deadline, aborted, resource exhausted…) raise
TransientError so Pub/Sub redelivers; anything else is a PlatformError saying what to fix.
Error messages name record ids only: they are keyed hashes, never user ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from dataplatform.adapters.google_errors import transient_types
from dataplatform.errors import PlatformError, TransientError
from dataplatform.ports import UserKeys

DEFAULT_COLLECTION = "user_keys"
DEFAULT_DATABASE = "(default)"
DEFAULT_TIMEOUT_SECONDS = 30.0
EMULATOR_PROJECT = "dataplatform-local"
STATUS_ACTIVE = "active"
STATUS_ERASED = "erased"
ERASE_ATTEMPTS = 5
BATCH_WRITE_LIMIT = 500
"""Firestore's limit of writes in one commit."""
CREATE_MANY_ATTEMPTS = 3


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Map google-cloud failures to TransientError (retry) or PlatformError (fix something)."""
    from google.api_core import exceptions as gexc

    try:
        yield
    except PlatformError:
        raise
    except transient_types() as exc:
        raise TransientError(
            f"key store (Firestore) unavailable while {action}: {type(exc).__name__}; "
            "the message will be retried"
        ) from exc
    except gexc.GoogleAPICallError as exc:
        raise PlatformError(
            f"key store (Firestore) refused {action}: {type(exc).__name__}: {exc.message}; "
            "check the Firestore database exists and the service account may read and "
            "write its key collection"
        ) from exc


def _retry(deadline: float) -> Any:
    """Retry UNAVAILABLE / DEADLINE_EXCEEDED / INTERNAL within `deadline` seconds in total.

    The client's default keeps retrying for 300 s; a function must instead give up within
    its own budget and let Pub/Sub redeliver (TransientError)."""
    from google.api_core import exceptions as gexc
    from google.api_core import retry

    return retry.Retry(
        predicate=retry.if_exception_type(
            gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError
        ),
        initial=0.1,
        maximum=2.0,
        multiplier=2.0,
        timeout=deadline,
    )


def _utc(value: datetime) -> datetime:
    """A plain timezone-aware UTC datetime (Firestore returns DatetimeWithNanoseconds)."""
    value = value.astimezone(timezone.utc)
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond, tzinfo=timezone.utc,
    )


def _check_id(record_id: str) -> str:
    valid = isinstance(record_id, str) and record_id not in ("", ".", "..")
    if not valid or "/" in record_id:
        raise PlatformError(
            f"invalid key record id {record_id!r}: expected the hex HMAC of a user id "
            "(PlatformKeys.record_id)"
        )
    return record_id


def to_document(record: UserKeys) -> dict[str, Any]:
    """The Firestore document of a record (bytes stay bytes: Firestore bytesValue)."""
    if record.created_at.tzinfo is None:
        raise PlatformError(
            f"key record {record.record_id!r} has a naive created_at; use a timezone-aware UTC time"
        )
    doc: dict[str, Any] = {"status": record.status, "created_at": record.created_at}
    if record.erased:
        doc["erased_at"] = record.erased_at or record.created_at
    else:
        doc.update(
            pseudonym=record.pseudonym,
            aead_keyset=bytes(record.aead_keyset) if record.aead_keyset is not None else None,
            daead_keyset=bytes(record.daead_keyset) if record.daead_keyset is not None else None,
        )
    return doc


def from_document(record_id: str, doc: Mapping[str, Any], collection: str) -> UserKeys:
    """Parse a stored document; a malformed one is a PlatformError naming the field."""

    def bad(what: str) -> PlatformError:
        return PlatformError(
            f"key record {record_id!r} in Firestore collection {collection!r} is malformed: "
            f"{what}; restore it from a backup or erase it with `dataplatform forget`"
        )

    status = doc.get("status")
    if status not in (STATUS_ACTIVE, STATUS_ERASED):
        raise bad(f"field 'status' is {status!r}, expected 'active' or 'erased'")
    created_at = doc.get("created_at")
    if not isinstance(created_at, datetime):
        raise bad("field 'created_at' is missing or not a timestamp")
    if status == STATUS_ERASED:
        erased_at = doc.get("erased_at")
        if not isinstance(erased_at, datetime):
            raise bad("tombstone field 'erased_at' is missing or not a timestamp")
        return UserKeys(
            record_id=record_id,
            pseudonym=None,
            aead_keyset=None,
            daead_keyset=None,
            created_at=_utc(created_at),
            status="erased",
            erased_at=_utc(erased_at),
        )
    pseudonym = doc.get("pseudonym")
    aead_keyset = doc.get("aead_keyset")
    daead_keyset = doc.get("daead_keyset")
    if not isinstance(pseudonym, str) or not pseudonym:
        raise bad("field 'pseudonym' is missing or not a string")
    for name, value in (("aead_keyset", aead_keyset), ("daead_keyset", daead_keyset)):
        if not isinstance(value, bytes | bytearray):
            raise bad(f"field {name!r} is missing or not bytes")
    return UserKeys(
        record_id=record_id,
        pseudonym=pseudonym,
        aead_keyset=bytes(aead_keyset),
        daead_keyset=bytes(daead_keyset),
        created_at=_utc(created_at),
        status="active",
        erased_at=None,
    )


def _tombstone_document(created_at: datetime, at: datetime) -> dict[str, Any]:
    return {"status": STATUS_ERASED, "created_at": created_at, "erased_at": at}


def make_client(project: str | None = None, database: str = DEFAULT_DATABASE) -> Any:
    """A google-cloud-firestore Client; anonymous credentials against the emulator."""
    from google.cloud import firestore

    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return firestore.Client(
            project=project or os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_PROJECT,
            credentials=AnonymousCredentials(),
            database=database,
        )
    return firestore.Client(project=project, database=database)


class FirestoreKeyStore:
    """ports.KeyStore on a Firestore collection (default `user_keys`)."""

    def __init__(
        self,
        client: Any | None = None,
        project: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        database: str = DEFAULT_DATABASE,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not collection or "/" in collection:
            raise PlatformError(
                f"invalid Firestore collection name {collection!r} for the key store"
            )
        with _translated("creating the Firestore client"):
            self._client = client if client is not None else make_client(project, database)
        self._collection_name = collection
        self._collection = self._client.collection(collection)
        self._timeout = timeout
        self._retry = _retry(timeout)

    @property
    def client(self) -> Any:
        return self._client

    @property
    def collection(self) -> str:
        return self._collection_name

    def _ref(self, record_id: str) -> Any:
        return self._collection.document(_check_id(record_id))

    def get_many(self, record_ids: Sequence[str]) -> dict[str, UserKeys]:
        unique = list(dict.fromkeys(_check_id(rid) for rid in record_ids))
        if not unique:
            return {}
        refs = [self._collection.document(rid) for rid in unique]
        found: dict[str, UserKeys] = {}
        with _translated(f"reading {len(refs)} key records"):
            for snapshot in self._client.get_all(refs, retry=self._retry, timeout=self._timeout):
                if snapshot.exists:
                    rid = snapshot.id
                    found[rid] = from_document(rid, snapshot.to_dict() or {}, self._collection_name)
        return found

    def create(self, record: UserKeys) -> UserKeys:
        from google.api_core.exceptions import AlreadyExists

        ref = self._ref(record.record_id)
        document = to_document(record)
        with _translated(f"creating key record {record.record_id!r}"):
            try:
                ref.create(document, retry=self._retry, timeout=self._timeout)
                return record
            except AlreadyExists:
                pass  # another writer won the race (or the user is erased): use theirs
            snapshot = ref.get(retry=self._retry, timeout=self._timeout)
        if not snapshot.exists:
            raise TransientError(
                f"key record {record.record_id!r} was reported to exist but cannot be read "
                "back; the message will be retried"
            )
        return from_document(record.record_id, snapshot.to_dict() or {}, self._collection_name)

    def create_many(self, records: Sequence[UserKeys]) -> dict[str, UserKeys]:
        first: dict[str, UserKeys] = {}  # one write per document: a commit may not touch one twice
        for record in records:
            first.setdefault(record.record_id, record)
        unique = list(first.values())
        won: dict[str, UserKeys] = {}
        for start in range(0, len(unique), BATCH_WRITE_LIMIT):
            won.update(self._create_chunk(unique[start : start + BATCH_WRITE_LIMIT]))
        return won

    def _create_chunk(self, chunk: list[UserKeys]) -> dict[str, UserKeys]:
        """One atomic commit of creates. When it fails because some exist (another anonymizer
        resolving the same new users), read them in one `get_all`, keep theirs, and commit
        the rest again; after CREATE_MANY_ATTEMPTS, settle what is left one `create` each."""
        from google.api_core.exceptions import AlreadyExists

        won: dict[str, UserKeys] = {}
        pending = chunk
        for _ in range(CREATE_MANY_ATTEMPTS):
            batch = self._client.batch()
            for record in pending:
                batch.create(self._ref(record.record_id), to_document(record))
            with _translated(f"creating {len(pending)} key records"):
                try:
                    batch.commit(retry=self._retry, timeout=self._timeout)
                    committed = True
                except AlreadyExists:
                    committed = False
            if committed:
                won.update((record.record_id, record) for record in pending)
                return won
            existing = self.get_many([record.record_id for record in pending])
            won.update(existing)
            pending = [record for record in pending if record.record_id not in existing]
            if not pending:
                return won
        for record in pending:
            won[record.record_id] = self.create(record)
        return won

    def erase(self, record_id: str, at: datetime) -> bool:
        """Replace the record by a tombstone with optimistic concurrency, not a transaction.

        Read, then write conditioned on what was read: `create()` when there was no document,
        `update()` with a last-update-time precondition otherwise (dropping the pseudonym, the
        keysets and any other field). A concurrent writer makes the condition fail and the
        loop re-reads. A malformed active record is still erased: erasure must not depend on
        parsing the keys it destroys.
        """
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition
        from google.cloud import firestore

        if at.tzinfo is None:
            raise PlatformError("erase needs a timezone-aware UTC time for erased_at")
        ref = self._ref(record_id)
        with _translated(f"erasing key record {record_id!r}"):
            for _ in range(ERASE_ATTEMPTS):
                snapshot = ref.get(retry=self._retry, timeout=self._timeout)
                if not snapshot.exists:
                    try:
                        ref.create(
                            _tombstone_document(at, at), retry=self._retry, timeout=self._timeout
                        )
                        return False
                    except AlreadyExists:
                        continue  # created meanwhile: erase what is there now
                current = snapshot.to_dict() or {}
                erased_at = current.get("erased_at")
                if current.get("status") == STATUS_ERASED and isinstance(erased_at, datetime):
                    return False  # already a tombstone: keep the first erasure time
                created_at = current.get("created_at")
                changes: dict[str, Any] = {name: firestore.DELETE_FIELD for name in current}
                changes.update(
                    status=STATUS_ERASED,
                    created_at=created_at if isinstance(created_at, datetime) else at,
                    erased_at=at,
                )
                try:
                    ref.update(
                        changes,
                        option=self._client.write_option(last_update_time=snapshot.update_time),
                        retry=self._retry,
                        timeout=self._timeout,
                    )
                    return True
                except FailedPrecondition:
                    continue  # changed since we read it: read again
        raise TransientError(
            f"key record {record_id!r} kept changing during {ERASE_ATTEMPTS} erase attempts; "
            "retry the erasure"
        )

    def count(self) -> int:
        """Number of documents in the collection (operations and tests; not on the hot path)."""
        with _translated("counting key records"):
            result = self._collection.count().get(retry=self._retry, timeout=self._timeout)
        return int(result[0][0].value)
