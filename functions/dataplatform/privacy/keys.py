"""The platform's key material: the top of the key hierarchy below the KMS key.

    KMS key (Cloud KMS in GCP, a local Tink key file locally)
      └─ wrapping keyset     Tink AES256_GCM, wraps every per-user keyset (AAD = record id)
      └─ quarantine keyset   Tink AES256_GCM, encrypts failed events' payloads (AAD = event id)
      └─ HMAC secret         32 random bytes: record ids and the `hash` policy

Each lives as one object in the platform config bucket, encrypted by the KMS key with a
*raw* KMS encrypt of the serialized Tink keyset and empty associated data. That is not
Tink's `EncryptedKeyset` format on purpose: it is the format BigQuery's
`KEYS.KEYSET_CHAIN(kms_key_uri, wrapped_keyset)` unwraps, so a privacy officer can decrypt
one user's data in the BigQuery console (see `privacy/officer_sql.py`).

`bootstrap` creates the material once (create-if-absent, so concurrent callers converge on
whichever object landed first); `PlatformKeys.load` reads and unwraps it, one KMS call per
object, at cold start. The HMAC runs in pure Python with the secret held in memory because
it is on the hot path (one call per event); Tink does the AEAD work.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

import tink
from tink import aead, proto_keyset_format, secret_key_access

from dataplatform.errors import PlatformError
from dataplatform.ports import BlobStore, Kms

aead.register()

WRAPPING_KEYSET_OBJECT = "keys/wrapping_keyset.bin"
"""Raw KMS encryption (empty AAD) of the serialized Tink AES256_GCM wrapping keyset."""

SECRET_OBJECT = "keys/hmac_secret.bin"
"""Raw KMS encryption (empty AAD) of the 32-byte HMAC secret."""

QUARANTINE_KEYSET_OBJECT = "keys/quarantine_keyset.bin"
"""Raw KMS encryption (empty AAD) of the serialized Tink AES256_GCM quarantine keyset."""

SECRET_BYTES = 32
BOOTSTRAP_COMMAND = "dataplatform keys bootstrap"

_USER_ID_DOMAIN = b"user-id:"
_HASH_DOMAIN = b"hash:"
_EMPTY_AAD = b""


def _new_aead_keyset() -> bytes:
    handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
    return proto_keyset_format.serialize(handle, secret_key_access.TOKEN)


def _new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


_MATERIAL: dict[str, Callable[[], bytes]] = {
    WRAPPING_KEYSET_OBJECT: _new_aead_keyset,
    SECRET_OBJECT: _new_secret,
    QUARANTINE_KEYSET_OBJECT: _new_aead_keyset,
}
"""Every platform object and how to make its cleartext, in creation order."""


def bootstrap(kms: Kms, blobs: BlobStore) -> dict[str, bool]:
    """Create the platform key material that is missing; return object name → created now.

    Idempotent: existing objects are never touched (a second call creates nothing and
    makes no KMS encrypt call). Concurrent callers race on `BlobStore.create`, which is
    create-if-absent, so exactly one object wins and everybody reads that one afterwards.
    Ends by loading everything, so a KMS key that does not match existing material fails
    here, at bootstrap, with a clear error rather than later in a function.
    """
    created: dict[str, bool] = {}
    for name, make in _MATERIAL.items():
        if blobs.read(name) is not None:
            created[name] = False
            continue
        created[name] = blobs.create(name, kms.encrypt(make(), _EMPTY_AAD))
    PlatformKeys.load(kms, blobs)
    return created


def _read(blobs: BlobStore, name: str) -> bytes:
    data = blobs.read(name)
    if data is None:
        raise PlatformError(
            f"platform key material {name!r} is missing from the platform config bucket; "
            f"run `{BOOTSTRAP_COMMAND}` once to create it"
        )
    return data


def _parse_aead(serialized: bytes, what: str) -> aead.Aead:
    try:
        handle = proto_keyset_format.parse(serialized, secret_key_access.TOKEN)
        return handle.primitive(aead.Aead)
    except tink.TinkError as exc:
        raise PlatformError(
            f"{what} is not a Tink AEAD keyset ({exc}); the object in the platform config "
            "bucket is damaged: restore it from a backup of the bucket"
        ) from None


class PlatformKeys:
    """The unwrapped platform material, held in memory for the life of a process.

    Load once per process (`PlatformKeys.load`) and share it: it is immutable and
    thread-safe. `kms_key_uri` and `wrapped_wrapping_keyset` are public because the
    privacy officer's BigQuery SQL names them (`KEYS.KEYSET_CHAIN`); the secret and the
    keysets never leave the object (not even in `repr`).
    """

    __slots__ = ("kms_key_uri", "wrapped_wrapping_keyset", "_wrapping", "_quarantine", "_user_mac", "_hash_mac")

    kms_key_uri: str
    wrapped_wrapping_keyset: bytes

    def __init__(
        self,
        *,
        kms_key_uri: str,
        wrapped_wrapping_keyset: bytes,
        wrapping: aead.Aead,
        quarantine: aead.Aead,
        secret: bytes,
    ) -> None:
        if len(secret) != SECRET_BYTES:
            raise PlatformError(
                f"the HMAC secret {SECRET_OBJECT!r} holds {len(secret)} bytes, expected "
                f"{SECRET_BYTES}; the object is damaged: restore it from a backup of the bucket"
            )
        object.__setattr__(self, "kms_key_uri", kms_key_uri)
        object.__setattr__(self, "wrapped_wrapping_keyset", wrapped_wrapping_keyset)
        object.__setattr__(self, "_wrapping", wrapping)
        object.__setattr__(self, "_quarantine", quarantine)
        # Pre-keyed HMAC states with the domain prefix absorbed: each call copies one and
        # feeds only the value, which is cheaper than re-deriving the key pads per event.
        user_mac = hmac.new(secret, _USER_ID_DOMAIN, hashlib.sha256)
        hash_mac = hmac.new(secret, _HASH_DOMAIN, hashlib.sha256)
        object.__setattr__(self, "_user_mac", user_mac)
        object.__setattr__(self, "_hash_mac", hash_mac)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PlatformKeys is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        return f"PlatformKeys(kms_key_uri={self.kms_key_uri!r})"

    @classmethod
    def load(cls, kms: Kms, blobs: BlobStore) -> PlatformKeys:
        """Read the three objects from the config bucket and unwrap them with the KMS key.

        Raises PlatformError naming `dataplatform keys bootstrap` when material is missing;
        KMS failures surface as the adapter raises them (TransientError when retryable).
        """
        wrapped_wrapping = _read(blobs, WRAPPING_KEYSET_OBJECT)
        wrapped_secret = _read(blobs, SECRET_OBJECT)
        wrapped_quarantine = _read(blobs, QUARANTINE_KEYSET_OBJECT)
        return cls(
            kms_key_uri=kms.key_uri,
            wrapped_wrapping_keyset=wrapped_wrapping,
            wrapping=_parse_aead(
                kms.decrypt(wrapped_wrapping, _EMPTY_AAD), f"the wrapping keyset {WRAPPING_KEYSET_OBJECT!r}"
            ),
            quarantine=_parse_aead(
                kms.decrypt(wrapped_quarantine, _EMPTY_AAD), f"the quarantine keyset {QUARANTINE_KEYSET_OBJECT!r}"
            ),
            secret=kms.decrypt(wrapped_secret, _EMPTY_AAD),
        )

    # ------------------------------------------------------------------ keyed hashes

    def record_id(self, user_id: str) -> str:
        """The key-store id of a data subject: hex HMAC-SHA256(secret, "user-id:" + id).

        Deterministic so every event of a user finds the same record, and keyed so the id
        cannot be recomputed from a guessed user id without the secret.
        """
        mac = self._user_mac.copy()
        mac.update(user_id.encode("utf-8"))
        return mac.hexdigest()

    def keyed_hash(self, value: str) -> str:
        """The `hash` privacy policy: hex HMAC-SHA256(secret, "hash:" + value).

        A different domain prefix than `record_id`, so a hashed column never equals a
        record id even when it holds the same text.
        """
        mac = self._hash_mac.copy()
        mac.update(value.encode("utf-8"))
        return mac.hexdigest()

    # ------------------------------------------------------------------ per-user keysets

    def wrap_user_keyset(self, serialized: bytes, record_id: str) -> bytes:
        """Encrypt a serialized per-user keyset; the record id is the associated data.

        Binding the record id means a keyset copied onto another user's record does not
        decrypt. BigQuery: AEAD.DECRYPT_BYTES(KEYS.KEYSET_CHAIN(uri, wrapped), this, record_id).
        """
        return self._wrapping.encrypt(serialized, record_id.encode("utf-8"))

    def unwrap_user_keyset(self, wrapped: bytes, record_id: str) -> bytes:
        try:
            return self._wrapping.decrypt(wrapped, record_id.encode("utf-8"))
        except tink.TinkError:
            raise PlatformError(
                f"the keyset of key record {record_id!r} does not decrypt with the platform "
                "wrapping keyset: the record was copied from another record id or another "
                "platform; restore the key store and the config bucket from the same backup"
            ) from None

    # ------------------------------------------------------------------ quarantine

    def quarantine_encrypt(self, data: bytes, event_id: str) -> bytes:
        """Encrypt a failed event's original JSON; the event id (or "") is the associated data."""
        return self._quarantine.encrypt(data, event_id.encode("utf-8"))

    def quarantine_decrypt(self, data: bytes, event_id: str) -> bytes:
        try:
            return self._quarantine.decrypt(data, event_id.encode("utf-8"))
        except tink.TinkError:
            raise PlatformError(
                f"the quarantined payload of event {event_id!r} does not decrypt with the "
                "platform quarantine keyset: pass the event id the failed-event record holds "
                "(empty when it had none) and use the platform that quarantined it"
            ) from None
