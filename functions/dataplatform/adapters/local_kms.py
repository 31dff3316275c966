"""A local stand-in for Cloud KMS: one Tink AES256_GCM keyset in a file under `.dataplatform/`.

Cloud KMS is the only GCP service the platform uses that has no emulator, so locally the
top of the key hierarchy is this file. It is a *stand-in*, not a KMS: the key sits in clear
(Tink's JSON keyset format) on disk, readable by its owner only (mode 0600). Losing it makes
the local platform material (and so every locally encrypted field) unreadable, just as
destroying a Cloud KMS key would.

The file is created on first use. Two processes racing to create it end with one file:
each writes a private temp file and `os.link`s it into place, which fails for all but the
first, and everybody then reads the file that won.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

import tink
from tink import aead, json_proto_keyset_format, secret_key_access

from dataplatform.errors import PlatformError

aead.register()

DEFAULT_FILENAME = "local_kms_keyset.json"
"""The key file's name under the local state directory (`.dataplatform/`)."""

URI_PREFIX = "local-kms://"


class LocalKms:
    """`ports.Kms` on a local Tink keyset file; `key_uri` is `local-kms://<absolute path>`."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path).absolute()
        self._lock = threading.Lock()
        self._aead: aead.Aead | None = None

    def __repr__(self) -> str:
        return f"LocalKms({str(self._path)!r})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def key_uri(self) -> str:
        return URI_PREFIX + str(self._path)

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        return self._primitive().encrypt(plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        try:
            return self._primitive().decrypt(ciphertext, associated_data)
        except tink.TinkError:
            raise PlatformError(
                f"the local KMS key file {self._path} does not match: it cannot decrypt data "
                "that was encrypted under a local KMS key (the file was replaced or recreated "
                "since). Restore the original key file, or start a fresh local platform by "
                "deleting the local state (.dataplatform/) and running `dataplatform keys bootstrap`"
            ) from None

    # ------------------------------------------------------------------ the key file

    def _primitive(self) -> aead.Aead:
        if self._aead is None:
            with self._lock:
                if self._aead is None:
                    self._aead = self._load_or_create()
        return self._aead

    def _load_or_create(self) -> aead.Aead:
        if not self._path.exists():
            self._create()
        try:
            text = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PlatformError(
                f"cannot read the local KMS key file {self._path}: {exc.strerror}; check its permissions"
            ) from None
        try:
            handle = json_proto_keyset_format.parse(text, secret_key_access.TOKEN)
            return handle.primitive(aead.Aead)
        except tink.TinkError:
            raise PlatformError(
                f"the local KMS key file {self._path} is not a Tink AEAD keyset in JSON; "
                "restore the original file (data encrypted under it is unreadable without it)"
            ) from None

    def _create(self) -> None:
        """Write a new keyset atomically: private temp file, then link into place (O_EXCL)."""
        handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
        text = json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # Fails with FileExistsError for every racer but the first; all then read
                # the winner's file.
                with contextlib.suppress(FileExistsError):
                    os.link(temp, self._path)
            finally:
                os.unlink(temp)
        except OSError as exc:
            raise PlatformError(
                f"cannot create the local KMS key file {self._path}: {exc.strerror}; "
                "check that its directory is writable"
            ) from None
