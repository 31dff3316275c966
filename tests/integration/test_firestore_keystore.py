"""FirestoreKeyStore against the real Firestore emulator: the key-store contract and more."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from dataplatform.adapters.firestore_keystore import FirestoreKeyStore, make_client
from dataplatform.errors import PlatformError, TransientError
from dataplatform.local.emulators import Emulator, free_port
from tests.contracts.keystore_contract import T0, KeyStoreContract, new_id, new_record

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def collection() -> str:
    return f"user_keys_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def firestore_store(firestore_emulator: Emulator, collection: str) -> FirestoreKeyStore:
    return FirestoreKeyStore(collection=collection, timeout=15)


class TestFirestoreKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self, firestore_store: FirestoreKeyStore) -> FirestoreKeyStore:
        return firestore_store


class CountingClient:
    """The real Firestore client, counting `get_all` round trips."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.get_all_calls: list[int] = []

    def get_all(self, refs: list[Any], **kwargs: Any) -> Any:
        self.get_all_calls.append(len(refs))
        return self._client.get_all(refs, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_get_many_is_one_get_all(firestore_emulator: Emulator, collection: str) -> None:
    client = CountingClient(make_client())
    store = FirestoreKeyStore(client=client, collection=collection)
    records = [new_record() for _ in range(3)]
    for record in records:
        store.create(record)
    ids = [r.record_id for r in records] + [new_id() for _ in range(297)]
    assert store.get_many(ids) == {r.record_id: r for r in records}
    assert client.get_all_calls == [300]
    assert store.get_many([]) == {}
    assert client.get_all_calls == [300]  # nothing to read: no round trip


def test_documents_hold_bytes_and_tombstones_hold_no_keys(
    firestore_store: FirestoreKeyStore,
) -> None:
    record = new_record()
    firestore_store.create(record)
    ref = firestore_store.client.collection(firestore_store.collection).document(record.record_id)
    stored = ref.get().to_dict()
    assert stored["aead_keyset"] == record.aead_keyset and isinstance(stored["aead_keyset"], bytes)
    assert stored["status"] == "active" and stored["pseudonym"] == record.pseudonym

    firestore_store.erase(record.record_id, T0 + timedelta(days=1))
    tomb = ref.get().to_dict()
    assert set(tomb) == {"status", "created_at", "erased_at"}
    assert tomb["status"] == "erased"


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"status": "paused", "created_at": T0}, "field 'status' is 'paused'"),
        ({"status": "active"}, "field 'created_at' is missing"),
        ({"status": "active", "created_at": T0, "pseudonym": "p", "aead_keyset": "text",
          "daead_keyset": b"x"}, "field 'aead_keyset' is missing or not bytes"),
        ({"status": "active", "created_at": T0, "aead_keyset": b"a", "daead_keyset": b"d"},
         "field 'pseudonym' is missing"),
        ({"status": "erased", "created_at": T0}, "tombstone field 'erased_at' is missing"),
    ],
)
def test_malformed_document_is_a_clear_error(
    firestore_store: FirestoreKeyStore, document: dict[str, Any], complaint: str
) -> None:
    record_id = new_id()
    firestore_store.client.collection(firestore_store.collection).document(record_id).set(document)
    with pytest.raises(PlatformError) as caught:
        firestore_store.get_many([record_id])
    message = str(caught.value)
    assert f"key record {record_id!r}" in message and complaint in message
    assert firestore_store.collection in message


@pytest.mark.parametrize("bad_id", ["", "a/b", ".."])
def test_invalid_record_id_is_rejected(firestore_store: FirestoreKeyStore, bad_id: str) -> None:
    with pytest.raises(PlatformError, match="invalid key record id"):
        firestore_store.get_many([new_id(), bad_id])
    with pytest.raises(PlatformError, match="invalid key record id"):
        firestore_store.erase(bad_id, T0)


def test_naive_times_are_rejected(firestore_store: FirestoreKeyStore) -> None:
    record = new_record()
    naive = type(record)(**{**record.__dict__, "created_at": T0.replace(tzinfo=None)})
    with pytest.raises(PlatformError, match="naive created_at"):
        firestore_store.create(naive)
    with pytest.raises(PlatformError, match="timezone-aware"):
        firestore_store.erase(record.record_id, T0.replace(tzinfo=None))


def test_unreachable_firestore_is_transient(
    firestore_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on the port: the adapter raises TransientError (Pub/Sub retries)."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = FirestoreKeyStore(collection="user_keys", timeout=2)
    expected = r"key store \(Firestore\) unavailable while reading 1 key records"
    with pytest.raises(TransientError, match=expected):
        store.get_many([new_id()])
    with pytest.raises(TransientError, match="while creating key record"):
        store.create(new_record())


def test_unreachable_firestore_erase_is_transient(
    firestore_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = FirestoreKeyStore(collection="user_keys", timeout=2)
    with pytest.raises(TransientError, match="while erasing key record"):
        store.erase(new_id(), T0)


def test_malformed_active_record_can_still_be_erased(firestore_store: FirestoreKeyStore) -> None:
    """Erasure must not depend on parsing the keys it destroys."""
    record_id = new_id()
    ref = firestore_store.client.collection(firestore_store.collection).document(record_id)
    ref.set(
        {"status": "active", "created_at": T0, "pseudonym": 7, "aead_keyset": "junk", "extra": 1}
    )
    assert firestore_store.erase(record_id, T0 + timedelta(days=1)) is True
    assert set(ref.get().to_dict()) == {"status", "created_at", "erased_at"}
    tomb = firestore_store.get_many([record_id])[record_id]
    assert tomb.erased and tomb.created_at == T0 and tomb.erased_at == T0 + timedelta(days=1)
