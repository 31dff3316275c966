"""KeyService: batch resolution, minting, races, caching (LRU + TTL), erasure, failures.

Runs on the in-memory key store with REAL platform keys (bootstrapped with the local Tink
KMS on an in-memory bucket), so encryption round trips are real.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from dataplatform.adapters.local_kms import LocalKms
from dataplatform.errors import PlatformError, TransientError
from dataplatform.ports import UserKeys
from dataplatform.privacy.key_service import MISSING, KeyService, TtlLruCache
from dataplatform.privacy.keys import PlatformKeys, bootstrap
from dataplatform.privacy.user_keys import mint, open_keys
from tests.fakes import FixedClock, ManualClock, MemoryBlobStore, MemoryKeyStore

AAD = b"contact.email"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    kms = LocalKms(tmp_path_factory.mktemp("kms") / "local_kms_keyset.json")
    blobs = MemoryBlobStore()
    bootstrap(kms, blobs)
    return PlatformKeys.load(kms, blobs)


@pytest.fixture
def store() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def service(store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock) -> KeyService:
    return KeyService(store, platform, clock, cache_size=1000, ttl_seconds=300)


# ------------------------------------------------------------------ resolving and minting


def test_new_users_are_minted_and_stored(
    service: KeyService, store: MemoryKeyStore, platform: PlatformKeys
) -> None:
    got = service.resolve(["alice", "bob"])
    assert set(got) == {"alice", "bob"}
    alice = got["alice"]
    assert alice is not None
    assert alice.record_id == platform.record_id("alice")
    assert len(alice.pseudonym) == 32 and int(alice.pseudonym, 16) >= 0
    assert got["bob"] is not None and got["bob"].pseudonym != alice.pseudonym
    stored = store.all()
    assert set(stored) == {platform.record_id("alice"), platform.record_id("bob")}
    assert stored[alice.record_id].pseudonym == alice.pseudonym
    assert "alice" not in repr(stored)  # the store never sees the user id
    assert service.minted == 2


def test_the_new_users_of_a_batch_are_stored_in_one_call(
    service: KeyService, platform: PlatformKeys, store: MemoryKeyStore, clock: ManualClock
) -> None:
    store.put(mint(platform, platform.record_id("known"), clock.now()))
    service.resolve(["a", "known", "b", "c", "a"])
    assert store.create_many_calls == [3] and service.minted == 3
    service.resolve(["a", "b", "d"])  # cached, cached, new
    assert store.create_many_calls == [3, 1]


def test_a_store_that_answers_for_the_wrong_records_is_an_error(platform: PlatformKeys, clock: ManualClock) -> None:
    class Confused(MemoryKeyStore):
        def create_many(self, records: Sequence[UserKeys]) -> dict[str, UserKeys]:
            return {}

    with pytest.raises(PlatformError, match="returned no record when creating .* adapter is broken"):
        KeyService(Confused(), platform, clock).resolve(["gina"])


def test_resolved_keys_encrypt_and_decrypt(
    service: KeyService, platform: PlatformKeys, store: MemoryKeyStore
) -> None:
    crypto = service.resolve(["alice"])["alice"]
    assert crypto is not None
    ciphertext = crypto.aead.encrypt(b"alice@example.com", AAD)
    reopened = open_keys(platform, store.all()[crypto.record_id])
    assert reopened.aead.decrypt(ciphertext, AAD) == b"alice@example.com"
    same = crypto.daead.encrypt_deterministically(b"x", AAD)
    assert reopened.daead.encrypt_deterministically(b"x", AAD) == same


def test_one_get_many_per_resolve_for_all_misses(
    service: KeyService, store: MemoryKeyStore, platform: PlatformKeys
) -> None:
    service.resolve(["a", "b", "c", "a", "b"])
    assert store.get_many_calls == [tuple(platform.record_id(u) for u in ("a", "b", "c"))]


def test_cache_hit_avoids_the_store(
    service: KeyService, store: MemoryKeyStore, platform: PlatformKeys
) -> None:
    first = service.resolve(["a", "b"])
    second = service.resolve(["b", "a"])
    assert len(store.get_many_calls) == 1
    assert second["a"] is first["a"] and second["b"] is first["b"]
    service.resolve(["a", "d"])
    assert store.get_many_calls[1:] == [(platform.record_id("d"),)]
    assert service.cache_hits == 3 and service.cache_misses == 3


def test_ttl_expiry_reads_the_store_again(
    service: KeyService, store: MemoryKeyStore, clock: ManualClock
) -> None:
    first = service.resolve(["a"])["a"]
    clock.advance(299)
    service.resolve(["a"])
    assert len(store.get_many_calls) == 1
    clock.advance(2)
    again = service.resolve(["a"])["a"]
    assert len(store.get_many_calls) == 2
    assert again is not None and first is not None and again.pseudonym == first.pseudonym
    assert len(store.create_calls) == 1  # found, not minted again


def test_lru_eviction_beyond_cache_size(
    store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    service = KeyService(store, platform, clock, cache_size=2, ttl_seconds=300)
    service.resolve(["a"])
    service.resolve(["b"])
    service.resolve(["a"])  # a is now the most recent
    service.resolve(["c"])  # evicts b
    calls_before = len(store.get_many_calls)
    service.resolve(["a", "c"])
    assert len(store.get_many_calls) == calls_before
    service.resolve(["b"])
    assert store.get_many_calls[-1] == (platform.record_id("b"),)


def test_disabled_cache_always_reads(
    store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    service = KeyService(store, platform, clock, cache_size=0)
    a1 = service.resolve(["a"])["a"]
    a2 = service.resolve(["a"])["a"]
    assert len(store.get_many_calls) == 2
    assert a1 is not None and a2 is not None and a1.pseudonym == a2.pseudonym


def test_existing_users_are_found_not_minted(
    store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    existing = mint(platform, platform.record_id("carol"), clock.now())
    store.put(existing)
    service = KeyService(store, platform, clock)
    crypto = service.resolve(["carol"])["carol"]
    assert crypto is not None and crypto.pseudonym == existing.pseudonym
    assert store.create_calls == [] and service.minted == 0


def test_two_services_on_one_store_share_keys(
    store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    one = KeyService(store, platform, clock).resolve(["dave"])["dave"]
    two = KeyService(store, platform, clock).resolve(["dave"])["dave"]
    assert one is not None and two is not None
    assert one.pseudonym == two.pseudonym
    assert two.aead.decrypt(one.aead.encrypt(b"secret", AAD), AAD) == b"secret"


# ------------------------------------------------------------------ races


class LosingStore(MemoryKeyStore):
    """A store in which another anonymizer always creates the record first."""

    def __init__(self, platform: PlatformKeys, now: datetime) -> None:
        super().__init__()
        self._platform = platform
        self._now = now
        self.winners: dict[str, UserKeys] = {}

    def create(self, record: UserKeys) -> UserKeys:
        winner = mint(self._platform, record.record_id, self._now)
        self.winners[record.record_id] = winner
        super().create(winner)
        return super().create(record)


def test_race_uses_the_winners_keys(platform: PlatformKeys, clock: ManualClock) -> None:
    store = LosingStore(platform, clock.now())
    service = KeyService(store, platform, clock)
    crypto = service.resolve(["erin"])["erin"]
    winner = store.winners[platform.record_id("erin")]
    assert crypto is not None and crypto.pseudonym == winner.pseudonym
    ciphertext = open_keys(platform, winner).aead.encrypt(b"v", AAD)
    assert crypto.aead.decrypt(ciphertext, AAD) == b"v"
    assert service.minted == 0 and service.races_lost == 1  # our candidate lost


def test_race_with_an_erasure_yields_none(platform: PlatformKeys, clock: ManualClock) -> None:
    class ErasedMeanwhile(MemoryKeyStore):
        def create(self, record: UserKeys) -> UserKeys:
            self.erase(record.record_id, clock.now())
            return super().create(record)

    store = ErasedMeanwhile()
    assert KeyService(store, platform, clock).resolve(["frank"]) == {"frank": None}


def test_threads_resolving_the_same_new_users_agree(
    store: MemoryKeyStore, platform: PlatformKeys
) -> None:
    service = KeyService(store, platform, FixedClock())
    users = [f"user-{i}" for i in range(40)]
    results: list[dict[str, object]] = []
    barrier = threading.Barrier(6)
    lock = threading.Lock()

    def work(order: Sequence[str]) -> None:
        barrier.wait()
        got = service.resolve(order)
        with lock:
            results.append({u: c.pseudonym for u, c in got.items() if c is not None})

    threads = [
        threading.Thread(target=work, args=(users[i:] + users[:i],)) for i in range(0, 36, 6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 6 and all(r == results[0] for r in results)
    assert len(results[0]) == 40
    assert len(store) == 40
    assert {r.pseudonym for r in store.all().values()} == set(results[0].values())


# ------------------------------------------------------------------ erasure


def test_forget_then_resolve_returns_none_and_mints_nothing(
    service: KeyService, store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    assert service.resolve(["gina"])["gina"] is not None
    assert service.forget("gina") is True
    creates = len(store.create_calls)
    both = service.resolve(["gina", "hank"])
    assert both["gina"] is None and both["hank"] is not None
    assert service.resolve(["gina"])["gina"] is None
    clock.advance(10_000)  # after the TTL the tombstone is read from the store
    assert service.resolve(["gina"])["gina"] is None
    assert len(store.create_calls) == creates + 1  # only hank was minted
    tomb = store.all()[platform.record_id("gina")]
    assert tomb.erased and tomb.aead_keyset is None and tomb.pseudonym is None


def test_forget_unknown_user_blocks_future_keys(
    service: KeyService, store: MemoryKeyStore
) -> None:
    assert service.forget("ivy") is False
    assert service.resolve(["ivy"]) == {"ivy": None}
    assert store.create_calls == []


def test_forget_elsewhere_is_seen_after_the_ttl(
    store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    here = KeyService(store, platform, clock, ttl_seconds=60)
    elsewhere = KeyService(store, platform, clock)
    assert here.resolve(["jo"])["jo"] is not None
    elsewhere.forget("jo")
    assert here.resolve(["jo"])["jo"] is not None  # still cached here
    clock.advance(61)
    assert here.resolve(["jo"])["jo"] is None


def test_tombstones_are_cached(
    service: KeyService, store: MemoryKeyStore, platform: PlatformKeys
) -> None:
    store.erase(platform.record_id("kim"), datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert service.resolve(["kim"]) == {"kim": None}
    assert service.resolve(["kim"]) == {"kim": None}
    assert len(store.get_many_calls) == 1


def test_lookup_never_mints(service: KeyService, store: MemoryKeyStore) -> None:
    assert service.lookup("nobody") is None
    assert store.create_calls == []
    crypto = service.resolve(["lea"])["lea"]
    record = service.lookup("lea")
    assert record is not None and crypto is not None and record.pseudonym == crypto.pseudonym
    service.forget("lea")
    erased = service.lookup("lea")
    assert erased is not None and erased.erased


# ------------------------------------------------------------------ failures


class BrokenStore(MemoryKeyStore):
    def __init__(self, fail_on: str, error: Exception) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.error = error

    def get_many(self, record_ids: Sequence[str]) -> dict[str, UserKeys]:
        if self.fail_on == "get_many":
            raise self.error
        return super().get_many(record_ids)

    def create(self, record: UserKeys) -> UserKeys:
        if self.fail_on == "create":
            raise self.error
        return super().create(record)

    def erase(self, record_id: str, at: datetime) -> bool:
        if self.fail_on == "erase":
            raise self.error
        return super().erase(record_id, at)


@pytest.mark.parametrize("fail_on", ["get_many", "create"])
@pytest.mark.parametrize("error", [ConnectionError("reset by peer"), TimeoutError("slow")])
def test_store_errors_are_transient(
    platform: PlatformKeys, clock: ManualClock, fail_on: str, error: Exception
) -> None:
    service = KeyService(BrokenStore(fail_on, error), platform, clock)
    expected = f"key store failed while .*{type(error).__name__}"
    with pytest.raises(TransientError, match=expected) as caught:
        service.resolve(["mo"])
    assert "'mo'" not in str(caught.value)  # the user id is not in the message
    assert "reset by peer" not in str(caught.value)  # nor the store's text


def test_adapter_transient_errors_pass_through(platform: PlatformKeys, clock: ManualClock) -> None:
    original = TransientError("key store (Firestore) unavailable")
    service = KeyService(BrokenStore("get_many", original), platform, clock)
    with pytest.raises(TransientError) as caught:
        service.resolve(["ned"])
    assert caught.value is original


def test_failed_resolve_caches_nothing(platform: PlatformKeys, clock: ManualClock) -> None:
    store = BrokenStore("create", ConnectionError())
    service = KeyService(store, platform, clock)
    with pytest.raises(TransientError):
        service.resolve(["olga"])
    store.fail_on = ""
    assert service.resolve(["olga"])["olga"] is not None


def test_forget_store_error_is_transient(platform: PlatformKeys, clock: ManualClock) -> None:
    service = KeyService(BrokenStore("erase", OSError("disk")), platform, clock)
    with pytest.raises(TransientError, match="while erasing key record"):
        service.forget("pat")


def test_damaged_record_is_a_platform_error_not_transient(
    store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    other = mint(platform, platform.record_id("someone-else"), clock.now())
    store.put(replace(other, record_id=platform.record_id("quinn")))  # keys copied across
    with pytest.raises(PlatformError, match="does not decrypt") as caught:
        KeyService(store, platform, clock).resolve(["quinn"])
    assert not isinstance(caught.value, TransientError)


def test_broken_adapter_returning_another_record_is_caught(
    platform: PlatformKeys, clock: ManualClock
) -> None:
    class WrongRecord(MemoryKeyStore):
        def create(self, record: UserKeys) -> UserKeys:
            return mint(platform, "another", clock.now())

    with pytest.raises(PlatformError, match="adapter is broken"):
        KeyService(WrongRecord(), platform, clock).resolve(["rae"])


def test_non_string_user_id_is_rejected(service: KeyService) -> None:
    with pytest.raises(PlatformError, match="user id must be a string, got int"):
        service.resolve([123])  # type: ignore[list-item]


# ------------------------------------------------------------------ the cache itself


def test_cache_distinguishes_missing_from_cached_none() -> None:
    now = ManualClock().now()
    cache: TtlLruCache[str, str | None] = TtlLruCache(10, 5)
    assert cache.get("k", now) is MISSING
    cache.put("k", None, now)
    assert cache.get("k", now) is None
    assert cache.get("k", now + timedelta(seconds=5)) is MISSING
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("size", "ttl", "complaint"), [(-1, 5, "cache size"), (1, -5, "cache TTL")]
)
def test_cache_rejects_negative_settings(size: int, ttl: float, complaint: str) -> None:
    with pytest.raises(PlatformError, match=complaint):
        TtlLruCache(size, ttl)


def test_service_rejects_negative_cache_settings(
    store: MemoryKeyStore, platform: PlatformKeys, clock: ManualClock
) -> None:
    with pytest.raises(PlatformError, match="cache size must be >= 0"):
        KeyService(store, platform, clock, cache_size=-5)
