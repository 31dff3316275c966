"""forget: crypto-shredding through KeyService, the HTTP form, and no user id in logs or answers."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from dataplatform.errors import TransientError
from dataplatform.pipeline.forget import ForgetDeps, InvalidUserId, forget, forget_request
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import PlatformKeys
from tests.fakes import FixedClock, MemoryKeyStore
from tests.functions.recording import platform

USER = "user-4711@example.com"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform(tmp_path_factory.mktemp("forget-keys"))


@pytest.fixture
def store() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def service(store: MemoryKeyStore, keys: PlatformKeys) -> KeyService:
    return KeyService(store, keys, FixedClock())


@pytest.fixture
def deps(service: KeyService) -> ForgetDeps:
    return ForgetDeps(service)


def test_forget_destroys_an_existing_users_keys(deps: ForgetDeps, service: KeyService, store: MemoryKeyStore, keys: PlatformKeys) -> None:
    assert service.resolve([USER])[USER] is not None  # the user has keys

    result = forget(USER, deps)

    assert result.erased is True
    assert result.record_id == keys.record_id(USER)
    record = store.all()[result.record_id]
    assert record.erased and record.pseudonym is None and record.aead_keyset is None and record.daead_keyset is None
    assert service.resolve([USER])[USER] is None


def test_forget_of_an_unknown_user_leaves_a_tombstone(deps: ForgetDeps, service: KeyService, store: MemoryKeyStore) -> None:
    result = forget("never-seen", deps)
    assert result.erased is False
    assert store.all()[result.record_id].erased
    assert service.resolve(["never-seen"])["never-seen"] is None  # no key is ever minted for them


@pytest.mark.parametrize("user_id", ["", "   ", None, 42, "x" * 1025])
def test_forget_rejects_a_bad_user_id(deps: ForgetDeps, user_id: Any) -> None:
    with pytest.raises(InvalidUserId):
        forget(user_id, deps)


def test_http_forget(deps: ForgetDeps, keys: PlatformKeys) -> None:
    response = forget_request("POST", orjson.dumps({"user_id": USER}), deps)
    assert response.status == 200
    assert response.body == {"record_id": keys.record_id(USER), "erased": False}
    data, status, headers = response.to_flask()
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert USER.encode() not in data


@pytest.mark.parametrize(
    ("method", "body", "status", "error"),
    [
        ("GET", b"", 405, "use POST with a JSON body"),
        ("POST", b"user=1", 400, "the body is not JSON"),
        ("POST", b'["u"]', 400, "the body must be exactly {\"user_id\": \"...\"}"),
        ("POST", b'{"user": "u"}', 400, "the body must be exactly {\"user_id\": \"...\"}"),
        ("POST", b'{"user_id": "u", "reason": "x"}', 400, "the body must be exactly"),
        ("POST", b'{"user_id": ""}', 400, "user_id must be a non-empty string"),
        ("POST", b'{"user_id": 7}', 400, "user_id must be a non-empty string"),
        ("POST", orjson.dumps({"user_id": "x" * 2000}), 400, "user_id must be at most 1024 characters"),
        ("POST", b" " * 20_000, 413, "the body is larger than 16384 bytes"),
    ],
    ids=["get", "not-json", "array", "wrong-key", "extra-key", "empty", "number", "too-long", "too-large"],
)
def test_http_forget_bad_requests(deps: ForgetDeps, method: str, body: bytes, status: int, error: str) -> None:
    response = forget_request(method, body, deps)
    assert response.status == status
    assert response.body["error"].startswith(error)


def test_http_forget_key_store_outage_is_503(keys: PlatformKeys) -> None:
    class DownStore(MemoryKeyStore):
        def erase(self, record_id: str, at: Any) -> bool:
            raise ConnectionError("down")

    response = forget_request("POST", orjson.dumps({"user_id": USER}), ForgetDeps(KeyService(DownStore(), keys, FixedClock())))
    assert response.status == 503
    assert response.headers == {"Retry-After": "5"}


def test_forget_never_logs_the_user_id(deps: ForgetDeps, caplog: pytest.LogCaptureFixture, keys: PlatformKeys) -> None:
    caplog.set_level(logging.DEBUG)
    forget_request("POST", orjson.dumps({"user_id": USER}), deps)
    assert keys.record_id(USER) in caplog.text
    assert USER not in caplog.text


def test_transient_error_propagates_from_the_use_case(keys: PlatformKeys) -> None:
    class DownStore(MemoryKeyStore):
        def erase(self, record_id: str, at: Any) -> bool:
            raise TimeoutError("slow")

    with pytest.raises(TransientError):
        forget(USER, ForgetDeps(KeyService(DownStore(), keys, FixedClock())))
