"""The forget use case: erase a data subject by crypto-shredding their keys (GDPR Art. 17).

`KeyService.forget` replaces the user's key record with a tombstone: the per-user keysets
and the pseudonym are gone, so every value encrypted for that user, in every table and
backup, is unreadable from now on, and the pseudonym can no longer be linked to anybody.
Late events of the user are still loaded, with the fixed pseudonym "erased" and NULL
encrypted fields (the tombstone stops new keys being minted).

The user id is personal data: it is never logged, echoed or stored. Logs and answers name
the record id instead (HMAC of the user id with the platform secret), which lets an
operator correlate a request without learning who it was about.

HTTP (`forget` function): `POST` with body `{"user_id": "<id>"}` → 200
`{"record_id": ..., "erased": true|false}` (`erased` false when the user had no keys: a
tombstone is written anyway, so keys are never minted for them later); 400 for a bad body;
405 for another method; 503 when the key store is unavailable (retry). Who may call it is
decided by IAM in GCP (the function is not public: only the privacy team's group and the
platform's service accounts are invokers); locally it listens on loopback only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from dataplatform.errors import PlatformError, TransientError

logger = logging.getLogger(__name__)

MAX_USER_ID = 1024
MAX_BODY_BYTES = 16_384


class Forgets(Protocol):
    """What forget needs from `privacy.key_service.KeyService`."""

    def record_id(self, user_id: str) -> str: ...

    def forget(self, user_id: str) -> bool: ...


@dataclass(frozen=True)
class ForgetDeps:
    keys: Forgets


@dataclass(frozen=True)
class ForgetResult:
    record_id: str
    erased: bool
    """True when keys existed and were destroyed now; False when there was nothing to destroy."""


@dataclass(frozen=True)
class ForgetResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def to_flask(self) -> tuple[bytes, int, dict[str, str]]:
        return orjson.dumps(self.body), self.status, {"Content-Type": "application/json", **self.headers}


class InvalidUserId(PlatformError):
    """The user id is not a non-empty string of at most MAX_USER_ID characters."""


def check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidUserId("user_id must be a non-empty string")
    if len(user_id) > MAX_USER_ID:
        raise InvalidUserId(f"user_id must be at most {MAX_USER_ID} characters")
    return user_id


def forget(user_id: str, deps: ForgetDeps) -> ForgetResult:
    """Crypto-shred `user_id`'s keys; TransientError when the key store is unavailable."""
    user_id = check_user_id(user_id)
    record_id = deps.keys.record_id(user_id)
    erased = deps.keys.forget(user_id)
    logger.info("forget: record %s erased (keys existed: %s)", record_id, erased)
    return ForgetResult(record_id=record_id, erased=erased)


def forget_request(method: str, body: bytes, deps: ForgetDeps) -> ForgetResponse:
    """The HTTP form: POST {"user_id": ...}."""
    if method != "POST":
        return ForgetResponse(405, {"error": "use POST with a JSON body {\"user_id\": \"...\"}"}, {"Allow": "POST"})
    if len(body) > MAX_BODY_BYTES:
        return _too_large()
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ForgetResponse(400, {"error": "the body is not JSON; send {\"user_id\": \"...\"}"})
    if not isinstance(document, dict) or set(document) != {"user_id"}:
        return ForgetResponse(400, {"error": "the body must be exactly {\"user_id\": \"...\"}"})
    try:
        result = forget(document["user_id"], deps)
    except InvalidUserId as exc:
        return ForgetResponse(400, {"error": str(exc)})
    except TransientError as exc:
        logger.warning("forget: key store unavailable, answering 503: %s", exc)
        return ForgetResponse(503, {"error": "the key store is unavailable; retry later"}, {"Retry-After": "5"})
    return ForgetResponse(200, {"record_id": result.record_id, "erased": result.erased})


def _too_large() -> ForgetResponse:
    return ForgetResponse(413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes; send {{\"user_id\": \"...\"}}"})


def handle_http(request: Any, deps: ForgetDeps) -> tuple[bytes, int, dict[str, str]]:
    """The `forget` Cloud Function over a Flask request."""
    length = request.content_length
    if request.method == "POST" and length is not None and length > MAX_BODY_BYTES:
        return _too_large().to_flask()
    return forget_request(request.method, request.get_data(cache=False), deps).to_flask()
