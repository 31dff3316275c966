"""Property tests of the privacy guarantees, over generated events of every shape:

1. no personal value, nor any 6-character piece of one, reaches the clean row;
2. every encrypted value decrypts, with the user's keys from the key service, to the
   value's text — with its field path as associated data;
3. after `forget`, the user's keys are gone for good (no cache, no store, no re-mint), so
   their old rows stay undecryptable, while other users' rows still decrypt.

Generated personal values use characters that cannot occur in what the platform writes
(hex, digits, timestamps, IP text), so a hit is a leak, not a coincidence. Keyed hashes and
pseudonyms are hex: a 6-digit piece of a personal number showing up in one is chance, not
a leak (the HMAC output does not depend on the value's digits without the secret), so
all-hex pieces are searched everywhere but there. IPs are truncated, not removed, by
design: for them the host part must be gone. Hypothesis runs derandomized (no flakes).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import tink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataplatform.errors import PlatformError
from dataplatform.ports import Message
from dataplatform.privacy.anonymizer import Anonymizer
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import PlatformKeys
from dataplatform.privacy.user_keys import UserCrypto, open_keys
from tests.fakes import DEFAULT_NOW, FixedClock, MemoryKeyStore
from tests.fixtures.privacy.keys import platform_keys
from tests.fixtures.privacy.schemas import load_all

UTC = timezone.utc
NOW = DEFAULT_NOW
WINDOW = 6
HEX = frozenset("0123456789abcdef")
HEX_OUTPUT = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{64})$")
PROPERTIES = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- generators

PII_CHARS = "ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ@_+ éüß中文😀"
pii = st.text(alphabet=PII_CHARS, min_size=WINDOW, max_size=24)
plain = st.text(alphabet="0123456789abcdef", min_size=1, max_size=12)  # non-personal text
ips = st.ip_addresses().map(str)
int64 = st.integers(-(2**63), 2**63 - 1)
birth_dates = st.dates(date(1900, 1, 1), date(1999, 12, 31)).filter(lambda d: d.month not in (4, 5)).map(str)

device = st.fixed_dictionaries({"device_id": pii}, optional={"os": plain, "advertising_id": pii})
location = st.fixed_dictionaries({}, optional={"lat": st.floats(-90, 90), "lon": st.floats(-180, 180)})
context = st.fixed_dictionaries({"device": device}, optional={"ip": ips, "location": location})
result = st.fixed_dictionaries(
    {"track_id": plain}, optional={"note": pii, "position": st.integers(0, 99), "client_ip": ips}
)
payloads = st.fixed_dictionaries(
    {"user_id": pii, "session_id": plain, "context": context},
    optional={
        "email": pii,
        "search_query": pii,
        "count": st.integers(0, 99_999),
        "score": st.sampled_from([0, 0.5, 2.25]),
        "ok": st.booleans(),
        "seen_at": st.sampled_from(["2024-05-01T10:00:00Z", "2024-04-30T23:59:59+02:00"]),
        "day": st.just("2024-05-01"),
        "password": pii,
        "phones": st.lists(pii, max_size=3),
        "hops": st.lists(ips, max_size=3),
        "tags": st.lists(plain, max_size=3),
        "results": st.lists(result, max_size=3),
        "birth_date": birth_dates,
        "age": int64,
        "consent": st.booleans(),
        "visits": st.lists(int64, max_size=3),
        "legacy": st.fixed_dictionaries({}, optional={"token": pii}),
    },
)

ENCRYPTED = {  # path → (deterministic?, plaintext rule), as privacy.policies defines them
    "email": (False, str),
    "context.device.device_id": (True, str),
    "context.location.lat": (False, lambda v: repr(float(v))),
    "context.location.lon": (False, lambda v: repr(float(v))),
    "phones": (False, str),
    "results.note": (False, str),
    "birth_date": (False, str),
    "consent": (True, lambda v: "true" if v else "false"),
    "visits": (True, str),
}
PERSONAL = (  # every path whose value must not reach the row (IPs are checked apart)
    "user_id", "search_query", "age", "password", "context.device.advertising_id", "legacy.token", *ENCRYPTED,
)
IP_PATHS = ("context.ip", "hops", "results.client_ip")


# --------------------------------------------------------------------------- helpers


def at(value: Any, path: str) -> Iterator[Any]:
    """Every value at a dotted path, through RECORDs and arrays (arrays are flattened)."""
    head, _, rest = path.partition(".")
    found = value.get(head) if isinstance(value, dict) else None
    for item in found if isinstance(found, list) else ([] if found is None else [found]):
        if rest:
            yield from at(item, rest)
        else:
            yield item


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield value


def render(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (datetime, date)):
        return value.isoformat().encode()
    return repr(value).encode()


def haystacks(row: dict[str, Any]) -> tuple[bytes, bytes]:
    """(every value but hex hashes/pseudonyms, the hex hashes/pseudonyms), NUL-separated."""
    rendered = [(render(v), isinstance(v, str) and HEX_OUTPUT.match(v) is not None) for v in leaves(row)]
    return (
        b"\0".join(r for r, is_hex in rendered if not is_hex),
        b"\0".join(r for r, is_hex in rendered if is_hex),
    )


def personal_text(path: str, value: Any) -> str:
    rule = ENCRYPTED.get(path, (False, str))[1]
    return rule(value)


def windows(text: str) -> set[str]:
    return {text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)}


def envelope(event_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "profile_probe",
        "schema_version": 1,
        "event_time": "2024-05-01T11:55:00Z",
        "payload": body,
    }


def message(*events: dict[str, Any]) -> Message:
    return Message(orjson.dumps({"received_at": "2024-05-01T12:00:00Z", "events": list(events)}), {})


class World:
    """A fresh key store and key service (per example), on shared platform keys."""

    def __init__(self, platform: PlatformKeys) -> None:
        self.platform = platform
        self.clock = FixedClock(NOW)
        self.store = MemoryKeyStore()
        self.keys = KeyService(self.store, platform, self.clock)
        self.anonymizer = Anonymizer(load_all(), self.keys, platform, self.clock)

    def clean_rows(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        result = self.anonymizer.anonymize([message(*events)])
        assert result.counts.clean == len(events), [f.detail for f in result.failed]
        return result.rows["profile_probe_v1"]

    def crypto(self, user_id: str) -> UserCrypto:
        crypto = self.keys.resolve([user_id])[user_id]
        assert crypto is not None
        return crypto


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform_keys(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="module")
def world(platform: PlatformKeys) -> World:
    return World(platform)


def decrypt_all(crypto: UserCrypto, row: dict[str, Any], body: dict[str, Any]) -> None:
    """Every encrypted value of `row` decrypts to the text of the same value in `body`."""
    for path, (deterministic, rule) in ENCRYPTED.items():
        sent = list(at(body, path))
        stored = [v for v in at(row, path) if v is not None]
        assert len(stored) == len(sent), path
        aad = path.encode()
        for ciphertext, value in zip(stored, sent):
            clear = (
                crypto.daead.decrypt_deterministically(ciphertext, aad)
                if deterministic
                else crypto.aead.decrypt(ciphertext, aad)
            )
            assert clear.decode() == rule(value), path


# --------------------------------------------------------------------------- properties


@PROPERTIES
@given(body=payloads)
def test_no_personal_value_or_piece_of_one_reaches_the_clean_row(world: World, body: dict[str, Any]) -> None:
    (row,) = world.clean_rows(envelope("e-1", body))
    text, hexes = haystacks(row)
    for path in PERSONAL:
        for value in at(body, path):
            for piece in windows(personal_text(path, value)):
                needle = piece.encode()
                assert needle not in text, f"a piece of {path} reached the row"
                if not set(piece) <= HEX:
                    assert needle not in hexes, f"a piece of {path} reached a hash or pseudonym"
    for path in IP_PATHS:
        for stored, sent in zip(at(row, path), at(body, path)):
            address = ipaddress.ip_address(sent)
            if address.version == 6 and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            prefix = 24 if address.version == 4 else 48
            network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
            assert ipaddress.ip_address(stored) == network.network_address, path
            if address != network.network_address:  # it had a host part: it is gone
                assert render(sent) not in text, path


@PROPERTIES
@given(body=payloads)
def test_encrypted_values_decrypt_with_the_users_key(world: World, body: dict[str, Any]) -> None:
    (row,) = world.clean_rows(envelope("e-1", body))
    crypto = world.crypto(body["user_id"])
    assert row["user_pseudonym"] == crypto.pseudonym
    decrypt_all(crypto, row, body)


@PROPERTIES
@given(
    users=st.lists(pii, min_size=2, max_size=2, unique=True),
    bodies=st.lists(payloads, min_size=2, max_size=2),
)
def test_after_forget_only_that_users_rows_become_undecryptable(
    platform: PlatformKeys, users: list[str], bodies: list[dict[str, Any]]
) -> None:
    gone, kept = users
    world = World(platform)
    gone_body, kept_body = bodies[0] | {"user_id": gone}, bodies[1] | {"user_id": kept}
    gone_row, kept_row = world.clean_rows(envelope("e-gone", gone_body), envelope("e-kept", kept_body))
    decrypt_all(world.crypto(gone), gone_row, gone_body)  # readable before

    assert world.keys.forget(gone)

    # the keys are gone everywhere: the service, a cold service on the same store, the store
    assert world.keys.resolve([gone]) == {gone: None}
    assert KeyService(world.store, platform, world.clock).resolve([gone]) == {gone: None}
    record = world.store.all()[platform.record_id(gone)]
    assert record.erased and (record.pseudonym, record.aead_keyset, record.daead_keyset) == (None, None, None)
    with pytest.raises(PlatformError):
        open_keys(platform, record)
    # nobody else's keys open the old rows, even with the right associated data
    other = world.crypto(kept)
    for path, (deterministic, _) in ENCRYPTED.items():
        for ciphertext in (v for v in at(gone_row, path) if v is not None):
            with pytest.raises(tink.TinkError):
                if deterministic:
                    other.daead.decrypt_deterministically(ciphertext, path.encode())
                else:
                    other.aead.decrypt(ciphertext, path.encode())
    # new events of the erased user mint nothing and carry no PII; others are unaffected
    created = len(world.store.create_calls)
    (late_row,) = world.clean_rows(envelope("e-late", gone_body))
    assert late_row["user_pseudonym"] == "erased" and len(world.store.create_calls) == created
    assert all(v is None for path in ENCRYPTED for v in at(late_row, path))
    decrypt_all(world.crypto(kept), kept_row, kept_body)


@PROPERTIES
@given(body=payloads, junk=pii)
def test_rejected_values_never_reach_the_failed_event(world: World, body: dict[str, Any], junk: str) -> None:
    bad = body | {"context": body["context"] | {"ip": junk}}
    result = world.anonymizer.anonymize([message(envelope("e-bad", bad))])
    (failed,) = result.failed
    assert failed.reason == "schema_violation" and failed.detail.startswith("$.context.ip: ")
    record = failed.to_record()
    record.pop("payload_ciphertext")
    text = repr(record).encode()
    for path in (*PERSONAL, "context.ip"):
        for value in at(bad, path):
            for piece in windows(personal_text(path, value)):
                assert piece.encode() not in text, path
    assert (failed.received_at, failed.event_time) == (NOW, NOW - timedelta(minutes=5))
    assert failed.failed_at.tzinfo is UTC
