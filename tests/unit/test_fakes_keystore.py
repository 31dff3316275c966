"""The in-memory key store used by unit tests passes the same contract as Firestore."""

from __future__ import annotations

import pytest

from tests.contracts.keystore_contract import KeyStoreContract, new_record
from tests.fakes import MemoryKeyStore


class TestMemoryKeyStore(KeyStoreContract):
    @pytest.fixture
    def store(self) -> MemoryKeyStore:
        return MemoryKeyStore()


def test_memory_store_counts_round_trips() -> None:
    store = MemoryKeyStore()
    record = new_record()
    store.create(record)
    store.get_many([record.record_id, "missing"])
    assert store.get_many_calls == [(record.record_id, "missing")]
    assert store.create_calls == [record.record_id]
