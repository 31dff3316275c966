"""Privacy policies: each policy on each type, inside RECORDs and arrays, with real Tink keys.

The compiled plan must produce exactly the columns of the event table, so the clean topic's
Avro schema and the warehouse table always match what the anonymizer writes.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import tink
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplatform.compile.bigquery_schema import BqField, event_table
from dataplatform.definitions.models import EventSchema, FieldDef
from dataplatform.privacy.keys import PlatformKeys
from dataplatform.privacy.policies import (
    ERASED_PSEUDONYM,
    ErasedCrypto,
    FieldRejected,
    Plan,
    compile_plan,
    parse_rfc3339,
    plaintext,
    truncate_ip,
)
from dataplatform.privacy.user_keys import UserCrypto
from tests.fixtures.privacy.keys import platform_keys, user_crypto
from tests.fixtures.privacy.schemas import NAMES, load

UTC = timezone.utc
HEAD = ("event_id", "event_time", "received_at", "schema_version")
METADATA = ("message_id", "publish_time", "subscription_name", "attributes")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform_keys(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="module")
def alice(platform: PlatformKeys) -> UserCrypto:
    return user_crypto(platform, "alice")


@pytest.fixture(scope="module")
def probe() -> EventSchema:
    return load("profile_probe")


@pytest.fixture(scope="module")
def plan(probe: EventSchema, platform: PlatformKeys) -> Plan:
    return compile_plan(probe, platform)


def full_payload() -> dict[str, Any]:
    return {
        "user_id": "alice",
        "email": "alice@example.com",
        "search_query": "songs about rain",
        "session_id": "s-1",
        "count": 3,
        "score": 2,
        "ok": True,
        "seen_at": "2024-05-01T14:00:00.5+02:00",
        "day": "2024-05-01",
        "password": "hunter2hunter2",
        "context": {
            "ip": "203.0.113.77",
            "device": {"device_id": "dev-123456", "os": "android", "advertising_id": "ad-987654"},
            "location": {"lat": 52.52, "lon": 13.405},
        },
        "phones": ["+49301234567", "+49309876543"],
        "hops": ["198.51.100.7", "2001:db8:abcd:12:1:2:3:4"],
        "tags": ["a", "b"],
        "results": [
            {"track_id": "t-1", "note": "my favourite", "position": 1, "client_ip": "192.0.2.200"},
            {"track_id": "t-2", "position": 2},
        ],
        "birth_date": "1990-02-03",
        "age": 34,
        "consent": False,
        "visits": [7, 7, 8],
        "legacy": {"token": "tok-secret-1"},
    }


def columns(fields: tuple[BqField, ...]) -> list[Any]:
    """Column names, with (name, nested names) for RECORDs, as `event_table` defines them."""
    return [(f.name, columns(f.fields)) if f.fields else f.name for f in fields]


def row_columns(row: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for name, value in row.items():
        if isinstance(value, dict):
            out.append((name, row_columns(value)))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out.append((name, row_columns(value[0])))
        else:
            out.append(name)
    return out


# --------------------------------------------------------------------------- truncate_ip


@pytest.mark.parametrize(
    ("address", "truncated"),
    [
        ("192.168.1.23", "192.168.1.0"),
        ("8.8.8.8", "8.8.8.0"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.0"),
        ("10.0.0.1", "10.0.0.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::"),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:ffff::"),
        ("::1", "::"),
        ("fe80::1%eth0", "fe80::"),
        ("::ffff:192.0.2.128", "192.0.2.0"),
        ("2A00:1450:4001:82B::200E", "2a00:1450:4001::"),
    ],
)
def test_truncate_ip_vectors(address: str, truncated: str) -> None:
    assert truncate_ip(address) == truncated


def _reference_truncate_ip(text: str) -> str | None:
    """What `ipaddress` alone says (the definition the fast paths must agree with)."""
    try:
        address = ipaddress.ip_address(text) if "%" not in text else ipaddress.IPv6Address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address((int(address) >> 8) << 8))
    return str(ipaddress.IPv6Address((int(address) >> 80) << 80))


def _truncated_or_none(text: str) -> str | None:
    try:
        return truncate_ip(text)
    except FieldRejected:
        return None


@settings(max_examples=400, deadline=None)
@given(
    value=st.integers(0, 2**128 - 1),
    zeros=st.integers(0, 7),
    form=st.sampled_from(["compressed", "exploded", "upper", "mapped", "zone"]),
)
def test_truncate_ip_ipv6_fast_path_agrees_with_ipaddress(value: int, zeros: int, form: str) -> None:
    value = (value >> (16 * zeros)) << (16 * zeros)  # runs of zero groups, compressed differently
    address = ipaddress.IPv6Address(value)
    text = {
        "compressed": address.compressed,
        "exploded": address.exploded,
        "upper": address.compressed.upper(),
        "mapped": f"::ffff:{ipaddress.IPv4Address(value & 0xFFFFFFFF)}",
        "zone": f"{address.compressed}%eth0",
    }[form]
    assert truncate_ip(text) == _reference_truncate_ip(text)


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet="0123456789abcdefABCDEFx:.%/ ", min_size=1, max_size=45).filter(lambda t: ":" in t))
def test_truncate_ip_accepts_exactly_what_ipaddress_accepts(text: str) -> None:
    assert _truncated_or_none(text) == _reference_truncate_ip(text)


@pytest.mark.parametrize(
    "edge",
    [
        "::1.2.3.4", "::ffff:1.2.3.4", "::ffff:01.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1::2:3:4:5:6:7",
        "00001::", "1:2:3:4:5:6:7:8:9", ":1::", "1::", "::", "0:0:0:0:0:ffff:102:304", "::ffff:1.2.3",
        "fe80::1%", "fe80::1%eth0%x", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1.2.3.4::",
    ],
)
def test_truncate_ip_edge_forms_agree_with_ipaddress(edge: str) -> None:
    assert _truncated_or_none(edge) == _reference_truncate_ip(edge)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1.2.3",
        "1.2.3.256",
        "01.2.3.4",
        "1.2.3.4.5",
        "w.x.y.z",
        "not an ip address",
        "1.2.3.4/24",
        " 1.2.3.4",
        "1.2.3.4:8080",
        "\u0661.2.3.4",
        "::g",
        "2001:db8::1::2",
        "jane.doe@example.com",
    ],
)
def test_truncate_ip_rejects_non_addresses_without_echoing_them(bad: str) -> None:
    with pytest.raises(FieldRejected) as info:
        truncate_ip(bad)
    assert "not an IP address" in info.value.reason
    if bad.strip():
        assert bad.strip() not in str(info.value)


@given(st.ip_addresses(v=4))
def test_truncate_ipv4_is_the_slash_24_network(address: ipaddress.IPv4Address) -> None:
    assert truncate_ip(str(address)) == str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)


@given(st.ip_addresses(v=6))
def test_truncate_ipv6_is_the_slash_48_network(address: ipaddress.IPv6Address) -> None:
    truncated = ipaddress.ip_address(truncate_ip(str(address)))
    if address.ipv4_mapped is not None:
        assert truncated == ipaddress.ip_network(f"{address.ipv4_mapped}/24", strict=False).network_address
    else:
        assert truncated == ipaddress.ip_network(f"{address}/48", strict=False).network_address


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00.25+02:00", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-01 12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339_accepts_and_normalises_to_utc(text: str, expected: datetime) -> None:
    value = parse_rfc3339(text)
    assert value == expected and value is not None and value.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2024-05-01", "2024-05-01T12:00:00", "20240501T120000Z", "2024-05-01T12:00Z", "yesterday", ""]
)
def test_parse_rfc3339_rejects_what_is_not_rfc3339(text: str) -> None:
    assert parse_rfc3339(text) is None


def test_plaintext_rules() -> None:
    assert plaintext("STRING")("x y") == "x y"
    assert plaintext("INT64")(-42) == "-42"
    assert plaintext("FLOAT64")(3) == plaintext("FLOAT64")(3.0) == "3.0"
    assert plaintext("FLOAT64")(0.1) == "0.1"
    assert plaintext("BOOL")(True) == "true" and plaintext("BOOL")(False) == "false"
    assert plaintext("TIMESTAMP")("2024-05-01T12:00:00+02:00") == "2024-05-01T12:00:00+02:00"
    assert plaintext("DATE")("2024-05-01") == "2024-05-01"


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("name", NAMES)
def test_plan_writes_exactly_the_event_table_columns(name: str, platform: PlatformKeys, tmp_path: Path) -> None:
    schema = load(name)
    table = event_table(schema)
    expected = columns(tuple(f for f in table.fields if f.name not in HEAD + METADATA))
    plan = compile_plan(schema, platform)
    payload = _sample(schema)
    crypto = user_crypto(platform, "u-1") if plan.needs_keys else None
    assert row_columns(plan.apply(payload, crypto, {})) == expected


def test_plans_of_the_example_catalog_write_their_table_columns(catalog: Any, platform: PlatformKeys) -> None:
    crypto = user_crypto(platform, "u-1")
    for schema in catalog.schemas:
        table = event_table(schema)
        expected = columns(tuple(f for f in table.fields if f.name not in HEAD + METADATA))
        row = compile_plan(schema, platform).apply(_filled(schema.fields), crypto, {})
        assert row_columns(row) == expected, schema.key


def _filled(fields: tuple[FieldDef, ...]) -> dict[str, Any]:
    """A payload with every field set (one element per array), values of the right type."""
    values = {"STRING": "x", "INT64": 1, "FLOAT64": 1.5, "BOOL": True, "TIMESTAMP": "2024-05-01T12:00:00Z", "DATE": "2024-05-01"}
    out: dict[str, Any] = {}
    for f in fields:
        value = _filled(f.fields) if f.type == "RECORD" else ("192.0.2.1" if f.privacy == "truncate_ip" else values[f.type])
        out[f.name] = [value] if f.repeated else value
    return out


def _sample(schema: EventSchema) -> dict[str, Any]:
    if schema.name == "profile_probe":
        return full_payload()
    if schema.name == "account_nested":
        return {"account": {"id": "bob", "email": "bob@example.com"}, "plan": "premium"}
    return {"install_id": "inst-1", "ip": "192.0.2.1", "latency_ms": 12.5}


def test_every_policy_on_the_probe(plan: Plan, alice: UserCrypto, platform: PlatformKeys) -> None:
    row = plan.apply(full_payload(), alice, {})

    assert row["user_pseudonym"] == alice.pseudonym and len(alice.pseudonym) == 32
    assert alice.aead.decrypt(row["email"], b"email") == b"alice@example.com"
    assert row["search_query"] == platform.keyed_hash("songs about rain")
    assert (row["session_id"], row["count"], row["ok"], row["tags"]) == ("s-1", 3, True, ["a", "b"])
    assert row["score"] == 2.0 and type(row["score"]) is float
    assert row["seen_at"] == datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert row["day"] == date(2024, 5, 1)
    assert "password" not in row and "legacy" not in row

    context = row["context"]
    assert context["ip"] == "203.0.113.0"
    assert alice.daead.decrypt_deterministically(context["device"]["device_id"], b"context.device.device_id") == b"dev-123456"
    assert context["device"]["os"] == "android" and "advertising_id" not in context["device"]
    assert alice.aead.decrypt(context["location"]["lat"], b"context.location.lat") == b"52.52"
    assert alice.aead.decrypt(context["location"]["lon"], b"context.location.lon") == b"13.405"

    assert [alice.aead.decrypt(c, b"phones") for c in row["phones"]] == [b"+49301234567", b"+49309876543"]
    assert row["hops"] == ["198.51.100.0", "2001:db8:abcd::"]
    first, second = row["results"]
    assert first["track_id"] == "t-1" and first["position"] == 1 and first["client_ip"] == "192.0.2.0"
    assert alice.aead.decrypt(first["note"], b"results.note") == b"my favourite"
    assert second == {"track_id": "t-2", "note": None, "position": 2, "client_ip": None}

    assert alice.aead.decrypt(row["birth_date"], b"birth_date") == b"1990-02-03"
    assert row["age"] == platform.keyed_hash("34")
    assert alice.daead.decrypt_deterministically(row["consent"], b"consent") == b"false"
    first_visit, second_visit, third_visit = row["visits"]
    assert first_visit == second_visit != third_visit
    assert alice.daead.decrypt_deterministically(third_visit, b"visits") == b"8"


def test_ciphertext_is_bound_to_its_field_path(plan: Plan, alice: UserCrypto) -> None:
    row = plan.apply(full_payload(), alice, {})
    with pytest.raises(tink.TinkError):
        alice.aead.decrypt(row["email"], b"results.note")
    with pytest.raises(tink.TinkError):
        alice.daead.decrypt_deterministically(row["consent"], b"visits")


def test_encrypt_is_randomised_and_deterministic_encryption_is_not(plan: Plan, alice: UserCrypto) -> None:
    one, two = plan.apply(full_payload(), alice, {}), plan.apply(full_payload(), alice, {})
    assert one["email"] != two["email"]
    assert one["context"]["device"]["device_id"] == two["context"]["device"]["device_id"]
    assert one["user_pseudonym"] == two["user_pseudonym"]


def test_users_get_different_pseudonyms_and_ciphertexts(plan: Plan, alice: UserCrypto, platform: PlatformKeys) -> None:
    bob = user_crypto(platform, "bob")
    mine, theirs = plan.apply(full_payload(), alice, {}), plan.apply(full_payload(), bob, {})
    assert mine["user_pseudonym"] != theirs["user_pseudonym"]
    assert mine["context"]["device"]["device_id"] != theirs["context"]["device"]["device_id"]
    with pytest.raises(tink.TinkError):
        bob.aead.decrypt(mine["email"], b"email")
    # keyed hashes are per platform, not per user: joins across users still work
    assert mine["search_query"] == theirs["search_query"]


def test_absent_optional_fields_are_null_and_absent_arrays_empty(plan: Plan, alice: UserCrypto) -> None:
    minimal = {"user_id": "alice", "session_id": "s", "context": {"device": {"device_id": "d"}}}
    row = plan.apply(minimal, alice, {})
    assert row["email"] is None and row["search_query"] is None and row["count"] is None
    assert row["context"] == {"ip": None, "device": {"device_id": row["context"]["device"]["device_id"], "os": None}, "location": None}
    assert row["phones"] == [] and row["hops"] == [] and row["tags"] == [] and row["results"] == [] and row["visits"] == []


def test_explicit_nulls_are_null(plan: Plan, alice: UserCrypto) -> None:
    payload = full_payload() | {"email": None, "age": None, "consent": None}
    payload["context"]["ip"] = None
    row = plan.apply(payload, alice, {})
    assert (row["email"], row["age"], row["consent"], row["context"]["ip"]) == (None, None, None, None)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p["context"].update(ip="jane.doe@example.com"), "$.context.ip"),
        (lambda p: p.update(hops=["192.0.2.1", "10.0.0.1", "home-router-jane"]), "$.hops[2]"),
        (lambda p: p["results"][1].update(client_ip="1.2.3.999"), "$.results[1].client_ip"),
    ],
)
def test_invalid_ip_is_rejected_with_its_path_not_its_value(
    plan: Plan, alice: UserCrypto, mutate: Any, path: str
) -> None:
    payload = full_payload()
    mutate(payload)
    with pytest.raises(FieldRejected) as info:
        plan.apply(payload, alice, {})
    assert info.value.path == path
    assert str(info.value) == f"{path}: not an IP address: expected IPv4 a.b.c.d or IPv6"


def test_hash_is_keyed_equal_inputs_equal_outputs(tmp_path: Path, platform: PlatformKeys, probe: EventSchema, alice: UserCrypto) -> None:
    other_platform = platform_keys(tmp_path)
    mine = compile_plan(probe, platform).apply(full_payload(), alice, {})
    again = compile_plan(probe, platform).apply(full_payload(), alice, {})
    other = compile_plan(probe, other_platform).apply(full_payload(), alice, {})
    assert mine["search_query"] == again["search_query"]
    assert mine["search_query"] != other["search_query"]  # another secret, another hash
    assert mine["age"] != other["age"]
    import hashlib

    assert mine["search_query"] != hashlib.sha256(b"songs about rain").hexdigest()  # never a bare hash
    assert len(mine["search_query"]) == 64 and int(mine["search_query"], 16) >= 0


def test_erased_user_gets_marker_pseudonym_null_ciphertexts_and_counts(plan: Plan, platform: PlatformKeys) -> None:
    erased = ErasedCrypto()
    row = plan.apply(full_payload(), erased, {})
    assert row["user_pseudonym"] == ERASED_PSEUDONYM
    assert row["email"] is None and row["birth_date"] is None and row["consent"] is None
    assert row["context"]["device"]["device_id"] is None
    assert row["context"]["location"] == {"lat": None, "lon": None}
    assert row["phones"] == [] and row["visits"] == []
    assert [r["note"] for r in row["results"]] == [None, None]
    # hash and truncation still apply; nothing else is lost
    assert row["search_query"] == platform.keyed_hash("songs about rain")
    assert row["context"]["ip"] == "203.0.113.0" and row["hops"] == ["198.51.100.0", "2001:db8:abcd::"]
    # email, device_id, lat, lon, 2 phones, 1 note (the other is absent), birth_date, consent, 3 visits
    assert erased.nulled == 12


def test_nested_subject(platform: PlatformKeys) -> None:
    schema = load("account_nested")
    plan = compile_plan(schema, platform)
    payload = {"account": {"id": "bob", "email": "bob@example.com"}, "plan": "free"}
    assert plan.subject == ("account", "id") and plan.subject_of(payload) == "bob"
    assert plan.subject_of({"plan": "free"}) is None
    bob = user_crypto(platform, "bob")
    row = plan.apply(payload, bob, {})
    assert row["account"]["user_pseudonym"] == bob.pseudonym
    assert bob.aead.decrypt(row["account"]["email"], b"account.email") == b"bob@example.com"
    assert row["plan"] == "free"


def test_schema_without_subject_needs_no_keys(platform: PlatformKeys) -> None:
    plan = compile_plan(load("anonymous_ping"), platform)
    assert not plan.needs_keys and plan.subject_of({"install_id": "x"}) is None
    row = plan.apply({"install_id": "inst-1", "ip": "2001:db8::1", "latency_ms": 3}, None, {})
    assert row == {"install_id": platform.keyed_hash("inst-1"), "ip": "2001:db8::", "latency_ms": 3.0}


def test_row_keeps_the_head_columns_given(plan: Plan, alice: UserCrypto) -> None:
    head = {"event_id": "e-1", "event_time": datetime.now(UTC), "received_at": datetime.now(UTC) + timedelta(seconds=1), "schema_version": 1}
    row = plan.apply(full_payload(), alice, dict(head))
    assert list(row)[:4] == list(HEAD) and all(row[k] == head[k] for k in HEAD)


def test_row_is_apply_with_the_head_columns(plan: Plan, alice: UserCrypto) -> None:
    from dataplatform.compile.bigquery_schema import HEAD_COLUMNS
    from dataplatform.privacy.policies import HEAD_COLUMNS as PLAN_HEAD

    assert PLAN_HEAD == tuple(f.name for f in HEAD_COLUMNS) == HEAD
    when = datetime(2024, 5, 1, tzinfo=UTC)
    row = plan.row(full_payload(), alice, "e-1", when, when, 1)
    same = plan.apply(full_payload(), alice, {"event_id": "e-1", "event_time": when, "received_at": when, "schema_version": 1})
    assert list(row) == list(same)
    assert {k: v for k, v in row.items() if k not in ("email", "phones", "context", "results", "birth_date")} == {
        k: v for k, v in same.items() if k not in ("email", "phones", "context", "results", "birth_date")
    }  # AES-GCM is randomised: those differ in ciphertext only


def test_row_reports_the_path_of_a_rejected_value(plan: Plan, alice: UserCrypto) -> None:
    payload = full_payload()
    payload["results"][0]["client_ip"] = "300.1.1.1"
    with pytest.raises(FieldRejected) as info:
        plan.row(payload, alice, "e-1", datetime.now(UTC), datetime.now(UTC), 1)
    assert info.value.path == "$.results[0].client_ip"
