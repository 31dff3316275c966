"""Per-user keys: minting a data subject's key record and opening it for use.

A record (`ports.UserKeys`) holds a random pseudonym and two Tink keysets, each serialized
with `tink.proto_keyset_format` and encrypted by the platform wrapping keyset with the
record id as associated data:

- AES256_GCM (TINK output prefix) for the `encrypt` policy,
- AES256_SIV for `encrypt_deterministic` (equal plaintexts give equal ciphertexts, so the
  column can be joined and grouped on without decrypting).

Ciphertexts keep Tink's wire format (0x01 + 4-byte big-endian key id + ciphertext), which
is what BigQuery's `AEAD.DECRYPT_STRING` / `DETERMINISTIC_DECRYPT_STRING` read. Erasing the
record (crypto-shredding) destroys the keysets, and with them every copy of the data.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

import tink
from tink import aead, daead, proto_keyset_format, secret_key_access

from dataplatform.errors import PlatformError
from dataplatform.ports import UserKeys
from dataplatform.privacy.keys import PlatformKeys

aead.register()
daead.register()

PSEUDONYM_BYTES = 16
"""128 random bits, written as 32 hex characters: the `user_pseudonym` column."""


@dataclass(frozen=True)
class UserCrypto:
    """One user's opened keys: what the anonymizer encrypts that user's fields with."""

    record_id: str
    pseudonym: str
    aead: aead.Aead = field(repr=False, compare=False)
    daead: daead.DeterministicAead = field(repr=False, compare=False)


def _serialize_new(template: object) -> bytes:
    handle = tink.new_keyset_handle(template)
    return proto_keyset_format.serialize(handle, secret_key_access.TOKEN)


def mint(platform: PlatformKeys, record_id: str, now: datetime) -> UserKeys:
    """A new active key record for `record_id` (= `platform.record_id(user_id)`).

    Pure but for randomness: the caller stores it (`KeyStore.create`) and uses whichever
    record won a race.
    """
    if not record_id:
        raise PlatformError(
            "cannot mint user keys for an empty record id; derive it with PlatformKeys.record_id(user_id)"
        )
    if now.tzinfo is None:
        raise PlatformError("cannot mint user keys with a naive created_at time; pass a timezone-aware UTC datetime")
    return UserKeys(
        record_id=record_id,
        pseudonym=secrets.token_hex(PSEUDONYM_BYTES),
        aead_keyset=platform.wrap_user_keyset(_serialize_new(aead.aead_key_templates.AES256_GCM), record_id),
        daead_keyset=platform.wrap_user_keyset(
            _serialize_new(daead.deterministic_aead_key_templates.AES256_SIV), record_id
        ),
        created_at=now,
    )


def _parse(serialized: bytes, record_id: str, kind: str) -> tink.KeysetHandle:
    try:
        return proto_keyset_format.parse(serialized, secret_key_access.TOKEN)
    except tink.TinkError:
        raise PlatformError(
            f"the {kind} keyset of key record {record_id!r} decrypts but is not a Tink keyset; "
            "the record is damaged: restore the key store from a backup"
        ) from None


def open_keys(platform: PlatformKeys, record: UserKeys) -> UserCrypto:
    """Unwrap a record's keysets into Tink primitives.

    An erased record has no keys left (that is the point of erasure): callers check
    `record.erased` first and treat the user as forgotten; calling this on a tombstone
    raises PlatformError.
    """
    if record.erased:
        raise PlatformError(
            f"key record {record.record_id!r} is erased (crypto-shredded): its keys are gone "
            "and its data can no longer be decrypted; check UserKeys.erased before opening"
        )
    if record.pseudonym is None or record.aead_keyset is None or record.daead_keyset is None:
        missing = [
            name
            for name, value in (
                ("pseudonym", record.pseudonym),
                ("aead_keyset", record.aead_keyset),
                ("daead_keyset", record.daead_keyset),
            )
            if value is None
        ]
        raise PlatformError(
            f"active key record {record.record_id!r} lacks {', '.join(missing)}; the record is "
            "damaged: restore the key store from a backup"
        )
    aead_handle = _parse(platform.unwrap_user_keyset(record.aead_keyset, record.record_id), record.record_id, "AEAD")
    daead_handle = _parse(platform.unwrap_user_keyset(record.daead_keyset, record.record_id), record.record_id, "DAEAD")
    try:
        primitive_aead = aead_handle.primitive(aead.Aead)
        primitive_daead = daead_handle.primitive(daead.DeterministicAead)
    except tink.TinkError:
        raise PlatformError(
            f"the keysets of key record {record.record_id!r} are of the wrong kind (expected "
            "AES256_GCM and AES256_SIV); the record is damaged: restore the key store from a backup"
        ) from None
    return UserCrypto(
        record_id=record.record_id, pseudonym=record.pseudonym, aead=primitive_aead, daead=primitive_daead
    )
