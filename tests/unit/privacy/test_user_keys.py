"""Per-user keys: minting records, opening them, and refusing erased or damaged ones."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tink import proto_keyset_format, secret_key_access

from dataplatform.adapters.local_kms import LocalKms
from dataplatform.errors import PlatformError
from dataplatform.ports import UserKeys
from dataplatform.privacy.keys import PlatformKeys, bootstrap
from dataplatform.privacy.user_keys import UserCrypto, mint, open_keys

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AES_GCM_TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmKey"
AES_SIV_TYPE_URL = "type.googleapis.com/google.crypto.tink.AesSivKey"


class DictBlobStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def read(self, name: str) -> bytes | None:
        return self.objects.get(name)

    def create(self, name: str, data: bytes) -> bool:
        return self.objects.setdefault(name, data) is data


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    kms = LocalKms(tmp_path_factory.mktemp("state") / "kms.json")
    blobs = DictBlobStore()
    bootstrap(kms, blobs)
    return PlatformKeys.load(kms, blobs)


@pytest.fixture
def record(platform: PlatformKeys) -> UserKeys:
    return mint(platform, platform.record_id("alice"), NOW)


def _type_urls(platform: PlatformKeys, wrapped: bytes, record_id: str) -> list[str]:
    handle = proto_keyset_format.parse(platform.unwrap_user_keyset(wrapped, record_id), secret_key_access.TOKEN)
    return [key.type_url for key in handle.keyset_info().key_info]


def test_mint_makes_an_active_record_with_a_random_pseudonym_and_wrapped_keysets(
    platform: PlatformKeys, record: UserKeys
) -> None:
    assert record.record_id == platform.record_id("alice")
    assert record.status == "active" and not record.erased and record.erased_at is None
    assert record.created_at == NOW
    assert record.pseudonym is not None and re.fullmatch(r"[0-9a-f]{32}", record.pseudonym)
    assert record.aead_keyset is not None and record.daead_keyset is not None
    assert _type_urls(platform, record.aead_keyset, record.record_id) == [AES_GCM_TYPE_URL]
    assert _type_urls(platform, record.daead_keyset, record.record_id) == [AES_SIV_TYPE_URL]


def test_every_mint_is_fresh(platform: PlatformKeys, record: UserKeys) -> None:
    again = mint(platform, record.record_id, NOW)
    assert again.pseudonym != record.pseudonym
    assert again.aead_keyset != record.aead_keyset
    assert open_keys(platform, again).aead.encrypt(b"x", b"f") != open_keys(platform, record).aead.encrypt(b"x", b"f")


@pytest.mark.parametrize(
    ("record_id", "now", "message"),
    [
        ("", NOW, "empty record id"),
        ("abc", datetime(2026, 3, 1, 12, 0), "naive created_at"),
    ],
)
def test_mint_rejects_bad_arguments(platform: PlatformKeys, record_id: str, now: datetime, message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        mint(platform, record_id, now)


def test_open_keys_gives_working_primitives(platform: PlatformKeys, record: UserKeys) -> None:
    crypto = open_keys(platform, record)
    assert isinstance(crypto, UserCrypto)
    assert (crypto.record_id, crypto.pseudonym) == (record.record_id, record.pseudonym)

    sealed = crypto.aead.encrypt(b"alice@example.com", b"contact.email")
    assert open_keys(platform, record).aead.decrypt(sealed, b"contact.email") == b"alice@example.com"

    first = crypto.daead.encrypt_deterministically(b"Berlin", b"city")
    assert crypto.daead.encrypt_deterministically(b"Berlin", b"city") == first
    assert crypto.daead.encrypt_deterministically(b"Berlin", b"town") != first
    assert crypto.daead.decrypt_deterministically(first, b"city") == b"Berlin"


def test_users_cannot_read_each_others_data(platform: PlatformKeys, record: UserKeys) -> None:
    bob = open_keys(platform, mint(platform, platform.record_id("bob"), NOW))
    sealed = open_keys(platform, record).aead.encrypt(b"secret", b"f")
    with pytest.raises(Exception, match="[Dd]ecryption failed"):
        bob.aead.decrypt(sealed, b"f")


def test_user_crypto_repr_shows_no_keys(platform: PlatformKeys, record: UserKeys) -> None:
    text = repr(open_keys(platform, record))
    assert record.record_id in text
    assert "aead" not in text.replace("UserCrypto", "")


def test_open_keys_refuses_an_erased_record(platform: PlatformKeys, record: UserKeys) -> None:
    tombstone = UserKeys(
        record_id=record.record_id,
        pseudonym=None,
        aead_keyset=None,
        daead_keyset=None,
        created_at=NOW,
        status="erased",
        erased_at=NOW,
    )
    with pytest.raises(PlatformError, match="erased"):
        open_keys(platform, tombstone)


def test_open_keys_refuses_an_active_record_without_keys(platform: PlatformKeys, record: UserKeys) -> None:
    damaged = dataclasses.replace(record, daead_keyset=None)
    with pytest.raises(PlatformError, match="lacks daead_keyset"):
        open_keys(platform, damaged)


def test_open_keys_refuses_keysets_moved_to_another_record(platform: PlatformKeys, record: UserKeys) -> None:
    moved = dataclasses.replace(record, record_id=platform.record_id("mallory"))
    with pytest.raises(PlatformError, match="does not decrypt with the platform wrapping keyset"):
        open_keys(platform, moved)


def test_open_keys_refuses_swapped_keysets(platform: PlatformKeys, record: UserKeys) -> None:
    swapped = dataclasses.replace(record, aead_keyset=record.daead_keyset, daead_keyset=record.aead_keyset)
    with pytest.raises(PlatformError, match="wrong kind"):
        open_keys(platform, swapped)


def test_open_keys_refuses_a_wrapped_value_that_is_not_a_keyset(platform: PlatformKeys, record: UserKeys) -> None:
    damaged = dataclasses.replace(record, aead_keyset=platform.wrap_user_keyset(b"\xff\xff", record.record_id))
    with pytest.raises(PlatformError, match="AEAD keyset .* is not a Tink keyset"):
        open_keys(platform, damaged)


def test_local_kms_backed_platform_survives_a_restart(tmp_path: Path) -> None:
    """A new process (new LocalKms, same file) opens records minted before."""
    blobs = DictBlobStore()
    first = LocalKms(tmp_path / "kms.json")
    bootstrap(first, blobs)
    platform = PlatformKeys.load(first, blobs)
    record = mint(platform, platform.record_id("alice"), NOW)
    sealed = open_keys(platform, record).aead.encrypt(b"v", b"p")

    reloaded = PlatformKeys.load(LocalKms(tmp_path / "kms.json"), blobs)
    assert open_keys(reloaded, record).aead.decrypt(sealed, b"p") == b"v"
