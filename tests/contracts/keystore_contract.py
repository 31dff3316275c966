"""The ports.KeyStore contract: what every key store (fake or Firestore) must do.

Subclass `KeyStoreContract` in a test module and provide a `store` fixture; every test here
then runs against that store. Tests use fresh random record ids, so a store shared across
tests (the Firestore emulator) leaks no state between them.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta, timezone

from dataplatform.ports import KeyStore, UserKeys

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def new_id() -> str:
    """A record id shaped like the real ones (hex HMAC-SHA256)."""
    return secrets.token_hex(32)


def new_record(record_id: str | None = None, created_at: datetime = T0) -> UserKeys:
    return UserKeys(
        record_id=record_id or new_id(),
        pseudonym=secrets.token_hex(16),
        aead_keyset=secrets.token_bytes(120),
        daead_keyset=secrets.token_bytes(150),
        created_at=created_at,
    )


class KeyStoreContract:
    """Base class of the contract tests; subclasses define the `store` fixture
    (pytest reports "fixture 'store' not found" for a subclass that forgets)."""

    def test_implements_the_port(self, store: KeyStore) -> None:
        assert isinstance(store, KeyStore)

    def test_get_many_of_nothing_is_empty(self, store: KeyStore) -> None:
        assert store.get_many([]) == {}

    def test_get_many_of_missing_ids_is_empty(self, store: KeyStore) -> None:
        assert store.get_many([new_id(), new_id()]) == {}

    def test_create_then_get_returns_the_same_record(self, store: KeyStore) -> None:
        record = new_record()
        assert store.create(record) == record
        assert store.get_many([record.record_id]) == {record.record_id: record}

    def test_stored_record_keeps_types(self, store: KeyStore) -> None:
        record = new_record()
        record = UserKeys(
            record_id=record.record_id,
            pseudonym=record.pseudonym,
            aead_keyset=bytes(range(256)),  # every byte value survives the round trip
            daead_keyset=b"\x00" * 64,
            created_at=record.created_at,
        )
        store.create(record)
        got = store.get_many([record.record_id])[record.record_id]
        assert isinstance(got.aead_keyset, bytes) and got.aead_keyset == bytes(range(256))
        assert got.daead_keyset == b"\x00" * 64
        assert got.created_at == T0 and got.created_at.utcoffset() == timedelta(0)
        assert got.status == "active" and not got.erased and got.erased_at is None

    def test_get_many_returns_only_existing_among_many(self, store: KeyStore) -> None:
        present = [new_record() for _ in range(3)]
        for record in present:
            store.create(record)
        ids = [new_id(), present[0].record_id, new_id(), present[1].record_id, present[2].record_id]
        assert store.get_many(ids) == {r.record_id: r for r in present}

    def test_get_many_with_duplicate_ids(self, store: KeyStore) -> None:
        record = new_record()
        store.create(record)
        assert store.get_many([record.record_id, record.record_id]) == {record.record_id: record}

    def test_second_create_gets_the_first_record(self, store: KeyStore) -> None:
        first = new_record()
        second = new_record(first.record_id, created_at=T0 + timedelta(seconds=5))
        assert store.create(first) == first
        assert store.create(second) == first
        assert store.get_many([first.record_id]) == {first.record_id: first}

    def test_create_many_of_nothing_is_empty(self, store: KeyStore) -> None:
        assert store.create_many([]) == {}

    def test_create_many_stores_every_new_record(self, store: KeyStore) -> None:
        records = [new_record() for _ in range(3)]
        assert store.create_many(records) == {r.record_id: r for r in records}
        assert store.get_many([r.record_id for r in records]) == {r.record_id: r for r in records}

    def test_create_many_returns_the_records_that_were_there_first(self, store: KeyStore) -> None:
        existing, erased = new_record(), new_record()
        store.create(existing)
        store.create(erased)
        store.erase(erased.record_id, T0 + timedelta(days=1))
        fresh = new_record()
        got = store.create_many([new_record(existing.record_id), fresh, new_record(erased.record_id)])
        assert got[existing.record_id] == existing and got[fresh.record_id] == fresh
        assert got[erased.record_id].erased and got[erased.record_id].aead_keyset is None
        assert store.get_many([fresh.record_id, existing.record_id]) == {fresh.record_id: fresh, existing.record_id: existing}

    def test_create_many_with_a_repeated_id_keeps_the_first(self, store: KeyStore) -> None:
        first = new_record()
        again = new_record(first.record_id, created_at=T0 + timedelta(seconds=1))
        assert store.create_many([first, again]) == {first.record_id: first}
        assert store.get_many([first.record_id]) == {first.record_id: first}

    def test_create_many_beyond_one_commit(self, store: KeyStore) -> None:
        records = [new_record() for _ in range(620)]  # Firestore commits at most 500 writes
        store.create(records[550])  # in the second commit: that commit settles one by one
        got = store.create_many(records)
        assert got == {r.record_id: r for r in records}
        assert store.get_many([r.record_id for r in records]) == got

    def test_erase_existing_leaves_a_tombstone(self, store: KeyStore) -> None:
        record = new_record()
        store.create(record)
        at = T0 + timedelta(days=3)
        assert store.erase(record.record_id, at) is True
        tomb = store.get_many([record.record_id])[record.record_id]
        assert tomb.erased and tomb.status == "erased"
        assert tomb.pseudonym is None and tomb.aead_keyset is None and tomb.daead_keyset is None
        assert tomb.erased_at == at
        assert tomb.created_at == record.created_at

    def test_erase_unknown_creates_a_tombstone_and_returns_false(self, store: KeyStore) -> None:
        record_id = new_id()
        at = T0 + timedelta(hours=1)
        assert store.erase(record_id, at) is False
        tomb = store.get_many([record_id])[record_id]
        assert tomb.erased and tomb.pseudonym is None and tomb.aead_keyset is None
        assert tomb.erased_at == at

    def test_erase_twice_keeps_the_first_erasure(self, store: KeyStore) -> None:
        record = new_record()
        store.create(record)
        first, later = T0 + timedelta(days=1), T0 + timedelta(days=2)
        assert store.erase(record.record_id, first) is True
        assert store.erase(record.record_id, later) is False
        assert store.get_many([record.record_id])[record.record_id].erased_at == first

    def test_create_after_erase_returns_the_tombstone(self, store: KeyStore) -> None:
        record = new_record()
        store.create(record)
        store.erase(record.record_id, T0 + timedelta(days=1))
        again = store.create(new_record(record.record_id))
        assert again.erased and again.aead_keyset is None and again.pseudonym is None
        assert store.get_many([record.record_id])[record.record_id].erased

    def test_create_after_erase_of_unknown_mints_nothing(self, store: KeyStore) -> None:
        record_id = new_id()
        store.erase(record_id, T0)
        assert store.create(new_record(record_id)).erased

    def test_get_many_of_500_ids(self, store: KeyStore) -> None:
        ids = [new_id() for _ in range(500)]
        present = [new_record(rid) for rid in ids[::25]]  # 20 of the 500 exist
        for record in present:
            store.create(record)
        got = store.get_many(ids)
        assert got == {r.record_id: r for r in present}

    def test_concurrent_creates_agree_on_one_winner(self, store: KeyStore) -> None:
        record_id = new_id()
        candidates = [new_record(record_id) for _ in range(6)]
        results: list[UserKeys] = []
        barrier = threading.Barrier(len(candidates))
        lock = threading.Lock()

        def race(candidate: UserKeys) -> None:
            barrier.wait()
            won = store.create(candidate)
            with lock:
                results.append(won)

        threads = [threading.Thread(target=race, args=(c,)) for c in candidates]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == len(candidates)
        winner = store.get_many([record_id])[record_id]
        assert winner in candidates
        assert all(result == winner for result in results)

    def test_erase_racing_creates_ends_erased(self, store: KeyStore) -> None:
        """Whatever the interleaving, once erase returned the record is a tombstone."""
        record_id = new_id()
        barrier = threading.Barrier(5)

        def create() -> None:
            barrier.wait()
            store.create(new_record(record_id))

        def erase() -> None:
            barrier.wait()
            store.erase(record_id, T0 + timedelta(days=1))

        threads = [threading.Thread(target=create) for _ in range(4)]
        threads.append(threading.Thread(target=erase))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert store.get_many([record_id])[record_id].erased
        assert store.create(new_record(record_id)).erased
