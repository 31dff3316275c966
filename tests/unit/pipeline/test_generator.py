"""The synthetic traffic generator: deterministic, realistic, and every event's expected fate
is what the real collect and anonymize use cases do with it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dataplatform.compile.validator import compile_validator
from dataplatform.errors import PlatformError
from dataplatform.pipeline.generator import (
    EXPECTED,
    INVALID_KINDS,
    OVERSIZE_BYTES,
    UNKNOWN_EVENT_TYPE,
    EventGenerator,
    description_choices,
    PiiIndex,
    pii_values,
)
from dataplatform.privacy.policies import parse_rfc3339
from tests.unit.local.offline import OfflinePipeline

UTC = timezone.utc
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def generator(catalog: Any) -> EventGenerator:
    return EventGenerator(catalog.schemas, seed=3, users=200, invalid_share=0.2, duplicate_share=0.1, run_id="t1", now=NOW)


@pytest.fixture(scope="module")
def events(generator: EventGenerator) -> list[Any]:
    return generator.generate(1600)


def test_the_same_seed_and_run_give_the_same_events(catalog: Any) -> None:
    make = lambda seed: EventGenerator(catalog.schemas, seed=seed, run_id="r", now=NOW).generate(300)  # noqa: E731
    first, again, other = make(1), make(1), make(2)
    assert [e.event for e in first] == [e.event for e in again]
    assert [e.event for e in first] != [e.event for e in other]


def test_shares_of_invalid_events_and_duplicates(events: list[Any]) -> None:
    duplicates = [e for e in events if e.duplicate]
    distinct = [e for e in events if not e.duplicate]
    assert len(events) == 1600
    assert len(duplicates) == 160
    assert len({e.seq for e in distinct}) == len(distinct) == 1440
    kinds = Counter(e.kind for e in distinct)
    assert kinds["valid"] == 1440 - 288
    invalid = [kinds[k] for k in INVALID_KINDS]
    assert sum(invalid) == 288 and max(invalid) - min(invalid) <= 1, kinds


def test_duplicates_are_later_resends_of_the_same_event(events: list[Any]) -> None:
    first_position: dict[int, int] = {}
    for position, event in enumerate(events):
        if not event.duplicate:
            first_position[event.seq] = position
    for position, event in enumerate(events):
        if event.duplicate:
            original = events[first_position[event.seq]]
            assert first_position[event.seq] < position
            assert event.event is original.event and event.event_id == original.event_id


def test_event_ids_carry_the_run_prefix_and_are_unique(events: list[Any]) -> None:
    ids = {e.seq: e.event_id for e in events if e.event_id is not None}
    assert all(i.startswith("t1-") for i in ids.values())
    assert len(set(ids.values())) == len(ids)
    assert all(e.event_id is None for e in events if e.kind == "missing_event_id")


def test_valid_payloads_pass_their_compiled_validators(catalog: Any, events: list[Any]) -> None:
    validators = {s.name: compile_validator(s) for s in catalog.schemas}
    valid = [e for e in events if e.valid]
    for event in valid:
        validators[event.event_type].validate(event.event["payload"])
    assert {e.event_type for e in valid} == {s.name for s in catalog.schemas}


def test_values_are_consistent_within_an_event(events: list[Any]) -> None:
    for event in events:
        payload = event.event["payload"]
        if event.kind != "valid":
            continue
        if event.event_type == "track_played":
            assert payload["ms_played"] <= payload["track_duration_ms"]
            assert payload["skipped"] == (payload["ms_played"] < 30_000)
        if event.event_type == "search_performed":
            assert payload["query_length"] == len(payload["query"])
            if "clicked_position" in payload and "results" in payload:
                assert 1 <= payload["clicked_position"] <= len(payload["results"])
            for i, result in enumerate(payload.get("results", []), start=1):
                assert result["position"] == i
        event_time = parse_rfc3339(event.event["event_time"])
        assert event_time is not None and NOW - timedelta(hours=1, seconds=1) <= event_time <= NOW


def test_users_are_a_fixed_population_with_stable_personal_data(generator: EventGenerator, events: list[Any]) -> None:
    by_user: dict[str, set[str]] = {}
    for event in events:
        payload = event.event["payload"]
        if event.kind == "valid" and event.event_type == "user_registered":
            by_user.setdefault(payload["user_id"], set()).add(payload["email"])
    assert by_user and all(len(emails) == 1 for emails in by_user.values())
    population = {u.user_id for u in generator.population.users}
    assert len(population) == 200
    seen = {e.event["payload"]["user_id"] for e in events if e.kind == "valid"}
    assert seen <= population and len(seen) > 50


def test_ip_addresses_come_in_both_families(events: list[Any]) -> None:
    ips = {e.event["payload"].get("ip") or e.event["payload"].get("context", {}).get("ip") for e in events}
    ips.discard(None)
    assert any(":" in ip for ip in ips) and any("." in ip for ip in ips)


def test_each_invalid_kind_breaks_the_event_as_named(events: list[Any]) -> None:
    by_kind = {e.kind: e for e in events if not e.duplicate}
    assert by_kind["unknown_event_type"].event["event_type"] == UNKNOWN_EVENT_TYPE
    assert "event_id" not in by_kind["missing_event_id"].event
    assert parse_rfc3339(by_kind["bad_event_time"].event["event_time"]) is None
    assert parse_rfc3339(by_kind["clock_skew"].event["event_time"]) > NOW + timedelta(hours=2)
    assert parse_rfc3339(by_kind["too_late"].event["event_time"]) < NOW - timedelta(days=180)
    assert any(isinstance(v, str) and len(v) >= OVERSIZE_BYTES for v in by_kind["oversize"].event["payload"].values())


def test_every_event_ends_as_expected_in_the_real_collect_and_anonymize(
    catalog: Any, events: list[Any], tmp_path: Path
) -> None:
    pipeline = OfflinePipeline(catalog.schemas, tmp_path, NOW + timedelta(seconds=5))
    outcome = pipeline.run([[e.event for e in events[i : i + 400]] for i in range(0, len(events), 400)])

    actual: dict[int, set[str]] = {}
    seq_of = {e.event_id: e.seq for e in events if e.event_id is not None}
    for rows in outcome.clean.values():
        for row in rows:
            actual.setdefault(seq_of[row["event_id"]], set()).add("loaded")
    for failed in outcome.failed:
        if failed.event_id is not None:
            actual.setdefault(seq_of[failed.event_id], set()).add(failed.reason)
    for event, result in zip(events, outcome.results):
        if result["event_id"] is None:
            actual.setdefault(event.seq, set()).add(result["reason"])
        if event.stage == "collect":
            assert result["status"] == "rejected" and result["reason"] == event.reason, (event.kind, result)
        else:
            assert result["status"] == "accepted", (event.kind, result)
    for event in events:
        expected = "loaded" if event.valid else event.reason
        assert actual[event.seq] == {expected}, (event.kind, event.event_type, actual[event.seq])
    assert {EXPECTED[k][0] for k in INVALID_KINDS} == {
        "schema_violation", "unknown_event_type", "invalid_envelope", "clock_skew", "too_late", "too_large",
    }


def test_pii_values_are_the_fields_with_a_privacy_policy(catalog: Any, events: list[Any]) -> None:
    registered = next(e for e in events if e.kind == "valid" and e.event_type == "user_registered")
    payload = registered.event["payload"]
    assert ("user_id", payload["user_id"]) in registered.pii and ("email", payload["email"]) in registered.pii
    assert all(path != "country" for path, _ in registered.pii)
    played = next(e for e in events if e.kind == "valid" and e.event_type == "track_played")
    assert ("context.device.id", played.event["payload"]["context"]["device"]["id"]) in played.pii
    values = pii_values(events)
    assert payload["email"] in values
    searches = [e for e in events if e.kind == "valid" and e.event_type == "search_performed"]
    assert all(e.event["payload"]["query"] in values for e in searches)


def test_pii_index_finds_long_values_anywhere_and_short_ones_in_their_column(events: list[Any]) -> None:
    event = next(e for e in events if e.kind == "valid" and e.event_type == "subscription_changed" and
                 "card_last4" in e.event["payload"].get("payment", {}))
    index = PiiIndex(events)
    user_id = event.event["payload"]["user_id"]
    last4 = event.event["payload"]["payment"]["card_last4"]
    assert index.in_text("anything", f"to {user_id}!") == user_id
    assert index.in_bytes(b"..." + user_id.encode() + b"...") == user_id
    assert index.in_text("payment.card_last4", last4) == last4
    assert index.in_text("message_id", last4) is None
    assert index.in_text("payment.card_last4", f"x{last4}") is None
    assert index.in_text("anything", "nothing personal") is None and index.in_bytes(b"\x00\x01") is None
    assert len(index) >= len(pii_values(events)) - 1


@pytest.mark.parametrize(
    ("description", "choices"),
    [
        ("Operating system (android, ios, web, windows, macos).", ("android", "ios", "web", "windows", "macos")),
        ("audio, display or video.", ("audio", "display", "video")),
        ("Why playback started (clickrow, trackdone, fwdbtn).", ("clickrow", "trackdone", "fwdbtn")),
        ("Gender given at sign-up (female, male, non_binary, not_specified).", ("female", "male", "non_binary", "not_specified")),
        ("Id of the playlist, album, artist or radio station.", ()),
        ("Version of the app, e.g. 8.9.12.", ()),
    ],
)
def test_enumerations_are_read_from_descriptions(description: str, choices: tuple[str, ...]) -> None:
    assert description_choices(description) == choices


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"invalid_share": 1.0}, "invalid_share must be at least 0 and below 1"),
        ({"duplicate_share": -0.1}, "duplicate_share must be at least 0 and below 1"),
        ({"run_id": "has space"}, "run_id 'has space' must be 1 to 40 letters"),
        ({"users": 1}, "needs at least 2 users"),
    ],
)
def test_bad_parameters_are_named(catalog: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        EventGenerator(catalog.schemas, **kwargs)


def test_no_schemas_and_negative_counts_are_refused(catalog: Any) -> None:
    with pytest.raises(PlatformError, match="at least one event schema"):
        EventGenerator(())
    with pytest.raises(PlatformError, match="negative number"):
        EventGenerator(catalog.schemas).generate(-1)
