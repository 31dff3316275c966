"""The Cloud KMS adapter against a fake KeyManagementServiceClient (Cloud KMS has no emulator).

The fake speaks the client's real request/response shapes (`kms_v1` proto-plus types), so
what is checked here is what the adapter sends and how it reads answers and errors.
"""

from __future__ import annotations

from typing import Any

import google_crc32c
import pytest
import tink
from google.api_core import exceptions
from google.cloud import kms_v1
from tink import aead

from dataplatform.adapters.cloud_kms import CloudKms
from dataplatform.errors import PlatformError, TransientError
from dataplatform.ports import Kms

KEY = "projects/demo/locations/europe-west1/keyRings/dataplatform/cryptoKeys/platform"

aead.register()


def _crc(data: bytes) -> int:
    return int(google_crc32c.value(data))


class FakeKmsClient:
    """Raw AEAD under one key, validating requests as Cloud KMS does."""

    def __init__(self) -> None:
        self._aead = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
        self.requests: list[tuple[str, Any, float | None]] = []
        self.raw_requests: list[dict[str, Any]] = []
        self.raise_next: Exception | None = None
        self.corrupt = False

    def _record(self, method: str, request: dict[str, Any], timeout: float | None) -> Any:
        typed = (kms_v1.EncryptRequest if method == "encrypt" else kms_v1.DecryptRequest)(request)
        self.requests.append((method, typed, timeout))
        self.raw_requests.append(request)
        if self.raise_next:
            error, self.raise_next = self.raise_next, None
            raise error
        if typed.name != KEY:
            raise exceptions.NotFound(f"CryptoKey {typed.name} not found")
        return typed

    def encrypt(self, request: dict[str, Any], timeout: float | None = None) -> kms_v1.EncryptResponse:
        typed = self._record("encrypt", request, timeout)
        assert typed.plaintext_crc32c == _crc(typed.plaintext)
        ciphertext = self._aead.encrypt(typed.plaintext, typed.additional_authenticated_data)
        return kms_v1.EncryptResponse(
            name=KEY + "/cryptoKeyVersions/1",
            ciphertext=ciphertext,
            ciphertext_crc32c=_crc(ciphertext) ^ (1 if self.corrupt else 0),
            verified_plaintext_crc32c=True,
            verified_additional_authenticated_data_crc32c=bool(typed.additional_authenticated_data),
        )

    def decrypt(self, request: dict[str, Any], timeout: float | None = None) -> kms_v1.DecryptResponse:
        typed = self._record("decrypt", request, timeout)
        assert typed.ciphertext_crc32c == _crc(typed.ciphertext)
        try:
            plaintext = self._aead.decrypt(typed.ciphertext, typed.additional_authenticated_data)
        except tink.TinkError:
            raise exceptions.InvalidArgument("Decryption failed: the ciphertext is invalid.") from None
        return kms_v1.DecryptResponse(
            plaintext=plaintext, plaintext_crc32c=_crc(plaintext) ^ (1 if self.corrupt else 0)
        )


@pytest.fixture
def client() -> FakeKmsClient:
    return FakeKmsClient()


@pytest.fixture
def kms(client: FakeKmsClient) -> CloudKms:
    return CloudKms(KEY, client=client)


def test_it_is_a_kms_port_with_a_bigquery_key_uri(kms: CloudKms) -> None:
    assert isinstance(kms, Kms)
    assert kms.key_uri == "gcp-kms://" + KEY


def test_round_trip_without_associated_data_sends_none(kms: CloudKms, client: FakeKmsClient) -> None:
    sealed = kms.encrypt(b"serialized keyset")
    assert kms.decrypt(sealed) == b"serialized keyset"
    for raw in client.raw_requests:
        assert "additional_authenticated_data" not in raw
        assert "additional_authenticated_data_crc32c" not in raw
    assert [timeout for _, _, timeout in client.requests] == [30.0, 30.0]
    assert [method for method, _, _ in client.requests] == ["encrypt", "decrypt"]


def test_round_trip_with_associated_data(kms: CloudKms, client: FakeKmsClient) -> None:
    sealed = kms.encrypt(b"v", b"aad")
    assert client.requests[-1][1].additional_authenticated_data == b"aad"
    assert client.requests[-1][1].additional_authenticated_data_crc32c == _crc(b"aad")
    assert kms.decrypt(sealed, b"aad") == b"v"


def test_decrypting_with_other_associated_data_says_what_to_check(kms: CloudKms) -> None:
    sealed = kms.encrypt(b"v", b"aad")
    with pytest.raises(PlatformError, match="cannot decrypt this ciphertext"):
        kms.decrypt(sealed, b"other")


@pytest.mark.parametrize(
    "error",
    [
        exceptions.ServiceUnavailable("down"),
        exceptions.DeadlineExceeded("slow"),
        exceptions.InternalServerError("oops"),
        exceptions.TooManyRequests("quota"),
        exceptions.ResourceExhausted("quota"),
        exceptions.RetryError("gave up", cause=None),
    ],
)
def test_retryable_failures_become_transient_errors(kms: CloudKms, client: FakeKmsClient, error: Exception) -> None:
    client.raise_next = error
    with pytest.raises(TransientError, match="retry"):
        kms.encrypt(b"v")
    assert kms.decrypt(kms.encrypt(b"v")) == b"v"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (exceptions.PermissionDenied("no"), "roles/cloudkms.cryptoKeyEncrypterDecrypter"),
        (exceptions.FailedPrecondition("key version disabled"), "FailedPrecondition: key version disabled"),
        (exceptions.InvalidArgument("plaintext too large"), "rejected the request: plaintext too large"),
    ],
)
def test_permanent_failures_are_platform_errors_that_say_what_to_do(
    kms: CloudKms, client: FakeKmsClient, error: Exception, message: str
) -> None:
    client.raise_next = error
    with pytest.raises(PlatformError, match=message) as err:
        kms.encrypt(b"v")
    assert not isinstance(err.value, TransientError)


def test_an_unknown_key_is_reported(client: FakeKmsClient) -> None:
    other = CloudKms(KEY.replace("platform", "missing"), client=client)
    with pytest.raises(PlatformError, match="does not exist"):
        other.encrypt(b"v")


@pytest.mark.parametrize("method", ["encrypt", "decrypt"])
def test_corruption_in_transit_is_caught_by_crc32c(kms: CloudKms, client: FakeKmsClient, method: str) -> None:
    sealed = kms.encrypt(b"v")
    client.corrupt = True
    with pytest.raises(TransientError, match="CRC32C"):
        kms.encrypt(b"v") if method == "encrypt" else kms.decrypt(sealed)


@pytest.mark.parametrize(
    "name",
    [
        "gcp-kms://" + KEY,
        KEY + "/cryptoKeyVersions/1",
        "projects/demo/cryptoKeys/platform",
        "",
    ],
)
def test_a_malformed_key_name_is_rejected_up_front(name: str) -> None:
    with pytest.raises(PlatformError, match="is not of the form"):
        CloudKms(name, client=FakeKmsClient())


def test_the_real_client_is_created_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.cloud import kms as kms_module

    created: list[FakeKmsClient] = []

    def factory() -> FakeKmsClient:
        created.append(FakeKmsClient())
        return created[-1]

    monkeypatch.setattr(kms_module, "KeyManagementServiceClient", factory)
    adapter = CloudKms(KEY)
    assert created == []
    adapter.encrypt(b"v")
    adapter.encrypt(b"w")
    assert len(created) == 1
