"""KeyService: user id → that user's opened keys, for a whole batch at once.

Why it exists: the anonymizer needs, for every distinct user of a Pub/Sub batch, the user's
pseudonym and Tink primitives, or the knowledge that the user was erased. Doing that per
event would cost one key-store round trip and two unwraps per event. So `resolve`

1. derives each user's record id (HMAC with the platform secret; the user id itself is
   never stored or sent anywhere),
2. answers what it can from an in-process cache (LRU with a TTL; erased users are cached
   too, as `None`),
3. reads ALL remaining users with ONE `KeyStore.get_many`,
4. mints keys for users the store has never seen and stores them all with ONE
   `KeyStore.create_many`; when another anonymizer created a user first, the store returns
   the winner's record and that one is used, so every user ends with exactly one keyset,
5. opens (unwraps) each record once and caches the result.

The TTL bounds how long an erasure done elsewhere (another instance's `forget`) can go
unnoticed here; an erasure done through this instance takes effect immediately.
Failures of the key store that a retry may fix surface as TransientError, so the function
raises and Pub/Sub redelivers the batch.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from dataplatform.errors import PlatformError, TransientError
from dataplatform.ports import Clock, KeyStore, UserKeys
from dataplatform.privacy.keys import PlatformKeys
from dataplatform.privacy.user_keys import UserCrypto, mint, open_keys

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


class _Missing:
    """Sentinel type: "not in the cache" (distinct from a cached `None` = erased user)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


class TtlLruCache(Generic[K, V]):
    """A bounded mapping whose entries expire `ttl` after they were stored.

    Least-recently-used entries are evicted beyond `max_size`. Times come from the caller
    (`now`), so the owner's Clock drives expiry and tests can move time by hand. All
    operations hold one lock: functions-framework may serve requests on several threads.
    `max_size=0` or `ttl_seconds=0` disables caching.
    """

    def __init__(self, max_size: int, ttl_seconds: float) -> None:
        if max_size < 0:
            raise PlatformError(f"cache size must be >= 0, got {max_size}")
        if ttl_seconds < 0:
            raise PlatformError(f"cache TTL must be >= 0 seconds, got {ttl_seconds}")
        self._max_size = max_size
        self._ttl = timedelta(seconds=ttl_seconds)
        self._entries: OrderedDict[K, tuple[datetime, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._max_size > 0 and self._ttl > timedelta(0)

    def get(self, key: K, now: datetime) -> V | _Missing:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return MISSING
            expires_at, value = entry
            if now >= expires_at:
                del self._entries[key]
                return MISSING
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V, now: datetime) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = (now + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_size:
                self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _store_call(action: str, call: Callable[[], R]) -> R:
    """Run a key-store call; unexpected exceptions become TransientError (retry the batch).

    PlatformErrors pass through unchanged (the adapter already said what to do). The
    message names only the exception type: a store's own message might echo data.
    """
    try:
        return call()
    except PlatformError:
        raise
    except Exception as exc:
        raise TransientError(
            f"key store failed while {action}: {type(exc).__name__}; the batch will be retried"
        ) from exc


class KeyService:
    """Resolves users to their keys (minting on first sight), forgets users, looks them up."""

    def __init__(
        self,
        store: KeyStore,
        platform: PlatformKeys,
        clock: Clock,
        cache_size: int = 100_000,
        ttl_seconds: float = 300.0,
    ) -> None:
        self._store = store
        self._platform = platform
        self._clock = clock
        self._cache: TtlLruCache[str, UserCrypto | None] = TtlLruCache(cache_size, ttl_seconds)
        self._counts_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        self.minted = 0
        self.races_lost = 0

    def record_id(self, user_id: str) -> str:
        if not isinstance(user_id, str):
            raise PlatformError(
                f"a user id must be a string, got {type(user_id).__name__}; "
                "the schema's user_id field must be of type STRING"
            )
        return self._platform.record_id(user_id)

    def resolve(self, user_ids: Iterable[str]) -> dict[str, UserCrypto | None]:
        """Every distinct user id → its opened keys, or None when the user was erased."""
        now = self._clock.now()
        record_ids = {user_id: self.record_id(user_id) for user_id in user_ids}
        opened: dict[str, UserCrypto | None] = {}
        misses: list[str] = []
        for record_id in dict.fromkeys(record_ids.values()):
            cached = self._cache.get(record_id, now)
            if isinstance(cached, _Missing):
                misses.append(record_id)
            else:
                opened[record_id] = cached
        if misses:
            opened.update(self._load(misses, now))
        with self._counts_lock:
            self.cache_hits += len(opened) - len(misses)
            self.cache_misses += len(misses)
        return {user_id: opened[record_id] for user_id, record_id in record_ids.items()}

    def _load(self, record_ids: Sequence[str], now: datetime) -> dict[str, UserCrypto | None]:
        found = _store_call(
            f"reading {len(record_ids)} key records", lambda: self._store.get_many(record_ids)
        )
        missing = [record_id for record_id in record_ids if record_id not in found]
        if missing:
            found = {**found, **self._create(missing, now)}
        result: dict[str, UserCrypto | None] = {}
        for record_id in record_ids:
            record = found[record_id]
            crypto = None if record.erased else open_keys(self._platform, record)
            self._cache.put(record_id, crypto, now)
            result[record_id] = crypto
        return result

    def _create(self, record_ids: Sequence[str], now: datetime) -> dict[str, UserKeys]:
        """Mint keys for users the store has never seen and store them all in one call; where
        another instance (or an erasure) got there first, its record is the one used."""
        candidates = [mint(self._platform, record_id, now) for record_id in record_ids]
        winners = _store_call(
            f"creating {len(candidates)} key records", lambda: self._store.create_many(candidates)
        )
        minted = 0
        for candidate in candidates:
            winner = winners.get(candidate.record_id)
            if winner is None or winner.record_id != candidate.record_id:
                raise PlatformError(
                    f"the key store returned {'no record' if winner is None else repr(winner.record_id)} "
                    f"when creating {candidate.record_id!r}; the key store adapter is broken"
                )
            minted += winner == candidate
        with self._counts_lock:
            self.minted += minted
            self.races_lost += len(candidates) - minted  # another instance created (or erased) it first
        return winners

    def forget(self, user_id: str) -> bool:
        """Crypto-shred a user: the store keeps only a tombstone. True if keys existed.

        Later `resolve` calls here return None at once; other instances notice within the
        cache TTL.
        """
        record_id = self.record_id(user_id)
        now = self._clock.now()
        existed = _store_call(
            f"erasing key record {record_id!r}", lambda: self._store.erase(record_id, now)
        )
        self._cache.put(record_id, None, now)
        return bool(existed)

    def lookup(self, user_id: str) -> UserKeys | None:
        """The stored record of a user (a tombstone when erased), or None; never mints."""
        record_id = self.record_id(user_id)
        found = _store_call(
            f"reading key record {record_id!r}", lambda: self._store.get_many([record_id])
        )
        return found.get(record_id)
