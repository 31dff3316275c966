"""`ports.Kms` on Cloud KMS: raw symmetric encrypt/decrypt under one CryptoKey.

Raw Cloud KMS encryption of a serialized Tink keyset is exactly what BigQuery's
`KEYS.KEYSET_CHAIN('gcp-kms://<key name>', wrapped)` unwraps, which is why the platform
material is stored this way (see `privacy/keys.py`). Every request carries CRC32C checksums
and every response is verified, as Google recommends, so a corrupted payload in transit is
retried (TransientError) instead of stored. `additional_authenticated_data` is sent only
when non-empty: empty AAD must stay byte-for-byte what BigQuery expects.

The google-cloud-kms import is lazy (inside the client factory) so that importing the
package costs nothing where Cloud KMS is not used (locally, unit tests).
"""

from __future__ import annotations

import re
from typing import Any

from dataplatform.errors import PlatformError, TransientError

URI_PREFIX = "gcp-kms://"
KEY_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
TIMEOUT_SECONDS = 30.0
ENCRYPTER_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def _crc32c(data: bytes) -> int:
    import google_crc32c  # lazy like every google import; it ships with the Cloud clients

    return int(google_crc32c.value(data))


class CloudKms:
    """One Cloud KMS CryptoKey (`projects/…/locations/…/keyRings/…/cryptoKeys/…`)."""

    def __init__(self, key_name: str, client: Any = None, *, timeout: float = TIMEOUT_SECONDS) -> None:
        if not KEY_NAME.match(key_name):
            raise PlatformError(
                f"Cloud KMS key name {key_name!r} is not of the form "
                "projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key> "
                "(no cryptoKeyVersions suffix, no gcp-kms:// prefix)"
            )
        self._key_name = key_name
        self._client = client
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"CloudKms({self._key_name!r})"

    @property
    def key_uri(self) -> str:
        return URI_PREFIX + self._key_name

    def _kms_client(self) -> Any:
        if self._client is None:
            from google.cloud import kms

            self._client = kms.KeyManagementServiceClient()
        return self._client

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        request: dict[str, Any] = {
            "name": self._key_name,
            "plaintext": plaintext,
            "plaintext_crc32c": _crc32c(plaintext),
        }
        if associated_data:
            request["additional_authenticated_data"] = associated_data
            request["additional_authenticated_data_crc32c"] = _crc32c(associated_data)
        response = self._call("encrypt", request)
        verified = response.verified_plaintext_crc32c and (
            not associated_data or response.verified_additional_authenticated_data_crc32c
        )
        if not verified or response.ciphertext_crc32c != _crc32c(response.ciphertext):
            raise TransientError(
                f"Cloud KMS encrypt with {self._key_name} failed its CRC32C integrity check "
                "(data corrupted in transit); retry"
            )
        return bytes(response.ciphertext)

    def decrypt(self, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        request: dict[str, Any] = {
            "name": self._key_name,
            "ciphertext": ciphertext,
            "ciphertext_crc32c": _crc32c(ciphertext),
        }
        if associated_data:
            request["additional_authenticated_data"] = associated_data
            request["additional_authenticated_data_crc32c"] = _crc32c(associated_data)
        response = self._call("decrypt", request)
        if response.plaintext_crc32c != _crc32c(response.plaintext):
            raise TransientError(
                f"Cloud KMS decrypt with {self._key_name} failed its CRC32C integrity check "
                "(data corrupted in transit); retry"
            )
        return bytes(response.plaintext)

    def _call(self, method: str, request: dict[str, Any]) -> Any:
        from google.api_core import exceptions

        try:
            return getattr(self._kms_client(), method)(request=request, timeout=self._timeout)
        except (
            exceptions.ServiceUnavailable,
            exceptions.DeadlineExceeded,
            exceptions.InternalServerError,
            exceptions.TooManyRequests,
            exceptions.RetryError,
        ) as exc:
            raise TransientError(
                f"Cloud KMS {method} with {self._key_name} failed transiently ({type(exc).__name__}); retry"
            ) from exc
        except exceptions.PermissionDenied:
            raise PlatformError(
                f"Cloud KMS {method} with {self._key_name} was denied: grant the function's service "
                f"account {ENCRYPTER_ROLE} on the key"
            ) from None
        except exceptions.NotFound:
            raise PlatformError(
                f"Cloud KMS key {self._key_name} does not exist (or is disabled); check the "
                "configured key name or run `pulumi up` to create it"
            ) from None
        except exceptions.InvalidArgument as exc:
            if method == "decrypt":
                raise PlatformError(
                    f"Cloud KMS key {self._key_name} cannot decrypt this ciphertext: it was "
                    "encrypted under another key (or another associated data); check that the "
                    "configured key is the one the platform material was bootstrapped with"
                ) from None
            raise PlatformError(
                f"Cloud KMS {method} with {self._key_name} rejected the request: {exc.message}"
            ) from None
        except exceptions.GoogleAPICallError as exc:
            raise PlatformError(
                f"Cloud KMS {method} with {self._key_name} failed: {type(exc).__name__}: {exc.message}"
            ) from None
