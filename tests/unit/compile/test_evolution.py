"""Schema evolution: one test per class of compatible and of breaking change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dataplatform.compile import evolution as ev
from dataplatform.compile.evolution import (
    PRIVACY_STRENGTH,
    Change,
    diff_catalogs,
    diff_schemas,
    field_columns,
)
from dataplatform.definitions.models import PRIVACY_POLICIES, EventSchema, FieldDef


def fd(name: str, type: str = "STRING", **kw: Any) -> FieldDef:
    kw.setdefault("description", f"The {name}.")
    return FieldDef(name=name, type=type, **kw)


def base_fields() -> list[FieldDef]:
    return [
        fd("user_id", required=True, privacy="user_id"),
        fd("track_id", required=True),
        fd("ms_played", "INT64"),
        fd("email", privacy="hash"),
        fd(
            "context",
            "RECORD",
            fields=(fd("ip", privacy="truncate_ip"), fd("os"), fd("lat", "FLOAT64", privacy="encrypt_deterministic")),
        ),
        fd("tags", repeated=True),
    ]


def schema(fields: list[FieldDef] | None = None, **overrides: Any) -> EventSchema:
    data: dict[str, Any] = {
        "name": "track_played",
        "version": 1,
        "owner": "team-playback",
        "domain": "playback",
        "description": "A play of a track.",
        "retention_days": 30,
        "readers": ("group:analysts@example.com",),
        "fields": tuple(fields if fields is not None else base_fields()),
    }
    data.update(overrides)
    return EventSchema(**data)


def with_field(target: str, /, **changes: Any) -> EventSchema:
    """The base schema with top-level field `target` changed (`remove=True` removes it)."""
    fields = []
    for f in base_fields():
        if f.name == target:
            if changes.get("remove"):
                continue
            f = FieldDef(**{**f.model_dump(), **changes})
        fields.append(f)
    return schema(fields)


def with_nested(target: str, /, **changes: Any) -> EventSchema:
    """The base schema with `context.<target>` changed."""
    fields = base_fields()
    context = fields[4]
    nested = tuple(FieldDef(**{**f.model_dump(), **changes}) if f.name == target else f for f in context.fields)
    fields[4] = FieldDef(**{**context.model_dump(), "fields": nested})
    return schema(fields)


def only(changes: list[Change]) -> Change:
    assert len(changes) == 1, changes
    return changes[0]


def test_identical_schemas_have_no_changes() -> None:
    assert diff_schemas(schema(), schema()) == []
    report = diff_catalogs({"track_played_v1": schema()}, [schema()])
    assert report.changes == () and report.exit_code == 0


# --------------------------------------------------------------------------- compatible


def test_new_event_type_is_compatible() -> None:
    new = schema(name="track_liked")
    change = only(list(diff_catalogs({}, [new]).changes))
    assert (change.key, change.kind, change.compatibility) == ("track_liked_v1", ev.EVENT_ADDED, "compatible")
    assert "track_liked_v1-raw" in change.why
    assert only(diff_schemas(None, new)).kind == ev.EVENT_ADDED


def test_new_major_version_beside_the_old_one_is_compatible() -> None:
    v2 = schema(version=2, fields=[*base_fields()[:2], fd("ms_played", "FLOAT64")])
    report = diff_catalogs([schema()], [schema(), v2])
    change = only(list(report.changes))
    assert (change.key, change.kind, change.compatibility) == ("track_played_v2", ev.MAJOR_VERSION_ADDED, "compatible")
    assert "track_played_v1" in change.what
    assert report.exit_code == 0


def test_new_optional_field_is_compatible() -> None:
    new = schema([*base_fields(), fd("shuffle", "BOOL")])
    change = only(diff_schemas(schema(), new))
    assert (change.path, change.kind, change.compatibility) == ("shuffle", ev.FIELD_ADDED, "compatible")


def test_new_optional_field_inside_a_record_is_compatible() -> None:
    fields = base_fields()
    fields[4] = FieldDef(**{**fields[4].model_dump(), "fields": (*fields[4].fields, fd("country"))})
    change = only(diff_schemas(schema(), schema(fields)))
    assert (change.path, change.kind, change.compatibility) == ("context.country", ev.FIELD_ADDED, "compatible")


def test_new_optional_record_with_required_subfields_is_one_compatible_change() -> None:
    record = fd("device", "RECORD", fields=(fd("id", required=True),))
    change = only(diff_schemas(schema(), schema([*base_fields(), record])))
    assert (change.path, change.kind, change.compatibility) == ("device", ev.FIELD_ADDED, "compatible")


def test_event_description_change_is_compatible() -> None:
    change = only(diff_schemas(schema(), schema(description="Another text.")))
    assert (change.path, change.kind, change.compatibility) == (None, ev.DESCRIPTION_CHANGED, "compatible")


def test_field_description_change_is_compatible() -> None:
    change = only(diff_schemas(schema(), with_nested("os", description="Operating system.")))
    assert (change.path, change.kind, change.compatibility) == ("context.os", ev.DESCRIPTION_CHANGED, "compatible")


@pytest.mark.parametrize(
    ("overrides", "kind", "impact"),
    [
        ({"owner": "team-data"}, ev.OWNER_CHANGED, "alerts go to the new team"),
        ({"domain": "catalog"}, ev.DOMAIN_CHANGED, "label"),
        ({"readers": ("group:other@example.com",)}, ev.READERS_CHANGED, "removed readers lose access"),
        ({"retention_days": 7}, ev.RETENTION_CHANGED, "older than 7 days are deleted"),
        ({"retention_days": 90}, ev.RETENTION_CHANGED, "kept longer"),
        ({"allowed_lateness": timedelta(minutes=30)}, ev.LATENESS_CHANGED, "rejected as too_late"),
        ({"allowed_lateness": timedelta(days=3)}, ev.LATENESS_CHANGED, "accepted"),
        ({"clustering": ("track_id",)}, ev.CLUSTERING_CHANGED, "newly written data"),
    ],
)
def test_operational_changes_are_compatible_and_say_their_impact(overrides: dict, kind: str, impact: str) -> None:
    change = only(diff_schemas(schema(), schema(**overrides)))
    assert (change.path, change.kind, change.compatibility) == (None, kind, "compatible")
    assert impact in change.why


def test_readers_change_names_added_and_removed_members() -> None:
    new = schema(readers=("group:analysts@example.com", "group:new@example.com"))
    change = only(diff_schemas(schema(), new))
    assert "added group:new@example.com" in change.what
    assert "lose access" not in change.why


def test_required_to_optional_is_compatible_but_warns_readers() -> None:
    change = only(diff_schemas(schema(), with_field("track_id", required=False)))
    assert (change.path, change.kind, change.compatibility) == ("track_id", ev.MADE_OPTIONAL, "compatible")
    assert "expect NULL" in change.why


@pytest.mark.parametrize(
    ("field", "nested", "before", "after"),
    [
        ("ms_played", False, "none", "drop"),  # optional field: the column stays, NULL from now on
        ("email", False, "hash", "drop"),
        ("track_id", False, "none", "hash"),  # STRING stays STRING (hex)
        ("ip", True, "truncate_ip", "hash"),
        ("os", True, "none", "truncate_ip"),
        ("lat", True, "encrypt_deterministic", "encrypt"),  # BYTES stays BYTES
    ],
)
def test_privacy_strengthened_in_the_same_column_type_is_compatible(field: str, nested: bool, before: str, after: str) -> None:
    new = with_nested(field, privacy=after) if nested else with_field(field, privacy=after)
    change = only(diff_schemas(schema(), new))
    assert change.kind == ev.PRIVACY_STRENGTHENED and change.compatibility == "compatible"
    assert change.what == f"privacy strengthened {before} → {after}"


# --------------------------------------------------------------------------- breaking


def test_removed_event_type_is_breaking_without_bump() -> None:
    report = diff_catalogs([schema()], [])
    change = only(list(report.changes))
    assert (change.kind, change.compatibility) == (ev.EVENT_REMOVED, "breaking")
    assert "track_played_v1-raw" in change.why
    assert report.breaking_without_bump == (change,) and report.exit_code == 1


def test_removing_an_old_major_version_after_a_bump_is_reported_but_allowed() -> None:
    v2 = schema(version=2)
    report = diff_catalogs([schema(), v2], [v2])
    change = only(list(report.changes))
    assert (change.kind, change.compatibility) == (ev.EVENT_RETIRED, "breaking")
    assert "track_played_v2" in change.what
    assert report.breaking_without_bump == () and report.exit_code == 0


def test_new_required_field_is_breaking() -> None:
    change = only(diff_schemas(schema(), schema([*base_fields(), fd("skipped", "BOOL", required=True)])))
    assert (change.path, change.kind, change.compatibility) == ("skipped", ev.REQUIRED_FIELD_ADDED, "breaking")


def test_removed_field_is_breaking() -> None:
    change = only(diff_schemas(schema(), with_field("ms_played", remove=True)))
    assert (change.path, change.kind, change.compatibility) == ("ms_played", ev.FIELD_REMOVED, "breaking")


def test_removed_nested_field_is_breaking() -> None:
    fields = base_fields()
    fields[4] = FieldDef(**{**fields[4].model_dump(), "fields": fields[4].fields[1:]})
    changes = diff_schemas(schema(), schema(fields))
    assert [(c.path, c.kind) for c in changes] == [("context.ip", ev.FIELD_REMOVED)]


def test_same_type_at_the_same_position_is_a_rename() -> None:
    change = only(diff_schemas(schema(), with_field("track_id", name="track")))
    assert (change.path, change.kind, change.compatibility) == ("track_id", ev.FIELD_RENAMED, "breaking")
    assert change.what == "renamed track_id → track"


def test_nested_rename_is_detected() -> None:
    change = only(diff_schemas(schema(), with_nested("os", name="platform")))
    assert (change.path, change.kind, change.what) == ("context.os", ev.FIELD_RENAMED, "renamed os → platform")


def test_rename_with_other_changes_reports_them_too() -> None:
    changes = diff_schemas(schema(), with_field("email", name="email_address", privacy="none"))
    assert [(c.path, c.kind) for c in changes] == [
        ("email", ev.FIELD_RENAMED),
        ("email_address", ev.PRIVACY_WEAKENED),
    ]


def test_different_type_at_the_same_position_is_remove_plus_add() -> None:
    changes = diff_schemas(schema(), with_field("ms_played", name="seconds_played", type="FLOAT64"))
    assert [(c.path, c.kind, c.compatibility) for c in changes] == [
        ("ms_played", ev.FIELD_REMOVED, "breaking"),
        ("seconds_played", ev.FIELD_ADDED, "compatible"),
    ]


def test_type_change_is_breaking() -> None:
    change = only(diff_schemas(schema(), with_nested("os", type="INT64")))
    assert (change.path, change.kind, change.compatibility) == ("context.os", ev.TYPE_CHANGED, "breaking")
    assert change.what == "type changed STRING → INT64"
    assert str(change).startswith("track_played_v1: field 'context.os': type changed STRING → INT64 — breaking: ")


def test_optional_to_required_is_breaking() -> None:
    change = only(diff_schemas(schema(), with_field("ms_played", required=True)))
    assert (change.path, change.kind, change.compatibility) == ("ms_played", ev.MADE_REQUIRED, "breaking")
    assert change.what == "optional → required"


@pytest.mark.parametrize(("field", "repeated", "what"), [("tags", False, "no longer repeated"), ("track_id", True, "made repeated (array)")])
def test_repeated_change_is_breaking_both_ways(field: str, repeated: bool, what: str) -> None:
    changes = diff_schemas(schema(), with_field(field, repeated=repeated, required=False))
    repeated_change = next(c for c in changes if c.kind == ev.REPEATED_CHANGED)
    assert (repeated_change.path, repeated_change.compatibility, repeated_change.what) == (field, "breaking", what)


@pytest.mark.parametrize(
    ("field", "nested", "before", "after"),
    [
        ("email", False, "hash", "none"),
        ("ip", True, "truncate_ip", "none"),
        ("lat", True, "encrypt_deterministic", "none"),
        ("email", False, "hash", "truncate_ip"),
    ],
)
def test_privacy_weakened_is_breaking(field: str, nested: bool, before: str, after: str) -> None:
    new = with_nested(field, privacy=after) if nested else with_field(field, privacy=after)
    change = only(diff_schemas(schema(), new))
    assert (change.kind, change.compatibility) == (ev.PRIVACY_WEAKENED, "breaking")
    assert change.what == f"privacy weakened {before} → {after}"


def test_privacy_weakened_from_encrypt_to_deterministic_is_breaking() -> None:
    old = with_nested("lat", privacy="encrypt")
    change = only(diff_schemas(old, with_nested("lat", privacy="encrypt_deterministic")))
    assert (change.kind, change.compatibility) == (ev.PRIVACY_WEAKENED, "breaking")


def test_dropping_a_field_is_never_undone_in_place() -> None:
    old = with_field("ms_played", privacy="drop")
    change = only(diff_schemas(old, schema()))
    assert (change.kind, change.what) == (ev.PRIVACY_WEAKENED, "privacy weakened drop → none")


def test_user_id_change_is_breaking_both_ways() -> None:
    to_plain = only(diff_schemas(schema(), with_field("user_id", privacy="none")))
    assert (to_plain.kind, to_plain.compatibility) == (ev.SUBJECT_CHANGED, "breaking")
    old = schema([fd("account", required=True), *base_fields()[1:]])
    new = schema([fd("account", required=True, privacy="user_id"), *base_fields()[1:]])
    to_subject = only(diff_schemas(old, new))
    assert (to_subject.path, to_subject.kind, to_subject.compatibility) == ("account", ev.SUBJECT_CHANGED, "breaking")


@pytest.mark.parametrize(
    ("field", "before", "after", "problem"),
    [
        ("email", "hash", "encrypt", "would change type STRING → BYTES"),
        ("ms_played", "none", "hash", "would change type INT64 → STRING"),
        ("track_id", "none", "drop", "REQUIRED column 'track_id' would get no value"),
    ],
)
def test_stronger_privacy_that_changes_the_warehouse_column_is_breaking(field: str, before: str, after: str, problem: str) -> None:
    change = only(diff_schemas(schema(), with_field(field, privacy=after)))
    assert (change.kind, change.compatibility) == (ev.WAREHOUSE_TYPE_CHANGED, "breaking")
    assert change.what == f"privacy strengthened {before} → {after}"
    assert problem in change.why


def test_partitioning_change_is_breaking() -> None:
    change = only(diff_schemas(schema(), schema(partitioning="HOUR")))
    assert (change.path, change.kind, change.compatibility) == (None, ev.PARTITIONING_CHANGED, "breaking")


# --------------------------------------------------------------------------- the report


def test_breaking_change_in_place_fails_even_when_a_new_major_version_is_added() -> None:
    v2 = schema(version=2)
    report = diff_catalogs([schema()], [with_field("ms_played", remove=True), v2])
    assert [c.kind for c in report.changes] == [ev.FIELD_REMOVED, ev.MAJOR_VERSION_ADDED]
    assert [c.kind for c in report.breaking_without_bump] == [ev.FIELD_REMOVED]
    assert report.exit_code == 1
    assert report.next_major("track_played_v1") == ("track_played", 3)


def test_report_is_sorted_by_key_and_splits_compatible_from_breaking() -> None:
    old = [schema(), schema(name="ad_click")]
    new = [with_field("ms_played", type="FLOAT64"), schema(name="ad_click", owner="team-ads")]
    report = diff_catalogs(old, new)
    assert [c.key for c in report.changes] == ["ad_click_v1", "track_played_v1"]
    assert [c.kind for c in report.compatible] == [ev.OWNER_CHANGED]
    assert [c.kind for c in report.breaking] == [ev.TYPE_CHANGED]
    assert report.current_keys == ("ad_click_v1", "track_played_v1")


def test_diff_schemas_refuses_two_different_keys() -> None:
    with pytest.raises(ValueError, match="one key"):
        diff_schemas(schema(), schema(version=2))


def test_privacy_strength_orders_every_policy_but_user_id() -> None:
    assert set(PRIVACY_STRENGTH) == set(PRIVACY_POLICIES) - {"user_id"}
    order = sorted(PRIVACY_STRENGTH, key=PRIVACY_STRENGTH.__getitem__)
    assert order == ["none", "truncate_ip", "hash", "encrypt_deterministic", "encrypt", "drop"]


def test_field_columns_follow_the_anonymized_table() -> None:
    columns = field_columns(with_field("ms_played", privacy="drop"))
    assert columns["user_id"][0] == "user_pseudonym"
    assert columns["context.lat"][1].type == "BYTES"
    assert columns["email"][1].type == "STRING"
    assert "ms_played" not in columns


def test_split_key_rejects_non_keys() -> None:
    assert ev.split_key("nav_view_v12") == ("nav_view", 12)
    with pytest.raises(ValueError, match="not an event key"):
        ev.split_key("track_played")
