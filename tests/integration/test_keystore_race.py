"""Four anonymizer processes race on 2,000 new users against the Firestore emulator.

Each OS process (multiprocessing, spawn: a fresh interpreter, like a separate function
instance) builds its own Firestore client, FirestoreKeyStore and KeyService, waits at a
barrier, then resolves the same users in its own shuffled order, in batches. Afterwards:
- the collection holds exactly one record per user (and nothing else);
- every process saw the same pseudonym for each user;
- every process used the same keyset: deterministic encryptions are byte-identical across
  processes, and in a second round each process decrypts the AEAD ciphertexts another
  process made.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from dataplatform.local.emulators import Emulator

pytestmark = pytest.mark.emulator

PROCESSES = 4
USERS = 2_000
BATCH = 100
PLAINTEXT = b"listener@example.com"
AAD = b"contact.email"
RESULT_TIMEOUT_SECONDS = 120


def _service(kms_path: str, blobs: dict[str, bytes], collection: str) -> Any:
    """A KeyService wired like an anonymizer instance: Firestore store, real platform keys."""
    from dataplatform.adapters.firestore_keystore import FirestoreKeyStore
    from dataplatform.adapters.local_kms import LocalKms
    from dataplatform.privacy.key_service import KeyService
    from dataplatform.privacy.keys import PlatformKeys
    from tests.fakes import FixedClock, MemoryBlobStore

    bucket = MemoryBlobStore()
    for name, data in blobs.items():
        bucket.put(name, data)
    platform = PlatformKeys.load(LocalKms(Path(kms_path)), bucket)
    return KeyService(FirestoreKeyStore(collection=collection), platform, FixedClock())


def race_worker(
    index: int,
    kms_path: str,
    blobs: dict[str, bytes],
    collection: str,
    users: list[str],
    barrier: Any,
    results: Any,
) -> None:
    """Round 1: resolve every user (minting or losing races), encrypt with each user's keys."""
    try:
        service = _service(kms_path, blobs, collection)
        order = list(users)
        random.Random(index).shuffle(order)
        barrier.wait(timeout=60)
        seen: dict[str, tuple[str, str, bytes, bytes]] = {}
        for start in range(0, len(order), BATCH):
            for user, crypto in service.resolve(order[start : start + BATCH]).items():
                assert crypto is not None, "a new user must get keys"
                seen[user] = (
                    crypto.record_id,
                    crypto.pseudonym,
                    crypto.aead.encrypt(PLAINTEXT, AAD),
                    crypto.daead.encrypt_deterministically(PLAINTEXT, AAD),
                )
        results.put((index, "ok", seen, (service.minted, service.races_lost)))
    except BaseException as exc:  # report to the parent instead of dying silently
        results.put((index, "error", f"{type(exc).__name__}: {exc}", 0))


def decrypt_worker(
    index: int,
    kms_path: str,
    blobs: dict[str, bytes],
    collection: str,
    ciphertexts: dict[str, bytes],
    results: Any,
) -> None:
    """Round 2: a fresh process decrypts ciphertexts another process made."""
    try:
        service = _service(kms_path, blobs, collection)
        users = list(ciphertexts)
        plain: dict[str, bool] = {}
        for start in range(0, len(users), 500):
            for user, crypto in service.resolve(users[start : start + 500]).items():
                assert crypto is not None
                plain[user] = crypto.aead.decrypt(ciphertexts[user], AAD) == PLAINTEXT
        results.put((index, "ok", plain, service.minted))
    except BaseException as exc:
        results.put((index, "error", f"{type(exc).__name__}: {exc}", 0))


def _collect(results: Any, processes: list[Any]) -> dict[int, tuple[Any, int]]:
    collected: dict[int, tuple[Any, int]] = {}
    try:
        for _ in processes:
            index, status, payload, minted = results.get(timeout=RESULT_TIMEOUT_SECONDS)
            assert status == "ok", f"process {index} failed: {payload}"
            collected[index] = (payload, minted)
    except queue.Empty:
        pytest.fail(f"race processes did not report within {RESULT_TIMEOUT_SECONDS}s")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
    return collected


def test_four_processes_two_thousand_new_users_one_keyset_each(
    firestore_emulator: Emulator, tmp_path: Path
) -> None:
    from dataplatform.adapters.firestore_keystore import FirestoreKeyStore
    from dataplatform.adapters.local_kms import LocalKms
    from dataplatform.privacy.keys import bootstrap
    from tests.fakes import MemoryBlobStore

    assert os.environ["FIRESTORE_EMULATOR_HOST"] == firestore_emulator.host_port
    kms_path = str(tmp_path / "local_kms_keyset.json")
    bucket = MemoryBlobStore()
    bootstrap(LocalKms(Path(kms_path)), bucket)
    blobs = {name: bucket.read(name) or b"" for name in bucket.names()}
    collection = f"race_{uuid.uuid4().hex[:10]}"
    run = uuid.uuid4().hex[:8]
    users = [f"race-{run}-user-{i}" for i in range(USERS)]

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(PROCESSES)
    racers = [
        ctx.Process(
            target=race_worker, args=(i, kms_path, blobs, collection, users, barrier, results)
        )
        for i in range(PROCESSES)
    ]
    for process in racers:
        process.start()
    round_one = _collect(results, racers)

    # every process saw every user, with the same record id and pseudonym
    views = [round_one[i][0] for i in range(PROCESSES)]
    for view in views:
        assert set(view) == set(users)
    for user in users:
        record_ids = {view[user][0] for view in views}
        pseudonyms = {view[user][1] for view in views}
        deterministic = {view[user][3] for view in views}
        assert len(record_ids) == 1 and len(pseudonyms) == 1, user
        assert len(deterministic) == 1, f"{user}: processes used different DAEAD keysets"
    assert len({views[0][u][1] for u in users}) == USERS  # pseudonyms are distinct

    # exactly one record per user in the store, nothing else, all active
    store = FirestoreKeyStore(collection=collection)
    assert store.count() == USERS
    record_ids = [views[0][u][0] for u in users]
    stored = store.get_many(record_ids)
    assert len(stored) == USERS and not any(r.erased for r in stored.values())
    assert {stored[views[0][u][0]].pseudonym for u in users} == {views[0][u][1] for u in users}
    # each user was minted by exactly one winner (losers re-read the winner's record)
    assert sum(minted for _, (minted, _lost) in round_one.values()) == USERS
    # the race was real: creates did collide (about 10% of users in practice)
    assert sum(lost for _, (_minted, lost) in round_one.values()) > 0

    # round 2: process i decrypts what process i+1 encrypted, in fresh processes
    decrypters = [
        ctx.Process(
            target=decrypt_worker,
            args=(
                i,
                kms_path,
                blobs,
                collection,
                {u: views[(i + 1) % PROCESSES][u][2] for u in users},
                results,
            ),
        )
        for i in range(PROCESSES)
    ]
    for process in decrypters:
        process.start()
    round_two = _collect(results, decrypters)
    for index, (plain, minted) in round_two.items():
        assert len(plain) == USERS and all(plain.values()), f"process {index} could not decrypt"
        assert minted == 0  # every user existed: nothing new was minted
    assert store.count() == USERS
