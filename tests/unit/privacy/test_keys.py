"""The platform key material: bootstrap once, load, keyed hashes, wrapping, quarantine."""

from __future__ import annotations

import hashlib
import hmac
import threading
from pathlib import Path

import pytest
import tink
from tink import aead, proto_keyset_format, secret_key_access

from dataplatform.adapters.local_kms import LocalKms
from dataplatform.errors import PlatformError, TransientError
from dataplatform.privacy.keys import (
    QUARANTINE_KEYSET_OBJECT,
    SECRET_OBJECT,
    WRAPPING_KEYSET_OBJECT,
    PlatformKeys,
    bootstrap,
)

OBJECTS = (WRAPPING_KEYSET_OBJECT, SECRET_OBJECT, QUARANTINE_KEYSET_OBJECT)
AES_GCM_TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmKey"


class FakeKms:
    """Raw AEAD like Cloud KMS, in memory, counting calls; can be told to fail."""

    def __init__(self) -> None:
        handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
        self._aead = handle.primitive(aead.Aead)
        self.encrypts = 0
        self.decrypts = 0
        self.fail_with: Exception | None = None

    @property
    def key_uri(self) -> str:
        return "gcp-kms://projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        if self.fail_with:
            raise self.fail_with
        self.encrypts += 1
        return self._aead.encrypt(plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        if self.fail_with:
            raise self.fail_with
        self.decrypts += 1
        try:
            return self._aead.decrypt(ciphertext, associated_data)
        except tink.TinkError:
            raise PlatformError("fake KMS: ciphertext does not decrypt") from None


class DictBlobStore:
    """Create-if-absent blobs in a dict, safe across threads like GCS with ifGenerationMatch=0."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def read(self, name: str) -> bytes | None:
        return self.objects.get(name)

    def create(self, name: str, data: bytes) -> bool:
        with self._lock:
            if name in self.objects:
                return False
            self.objects[name] = data
            return True


class RivalBlobStore(DictBlobStore):
    """Another process creates each object between our read and our create."""

    def __init__(self, rival_kms: FakeKms, rival_material: dict[str, bytes]) -> None:
        super().__init__()
        self._rival = {name: rival_kms.encrypt(value) for name, value in rival_material.items()}

    def create(self, name: str, data: bytes) -> bool:
        super().create(name, self._rival[name])
        return super().create(name, data)


@pytest.fixture
def kms() -> FakeKms:
    return FakeKms()


@pytest.fixture
def blobs() -> DictBlobStore:
    return DictBlobStore()


@pytest.fixture
def platform(kms: FakeKms, blobs: DictBlobStore) -> PlatformKeys:
    bootstrap(kms, blobs)
    return PlatformKeys.load(kms, blobs)


def _secret(kms: FakeKms, blobs: DictBlobStore) -> bytes:
    return kms.decrypt(blobs.objects[SECRET_OBJECT])


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_creates_every_object_once(kms: FakeKms, blobs: DictBlobStore) -> None:
    assert bootstrap(kms, blobs) == {name: True for name in OBJECTS}
    stored = dict(blobs.objects)
    encrypts = kms.encrypts

    assert bootstrap(kms, blobs) == {name: False for name in OBJECTS}
    assert blobs.objects == stored
    assert kms.encrypts == encrypts


def test_bootstrap_creates_only_what_is_missing(kms: FakeKms, blobs: DictBlobStore) -> None:
    bootstrap(kms, blobs)
    quarantine = blobs.objects.pop(QUARANTINE_KEYSET_OBJECT)

    assert bootstrap(kms, blobs) == {
        WRAPPING_KEYSET_OBJECT: False,
        SECRET_OBJECT: False,
        QUARANTINE_KEYSET_OBJECT: True,
    }
    assert blobs.objects[QUARANTINE_KEYSET_OBJECT] != quarantine


def test_keysets_are_raw_kms_encryptions_of_serialized_tink_keysets_with_empty_aad(
    kms: FakeKms, blobs: DictBlobStore
) -> None:
    """The format BigQuery's KEYS.KEYSET_CHAIN unwraps — not Tink's EncryptedKeyset."""
    bootstrap(kms, blobs)
    for name in (WRAPPING_KEYSET_OBJECT, QUARANTINE_KEYSET_OBJECT):
        serialized = kms.decrypt(blobs.objects[name], b"")
        handle = proto_keyset_format.parse(serialized, secret_key_access.TOKEN)
        info = handle.keyset_info()
        assert [key.type_url for key in info.key_info] == [AES_GCM_TYPE_URL]
        with pytest.raises(PlatformError):
            kms.decrypt(blobs.objects[name], name.encode())
    assert len(_secret(kms, blobs)) == 32


def test_bootstrap_loser_of_a_race_uses_the_winners_material(kms: FakeKms) -> None:
    rival_secret = bytes(range(32))
    rival_material = {
        WRAPPING_KEYSET_OBJECT: proto_keyset_format.serialize(
            tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM), secret_key_access.TOKEN
        ),
        SECRET_OBJECT: rival_secret,
        QUARANTINE_KEYSET_OBJECT: proto_keyset_format.serialize(
            tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM), secret_key_access.TOKEN
        ),
    }
    blobs = RivalBlobStore(kms, rival_material)

    assert bootstrap(kms, blobs) == {name: False for name in OBJECTS}
    platform = PlatformKeys.load(kms, blobs)
    expected = hmac.new(rival_secret, b"user-id:alice", hashlib.sha256).hexdigest()
    assert platform.record_id("alice") == expected


def test_concurrent_bootstraps_converge_on_one_set_of_material(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "kms.json")
    blobs = DictBlobStore()
    results: list[dict[str, bool]] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        results.append(bootstrap(kms, blobs))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    for name in OBJECTS:
        assert sum(result[name] for result in results) == 1
    ids = {PlatformKeys.load(LocalKms(tmp_path / "kms.json"), blobs).record_id("u1") for _ in range(2)}
    assert len(ids) == 1


def test_bootstrap_with_a_kms_key_that_does_not_match_existing_material_fails(
    kms: FakeKms, blobs: DictBlobStore
) -> None:
    bootstrap(kms, blobs)
    with pytest.raises(PlatformError, match="does not decrypt"):
        bootstrap(FakeKms(), blobs)


# ------------------------------------------------------------------ load


@pytest.mark.parametrize("missing", OBJECTS)
def test_load_names_the_bootstrap_command_when_material_is_missing(
    kms: FakeKms, blobs: DictBlobStore, missing: str
) -> None:
    bootstrap(kms, blobs)
    del blobs.objects[missing]
    with pytest.raises(PlatformError, match="dataplatform keys bootstrap") as err:
        PlatformKeys.load(kms, blobs)
    assert missing in str(err.value)


def test_load_rejects_an_object_that_is_not_a_keyset(kms: FakeKms, blobs: DictBlobStore) -> None:
    blobs.objects[WRAPPING_KEYSET_OBJECT] = kms.encrypt(b"not a keyset at all")
    blobs.objects[SECRET_OBJECT] = kms.encrypt(bytes(32))
    blobs.objects[QUARANTINE_KEYSET_OBJECT] = kms.encrypt(b"\x00")
    with pytest.raises(PlatformError, match="wrapping keyset.*not a Tink AEAD keyset"):
        PlatformKeys.load(kms, blobs)


def test_load_rejects_a_secret_of_the_wrong_length(kms: FakeKms, blobs: DictBlobStore) -> None:
    bootstrap(kms, blobs)
    blobs.objects[SECRET_OBJECT] = kms.encrypt(b"short")
    with pytest.raises(PlatformError, match="holds 5 bytes, expected 32"):
        PlatformKeys.load(kms, blobs)


def test_load_with_a_local_key_file_that_does_not_match(tmp_path: Path, blobs: DictBlobStore) -> None:
    bootstrap(LocalKms(tmp_path / "a.json"), blobs)
    with pytest.raises(PlatformError, match="does not match"):
        PlatformKeys.load(LocalKms(tmp_path / "b.json"), blobs)


def test_transient_kms_failures_propagate_as_transient(kms: FakeKms, blobs: DictBlobStore) -> None:
    bootstrap(kms, blobs)
    kms.fail_with = TransientError("KMS unavailable")
    with pytest.raises(TransientError):
        PlatformKeys.load(kms, blobs)


def test_platform_keys_expose_what_bigquery_needs_and_nothing_secret(
    platform: PlatformKeys, kms: FakeKms, blobs: DictBlobStore
) -> None:
    assert platform.kms_key_uri == kms.key_uri
    assert platform.wrapped_wrapping_keyset == blobs.objects[WRAPPING_KEYSET_OBJECT]
    text = repr(platform)
    assert _secret(kms, blobs).hex() not in text
    assert "wrapping" not in text
    with pytest.raises(AttributeError):
        platform.kms_key_uri = "x"  # type: ignore[misc]


# ------------------------------------------------------------------ keyed hashes


def test_record_id_is_hmac_sha256_of_the_domain_prefixed_user_id(
    platform: PlatformKeys, kms: FakeKms, blobs: DictBlobStore
) -> None:
    secret = _secret(kms, blobs)
    for user_id in ("alice", "", "Zoë 🎧"):
        expected = hmac.new(secret, b"user-id:" + user_id.encode("utf-8"), hashlib.sha256).hexdigest()
        assert platform.record_id(user_id) == expected
    assert platform.record_id("alice") == platform.record_id("alice")
    assert platform.record_id("alice") != platform.record_id("bob")


def test_keyed_hash_uses_its_own_domain(platform: PlatformKeys, kms: FakeKms, blobs: DictBlobStore) -> None:
    secret = _secret(kms, blobs)
    assert platform.keyed_hash("alice@example.com") == hmac.new(
        secret, b"hash:alice@example.com", hashlib.sha256
    ).hexdigest()
    assert platform.keyed_hash("alice") != platform.record_id("alice")
    assert len(platform.keyed_hash("x")) == 64


def test_hashes_depend_on_the_platform_secret(platform: PlatformKeys) -> None:
    other_kms, other_blobs = FakeKms(), DictBlobStore()
    bootstrap(other_kms, other_blobs)
    other = PlatformKeys.load(other_kms, other_blobs)
    assert other.record_id("alice") != platform.record_id("alice")
    assert other.keyed_hash("alice") != platform.keyed_hash("alice")


def test_hmac_state_is_not_shared_between_calls(platform: PlatformKeys) -> None:
    first = platform.record_id("a")
    platform.record_id("bcd" * 100)
    assert platform.record_id("a") == first


# ------------------------------------------------------------------ wrapping and quarantine


def test_user_keyset_wrapping_round_trips_and_binds_the_record_id(platform: PlatformKeys) -> None:
    wrapped = platform.wrap_user_keyset(b"serialized keyset", "rec-1")
    assert wrapped != b"serialized keyset"
    assert platform.unwrap_user_keyset(wrapped, "rec-1") == b"serialized keyset"
    with pytest.raises(PlatformError, match="'rec-2' does not decrypt with the platform wrapping keyset"):
        platform.unwrap_user_keyset(wrapped, "rec-2")


def test_user_keysets_wrapped_by_another_platform_do_not_unwrap(platform: PlatformKeys) -> None:
    other_kms, other_blobs = FakeKms(), DictBlobStore()
    bootstrap(other_kms, other_blobs)
    wrapped = PlatformKeys.load(other_kms, other_blobs).wrap_user_keyset(b"k", "rec-1")
    with pytest.raises(PlatformError):
        platform.unwrap_user_keyset(wrapped, "rec-1")


def test_wrapped_user_keysets_decrypt_with_the_wrapping_keyset_bigquery_unwraps(
    platform: PlatformKeys, kms: FakeKms
) -> None:
    """What AEAD.DECRYPT_BYTES(KEYS.KEYSET_CHAIN(uri, wrapped), ct, record_id) does."""
    wrapped = platform.wrap_user_keyset(b"serialized keyset", "rec-1")
    chain = proto_keyset_format.parse(kms.decrypt(platform.wrapped_wrapping_keyset, b""), secret_key_access.TOKEN)
    assert chain.primitive(aead.Aead).decrypt(wrapped, b"rec-1") == b"serialized keyset"


def test_quarantine_round_trips_with_the_event_id_as_associated_data(platform: PlatformKeys) -> None:
    payload = b'{"event_id": "e1", "payload": {"email": "a@example.com"}}'
    sealed = platform.quarantine_encrypt(payload, "e1")
    assert b"a@example.com" not in sealed
    assert platform.quarantine_decrypt(sealed, "e1") == payload
    assert platform.quarantine_decrypt(platform.quarantine_encrypt(b"x", ""), "") == b"x"
    with pytest.raises(PlatformError, match="quarantined payload of event 'e2'"):
        platform.quarantine_decrypt(sealed, "e2")


def test_quarantine_and_wrapping_keysets_are_different_keys(platform: PlatformKeys) -> None:
    sealed = platform.quarantine_encrypt(b"x", "id")
    with pytest.raises(PlatformError):
        platform.unwrap_user_keyset(sealed, "id")
