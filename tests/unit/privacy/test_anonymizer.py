"""The anonymize use case: one failed event per kind of bad input (typed reason, path, no
values), the accounting identity, one key lookup per batch, erased users, transient errors.

Real key hierarchy (local Tink KMS, PlatformKeys, KeyService); only the key store and the
config bucket are in-memory fakes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from dataplatform.compile.bigquery_schema import FAILED_EVENT_COLUMNS, event_table
from dataplatform.errors import PlatformError, TransientError
from dataplatform.pipeline import raw_batch
from dataplatform.pipeline.failed_events import FailedEvent, format_timestamp
from dataplatform.ports import Message
from dataplatform.privacy.anonymizer import AnonymizeResult, Anonymizer, Limits, timestamp_micros
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import PlatformKeys
from dataplatform.privacy.policies import ERASED_PSEUDONYM
from tests.fakes import DEFAULT_NOW, ManualClock, MemoryKeyStore
from tests.fixtures.privacy.keys import platform_keys
from tests.fixtures.privacy.schemas import load_all

UTC = timezone.utc
NOW = DEFAULT_NOW  # 2024-05-01T12:00:00Z
PII = ("alice@example.com", "alice-secret-query", "203.0.113.77", "dev-alice-123456", "hunter2hunter2")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform_keys(tmp_path_factory.mktemp("platform"))


class CountingKeys:
    """The real KeyService, with its `resolve` calls recorded."""

    def __init__(self, service: KeyService) -> None:
        self.service = service
        self.calls: list[set[str]] = []

    def resolve(self, user_ids: Any) -> Any:
        ids = set(user_ids)
        self.calls.append(ids)
        return self.service.resolve(ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)


class Setup:
    def __init__(self, platform: PlatformKeys, limits: Limits | None = None) -> None:
        self.platform = platform
        self.clock = ManualClock(NOW)
        self.store = MemoryKeyStore()
        self.service = KeyService(self.store, platform, self.clock)
        self.keys = CountingKeys(self.service)
        self.anonymizer = Anonymizer(load_all(), self.keys, platform, self.clock, limits)

    def run(self, *messages: Message) -> AnonymizeResult:
        result = self.anonymizer.anonymize(list(messages))
        assert result.counts.balanced, result.counts
        return result


@pytest.fixture
def setup(platform: PlatformKeys) -> Setup:
    return Setup(platform)


def ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def payload(user: str = "alice", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": user,
        "email": f"{user}@example.com",
        "search_query": f"{user}-secret-query",
        "session_id": "s-1",
        "password": "hunter2hunter2",
        "context": {"ip": "203.0.113.77", "device": {"device_id": f"dev-{user}-123456", "os": "ios"}},
        "hops": ["198.51.100.7"],
    }
    body.update(changes)
    return body


def event(event_id: str = "e-1", body: Any = None, **envelope: Any) -> dict[str, Any]:
    out = {
        "event_id": event_id,
        "event_type": "profile_probe",
        "schema_version": 1,
        "event_time": ts(NOW - timedelta(minutes=5)),
        "payload": payload() if body is None else body,
    }
    out.update(envelope)
    return out


def message(*events: Any, received_at: datetime = NOW) -> Message:
    return Message(
        orjson.dumps({"received_at": ts(received_at), "events": list(events)}),
        {"event_type": "profile_probe_v1", "batch_id": "b-1"},
    )


def only_failure(result: AnonymizeResult) -> FailedEvent:
    assert result.counts.clean == 0 and len(result.failed) == 1, result
    return result.failed[0]


def assert_no_pii(failed: FailedEvent) -> None:
    text = failed.detail + repr({k: v for k, v in failed.to_record().items() if k != "payload_ciphertext"})
    for value in PII:
        assert value not in text


# --------------------------------------------------------------------------- clean rows


def test_clean_rows_have_the_table_columns_and_times(setup: Setup) -> None:
    result = setup.run(message(event("e-1"), event("e-2", payload("bob"))))
    rows = result.rows["profile_probe_v1"]
    assert [r["event_id"] for r in rows] == ["e-1", "e-2"]
    expected = [f.name for f in event_table(load_all()[0]).fields][:-4]
    assert all(list(row) == expected for row in rows)
    first = rows[0]
    assert first["event_time"] == NOW - timedelta(minutes=5) and first["event_time"].tzinfo is UTC
    assert first["received_at"] == NOW and first["schema_version"] == 1
    assert first["context"]["ip"] == "203.0.113.0" and "password" not in first
    assert result.counts.received == result.counts.clean == 2 and result.counts.failed == {}
    assert result.counts.minted_users == 2 and result.counts.erased_users == 0


def test_encrypted_fields_decrypt_with_the_users_key(setup: Setup) -> None:
    row = setup.run(message(event())).rows["profile_probe_v1"][0]
    alice = setup.service.resolve(["alice"])["alice"]
    assert alice is not None and row["user_pseudonym"] == alice.pseudonym
    assert alice.aead.decrypt(row["email"], b"email") == b"alice@example.com"
    assert row["search_query"] == setup.platform.keyed_hash("alice-secret-query")


def test_rows_are_split_by_event_table(setup: Setup) -> None:
    nested = event("n-1", {"account": {"id": "alice", "email": "a@example.com"}}, event_type="account_nested", schema_version=2)
    ping = event("p-1", {"install_id": "i-1", "ip": "192.0.2.9"}, event_type="anonymous_ping")
    result = setup.run(message(event("e-1"), nested, ping))
    assert {k: [r["event_id"] for r in v] for k, v in result.rows.items()} == {
        "profile_probe_v1": ["e-1"],
        "account_nested_v2": ["n-1"],
        "anonymous_ping_v1": ["p-1"],
    }
    # the nested subject is the same person as the top-level one: same pseudonym
    assert result.rows["account_nested_v2"][0]["account"]["user_pseudonym"] == result.rows["profile_probe_v1"][0]["user_pseudonym"]


def test_the_example_catalog_is_accepted(catalog: Any, platform: PlatformKeys) -> None:
    clock = ManualClock(NOW)
    anonymizer = Anonymizer(catalog, KeyService(MemoryKeyStore(), platform, clock), platform, clock)
    body = {"user_id": "alice", "playlist_id": "p-1", "action": "create"}
    result = anonymizer.anonymize([message(event("e-1", body, event_type="playlist_modified"), event("e-2", body, event_type="playlist_modifed"))])
    assert [r["event_id"] for r in result.rows["playlist_modified_v1"]] == ["e-1"]
    (failed,) = result.failed
    assert "did you mean 'playlist_modified'?" in failed.detail


def test_one_resolve_call_per_batch_for_distinct_users(setup: Setup) -> None:
    messages = [message(*(event(f"e-{m}-{i}", payload(f"user-{i % 3}")) for i in range(10))) for m in range(4)]
    result = setup.run(*messages)
    assert result.counts.clean == 40
    assert setup.keys.calls == [{"user-0", "user-1", "user-2"}]
    assert len(setup.store.get_many_calls) == 1


def test_batch_without_subjects_does_not_touch_keys(setup: Setup) -> None:
    ping = event("p-1", {"install_id": "i-1"}, event_type="anonymous_ping")
    result = setup.run(message(ping), message(event("bad", payload(session_id=3))))
    assert result.counts.clean == 1 and setup.keys.calls == [] and setup.store.get_many_calls == []


def test_timestamp_micros() -> None:
    assert timestamp_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005
    assert timestamp_micros(NOW) == int(NOW.timestamp()) * 1_000_000


# --------------------------------------------------------------------------- failures, one per reason


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"\x00not json at all", "the message is not JSON"),
        (b'[{"event_id": "e"}]', "not an object"),
        (b'{"events": []}', "missing received_at"),
        (b'{"received_at": "2024-05-01T12:00:00Z", "events": {}}', "events must be an array"),
        (b'{"received_at": "yesterday", "events": []}', "received_at must be an RFC 3339 timestamp"),
        (b'{"received_at": "2024-05-01T12:00:00Z", "events": [], "x": 1}', "1 unknown key(s)"),
    ],
)
def test_invalid_json_quarantines_the_whole_message(setup: Setup, data: bytes, detail: str) -> None:
    failed = only_failure(setup.run(Message(data, {})))
    assert failed.reason == "invalid_json" and detail in failed.detail
    assert failed.event_id is None and failed.stage == "anonymize"
    assert failed.received_at == NOW and failed.failed_at == NOW
    assert failed.quarantine_expires_at == NOW + timedelta(days=30)
    assert failed.payload_ciphertext is not None
    assert setup.platform.quarantine_decrypt(failed.payload_ciphertext, "") == data


def test_a_compressed_batch_is_read_and_a_corrupt_one_quarantined_whole(setup: Setup) -> None:
    data, attributes = raw_batch.encode(ts(NOW), [event("z-1")])
    assert setup.run(Message(data, attributes)).counts.clean == 1
    corrupt = data[: len(data) // 2]
    failed = only_failure(setup.run(Message(corrupt, attributes)))
    assert failed.reason == "invalid_json" and "zstd" in failed.detail and failed.event_id is None
    assert setup.platform.quarantine_decrypt(failed.payload_ciphertext, "") == corrupt


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        ("a string", "$: an event must be a JSON object"),
        ({k: v for k, v in event().items() if k != "event_id"}, "$.event_id: required envelope field is missing"),
        ({k: v for k, v in event().items() if k != "payload"}, "$.payload: required envelope field is missing"),
        (event(event_id=""), "$.event_id: must be 1 to 128 characters"),
        (event(event_id="x" * 129), "$.event_id: must be 1 to 128 characters"),
        (event(event_id=7), "$.event_id: expected a string"),
        (event(schema_version="1"), "$.schema_version: expected an integer"),
        (event(schema_version=True), "$.schema_version: expected an integer"),
        (event(payload=[1]), "$.payload: expected an object"),
        (event(event_time="2024-05-01"), "$.event_time: not an RFC 3339 timestamp"),
        (event(event_time="2024-05-01T12:00:00"), "$.event_time: not an RFC 3339 timestamp"),
        (event(client="web"), "$: unknown envelope field(s) ('client')"),
    ],
)
def test_invalid_envelope(setup: Setup, bad: Any, detail: str) -> None:
    failed = only_failure(setup.run(message(bad)))
    assert failed.reason == "invalid_envelope"
    assert failed.detail.startswith(detail), failed.detail
    assert_no_pii(failed)


def test_invalid_envelope_keeps_what_identity_it_can(setup: Setup, platform: PlatformKeys) -> None:
    bad = event("e-77", event_time="soon")
    failed = only_failure(setup.run(message(bad)))
    assert (failed.event_id, failed.event_type, failed.schema_version, failed.event_time) == ("e-77", "profile_probe", 1, None)
    assert failed.payload_ciphertext is not None
    assert orjson.loads(platform.quarantine_decrypt(failed.payload_ciphertext, "e-77")) == bad


def test_unknown_event_type_suggests_the_closest_name(setup: Setup) -> None:
    failed = only_failure(setup.run(message(event(event_type="profile_prob"))))
    assert failed.reason == "unknown_event_type"
    assert failed.detail == "unknown event type 'profile_prob' (did you mean 'profile_probe'?); the catalog has no schema of that name"


def test_unknown_major_version_lists_the_known_ones(setup: Setup) -> None:
    failed = only_failure(setup.run(message(event(schema_version=4))))
    assert failed.reason == "unknown_event_type" and failed.schema_version == 4
    assert failed.detail == "event type 'profile_probe' has no major version 4; known versions: 1"


def test_unknown_event_type_does_not_echo_odd_names(setup: Setup) -> None:
    failed = only_failure(setup.run(message(event(event_type="alice@example.com"))))
    assert "alice@example.com" not in failed.detail and failed.event_type is None


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({k: v for k, v in payload().items() if k != "session_id"}, "$.session_id: required field is missing"),
        (payload(email=12), "$.email: expected a string, got an integer"),
        (payload(nickname="al"), "$.nickname: unknown field"),
        (payload(context={"ip": "1.2.3.4", "device": {"device_id": 5}}), "$.context.device.device_id: expected a string"),
        (payload(context={"ip": "alice@example.com", "device": {"device_id": "d"}}), "$.context.ip: not an IP address"),
        (payload(hops=["198.51.100.1", "hunter2hunter2"]), "$.hops[1]: not an IP address"),
        (payload(user_id=""), "$.user_id: the data subject's id (privacy: user_id) is empty"),
    ],
)
def test_schema_violation_names_the_path_never_the_value(setup: Setup, body: dict[str, Any], detail: str) -> None:
    failed = only_failure(setup.run(message(event("e-9", body))))
    assert failed.reason == "schema_violation" and failed.detail.startswith(detail), failed.detail
    assert failed.event_id == "e-9" and failed.event_time == NOW - timedelta(minutes=5)
    assert_no_pii(failed)


def test_too_large(platform: PlatformKeys) -> None:
    setup = Setup(platform, Limits(max_event_bytes=2_000))
    big = event("big", payload(tags=["x" * 3_000]))
    result = setup.run(message(event("small"), big))
    assert [r["event_id"] for r in result.rows["profile_probe_v1"]] == ["small"]
    (failed,) = result.failed
    assert failed.reason == "too_large" and failed.event_id == "big"
    assert failed.detail == f"the event is {len(orjson.dumps(big))} bytes of JSON; the limit is 2000"


def test_small_messages_skip_the_size_check(platform: PlatformKeys) -> None:
    setup = Setup(platform, Limits(max_event_bytes=10_000))
    assert setup.run(message(event())).counts.clean == 1


def test_clock_skew(setup: Setup) -> None:
    skewed = event("ahead", event_time=ts(NOW + timedelta(minutes=11)))
    fine = event("fine", event_time=ts(NOW + timedelta(minutes=9)))
    result = setup.run(message(skewed, fine))
    assert [r["event_id"] for r in result.rows["profile_probe_v1"]] == ["fine"]
    (failed,) = result.failed
    assert failed.reason == "clock_skew" and failed.event_time == NOW + timedelta(minutes=11)
    assert failed.detail.startswith("$.event_time: 11 minutes after the batch was received; at most 10 minutes")


def test_clock_skew_is_measured_from_received_at(setup: Setup) -> None:
    # received an hour ago, happened 30 minutes ago: in the future of its batch
    result = setup.run(message(event(event_time=ts(NOW - timedelta(minutes=30))), received_at=NOW - timedelta(hours=1)))
    assert only_failure(result).reason == "clock_skew"


def test_too_late_when_the_partition_has_expired(setup: Setup) -> None:
    # retention 30 days, DAY partitions, now 2024-05-01T12:00Z: the partition of 2024-04-01
    # expires at 2024-05-01T00:00Z (already), the one of 2024-04-02 at 2024-05-02T00:00Z.
    expired = event("expired", event_time="2024-04-01T23:59:59Z")
    kept = event("kept", event_time="2024-04-02T00:00:00Z")
    result = setup.run(message(expired, kept, received_at=NOW))
    assert [r["event_id"] for r in result.rows["profile_probe_v1"]] == ["kept"]
    (failed,) = result.failed
    assert failed.reason == "too_late" and failed.event_id == "expired"
    assert "partition of events.profile_probe_v1 has expired (retention_days 30)" in failed.detail


def test_too_late_with_hourly_partitions(setup: Setup) -> None:
    # account_nested: retention 7 days, HOUR partitions
    cutoff = NOW - timedelta(days=7)
    body = {"account": {"id": "alice"}}
    expired = event("x", body, event_type="account_nested", schema_version=2, event_time=ts(cutoff - timedelta(seconds=1)))
    kept = event("k", body, event_type="account_nested", schema_version=2, event_time=ts(cutoff))
    result = setup.run(message(expired, kept))
    assert [r["event_id"] for r in result.rows["account_nested_v2"]] == ["k"]
    assert [f.event_id for f in result.failed] == ["x"]


def test_too_late_by_max_event_age(platform: PlatformKeys) -> None:
    setup = Setup(platform, Limits(max_event_age=timedelta(days=1)))
    old = event("old", event_time=ts(NOW - timedelta(days=2)))
    failed = only_failure(setup.run(message(old)))
    assert failed.reason == "too_late"
    assert failed.detail == "$.event_time: 2 days old on arrival; events older than 24 hours are not accepted"


# --------------------------------------------------------------------------- accounting


def test_every_event_ends_as_exactly_one_row_or_failure(platform: PlatformKeys) -> None:
    setup = Setup(platform, Limits(max_event_bytes=5_000))
    events = [
        event("ok-1"),
        event("ok-2", payload("bob")),
        event("large", payload(tags=["x" * 6_000])),
        event(event_id=""),
        event("type", event_type="nope"),
        event("skew", event_time=ts(NOW + timedelta(hours=1))),
        event("late", event_time=ts(NOW - timedelta(days=90))),
        event("schema", payload(count="three")),
        event("ip", payload(hops=["nope"])),
        "not an event",
    ]
    result = setup.run(message(*events), Message(b"garbage", {}), message())
    counts = result.counts
    assert counts.received == len(events) + 1
    assert counts.clean == 2 and counts.failed_total == len(events) - 1
    assert counts.failed == {
        "too_large": 1,
        "invalid_envelope": 2,
        "unknown_event_type": 1,
        "clock_skew": 1,
        "too_late": 1,
        "schema_violation": 2,
        "invalid_json": 1,
    }
    ids = [r["event_id"] for rows in result.rows.values() for r in rows] + [f.event_id for f in result.failed]
    assert sorted(i for i in ids if i) == sorted(["ok-1", "ok-2", "large", "type", "skew", "late", "schema", "ip"])
    for failed in result.failed:
        assert_no_pii(failed)
        assert failed.payload_ciphertext is not None


def test_failed_payload_is_the_original_event_under_the_quarantine_key(setup: Setup, platform: PlatformKeys) -> None:
    bad = event("e-5", payload(count="three"))
    failed = only_failure(setup.run(message(bad)))
    assert failed.payload_ciphertext is not None and b"alice@example.com" not in failed.payload_ciphertext
    assert orjson.loads(platform.quarantine_decrypt(failed.payload_ciphertext, "e-5")) == bad
    with pytest.raises(PlatformError):
        platform.quarantine_decrypt(failed.payload_ciphertext, "another-event")


# --------------------------------------------------------------------------- erasure


def test_events_of_an_erased_user_keep_no_pii_and_mint_no_key(setup: Setup) -> None:
    setup.run(message(event("before")))
    assert setup.service.forget("alice")
    creates = list(setup.store.create_calls)

    result = setup.run(message(event("after"), event("bob", payload("bob"))))
    alice_row, bob_row = result.rows["profile_probe_v1"]
    assert alice_row["user_pseudonym"] == ERASED_PSEUDONYM
    assert alice_row["email"] is None and alice_row["context"]["device"]["device_id"] is None
    assert alice_row["search_query"] == setup.platform.keyed_hash("alice-secret-query")  # hash still applies
    assert alice_row["context"]["ip"] == "203.0.113.0"
    assert bob_row["email"] is not None and bob_row["user_pseudonym"] != ERASED_PSEUDONYM
    counts = result.counts
    assert counts.erased_fields == 2 and counts.erased_users == 1 and counts.minted_users == 1
    assert [c for c in setup.store.create_calls if c not in creates] == [setup.platform.record_id("bob")]
    assert setup.store.all()[setup.platform.record_id("alice")].erased


def test_erased_fields_of_a_failed_event_are_not_counted(setup: Setup) -> None:
    setup.service.forget("alice")
    result = setup.run(message(event("ip", payload(hops=["bad"]))))
    assert result.counts.failed == {"schema_violation": 1} and result.counts.erased_fields == 0


# --------------------------------------------------------------------------- errors that must propagate


class FailingStore(MemoryKeyStore):
    def get_many(self, record_ids: Any) -> Any:
        raise TransientError("key store unavailable (test)")


def test_transient_key_service_errors_propagate(platform: PlatformKeys) -> None:
    setup = Setup(platform)
    setup.service = KeyService(FailingStore(), platform, setup.clock)
    anonymizer = Anonymizer(load_all(), setup.service, platform, setup.clock)
    with pytest.raises(TransientError):
        anonymizer.anonymize([message(event())])


def test_bugs_are_not_swallowed(platform: PlatformKeys) -> None:
    class Broken:
        minted = 0

        def resolve(self, user_ids: Any) -> Any:
            raise ZeroDivisionError("a bug")

    anonymizer = Anonymizer(load_all(), Broken(), platform, ManualClock(NOW))
    with pytest.raises(ZeroDivisionError):
        anonymizer.anonymize([message(event())])


# --------------------------------------------------------------------------- the failed-event record


def failed_event(**changes: Any) -> FailedEvent:
    values: dict[str, Any] = dict(
        reason="schema_violation",
        detail="$.email: expected a string",
        stage="anonymize",
        received_at=NOW,
        failed_at=NOW + timedelta(seconds=2),
        event_id="e-1",
        event_type="profile_probe",
        schema_version=1,
        event_time=NOW - timedelta(minutes=1),
        payload_ciphertext=b"\x01\x00\xffbytes",
    )
    values.update(changes)
    return FailedEvent.create(**values)


def test_failed_event_record_matches_the_table_columns() -> None:
    record = failed_event().to_record()
    assert list(record) == [c.name for c in FAILED_EVENT_COLUMNS]
    assert record["payload_ciphertext"] == b"\x01\x00\xffbytes"
    assert record["quarantine_expires_at"] == NOW + timedelta(days=30, seconds=2)


@pytest.mark.parametrize("changes", [{}, {"event_id": None, "event_type": None, "schema_version": None, "event_time": None, "payload_ciphertext": None}])
def test_failed_event_json_round_trip(changes: dict[str, Any]) -> None:
    original = failed_event(**changes)
    data = original.to_json_bytes()
    decoded = orjson.loads(data)
    assert decoded["failed_at"] == "2024-05-01T12:00:02.000000Z" == format_timestamp(original.failed_at)
    if original.payload_ciphertext is not None:
        assert decoded["payload_ciphertext"] == "AQD/Ynl0ZXM="
    assert FailedEvent.from_json_bytes(data) == original


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"reason": "too_large"}', "wrong keys: missing event_id"),
    ],
)
def test_failed_event_from_bad_json(data: bytes, message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        FailedEvent.from_json_bytes(data)


def test_failed_event_from_json_rejects_bad_values() -> None:
    record = orjson.loads(failed_event().to_json_bytes())
    for key, value, message in [
        ("failed_at", "noon", "failed_at is not an RFC 3339 timestamp"),
        ("payload_ciphertext", "***", "payload_ciphertext is not base64"),
        ("payload_ciphertext", "YWJj\u00e9", "payload_ciphertext is not base64"),
        ("payload_ciphertext", "YQ", "payload_ciphertext is not base64"),
        ("schema_version", "1", "schema_version must be an integer or null"),
        ("reason", "bad_vibes", "unknown failed-event reason 'bad_vibes'"),
        ("stage", "warehouse", "unknown failed-event stage 'warehouse'"),
        ("detail", None, "detail must be str"),
    ]:
        with pytest.raises(PlatformError, match=message):
            FailedEvent.from_json_bytes(orjson.dumps(record | {key: value}))


def test_failed_event_needs_aware_times() -> None:
    with pytest.raises(PlatformError, match="received_at must be timezone-aware"):
        failed_event(received_at=datetime(2024, 5, 1, 12))
