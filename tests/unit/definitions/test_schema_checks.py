"""Cross-checks of event schemas (definitions/checks.py): one test per rule."""

from __future__ import annotations

import pytest

S = "schemas/song_played.yaml"


def test_reserved_field_name(defs, edit):
    defs.schema(edit(defs.SCHEMA, "- name: ms_played", "- name: event_time"))
    assert defs.errors() == [f"{S}:17: field name 'event_time' is reserved: the platform adds it to every table"]


def test_reserved_names_are_fine_inside_a_record(defs, edit):
    defs.schema(edit(defs.SCHEMA, "      - name: ip\n", "      - name: event_id\n"))
    assert defs.load().schemas[0].user_id_field == "user_id"


def test_record_without_fields(defs, edit):
    defs.schema(defs.SCHEMA + "  - name: device\n    type: RECORD\n    description: The device.\n")
    assert defs.errors() == [f"{S}:33: RECORD field 'device' needs a list of fields"]


def test_fields_on_a_scalar(defs, edit):
    defs.schema(edit(defs.SCHEMA, "    type: RECORD\n", "    type: STRING\n"))
    assert defs.errors() == [f"{S}:23: field 'context' of type STRING cannot have fields; use type: RECORD"]


def test_duplicate_field_name(defs, edit):
    defs.schema(edit(defs.SCHEMA, "      - name: lat\n", "      - name: ip\n"))
    assert defs.errors() == [f"{S}:28: duplicate field name 'context.ip'"]


@pytest.mark.parametrize(
    ("field", "policy", "message"),
    [
        ("ms_played", "truncate_ip", "privacy: truncate_ip cannot apply to INT64 field 'ms_played'; it applies to STRING"),
        ("context.lat", "hash", "privacy: hash cannot apply to FLOAT64 field 'context.lat'; it applies to INT64, STRING"),
        ("context", "encrypt", "privacy: encrypt cannot apply to RECORD field 'context'; put it on the record's fields"),
    ],
)
def test_policy_on_a_type_it_cannot_apply_to(defs, edit, field, policy, message):
    text = {
        "ms_played": edit(defs.SCHEMA, "    type: INT64\n", f"    type: INT64\n    privacy: {policy}\n"),
        "context.lat": edit(defs.SCHEMA, "privacy: encrypt", f"privacy: {policy}"),
        "context": edit(defs.SCHEMA, "    type: RECORD\n", f"    type: RECORD\n    privacy: {policy}\n"),
    }[field]
    defs.schema(text)
    line = {"ms_played": 19, "context.lat": 30, "context": 22}[field]
    assert defs.errors() == [f"{S}:{line}: {message}"]


@pytest.mark.parametrize("policy", ["drop", "none"])
def test_drop_and_none_apply_to_any_type(defs, edit, policy):
    defs.schema(edit(defs.SCHEMA, "    type: RECORD\n", f"    type: RECORD\n    privacy: {policy}\n"))
    defs.load()


def test_user_id_must_be_required(defs, edit):
    defs.schema(edit(defs.SCHEMA, "    required: true\n    privacy: user_id", "    privacy: user_id"))
    assert defs.errors() == [f"{S}:10: privacy: user_id field 'user_id' must be required: true"]


def test_user_id_cannot_be_repeated(defs, edit):
    defs.schema(edit(defs.SCHEMA, "    required: true\n    privacy: user_id", "    required: true\n    repeated: true\n    privacy: user_id"))
    assert defs.errors() == [f"{S}:12: privacy: user_id field 'user_id' cannot be repeated: an event has one subject"]


def test_user_id_cannot_sit_in_a_repeated_record(defs, edit):
    text = edit(defs.SCHEMA, "    type: RECORD\n", "    type: RECORD\n    repeated: true\n")
    text = edit(text, "        privacy: truncate_ip\n", "        required: true\n        privacy: user_id\n")
    text = edit(text, "    required: true\n    privacy: user_id\n", "    required: true\n")
    defs.schema(text)
    assert defs.errors() == [
        f"{S}:27: privacy: user_id field 'context.ip' cannot be repeated: an event has one subject"
    ]


def test_nested_user_id_is_allowed(defs, edit):
    text = edit(defs.SCHEMA, "        privacy: truncate_ip\n", "        required: true\n        privacy: user_id\n")
    text = edit(text, "    required: true\n    privacy: user_id\n", "    required: true\n")
    defs.schema(text)
    assert defs.load().schemas[0].user_id_field == "context.ip"


def test_two_user_id_fields(defs, edit):
    defs.schema(edit(defs.SCHEMA, "    type: STRING\n    required: true\n    description: The song.",
                     "    type: STRING\n    required: true\n    privacy: user_id\n    description: The song."))
    assert defs.errors() == [
        f"{S}:13: more than one field has privacy: user_id (user_id, song_id); an event has exactly one data subject"
    ]


@pytest.mark.parametrize("policy", ["encrypt", "encrypt_deterministic"])
def test_encryption_needs_a_user_id_field(defs, edit, policy):
    text = edit(defs.SCHEMA, "    privacy: user_id\n", "")
    defs.schema(edit(text, "privacy: encrypt", f"privacy: {policy}"))
    assert defs.errors() == [
        f"{S}:27: field 'context.lat' is encrypted with the user's key but no field has privacy: user_id; "
        "mark the subject's id field with privacy: user_id"
    ]


def test_hash_and_truncate_ip_need_no_user_id_field(defs, edit):
    text = edit(defs.SCHEMA, "    privacy: user_id\n", "    privacy: hash\n")
    defs.schema(edit(text, "        privacy: encrypt\n", ""))
    assert defs.load().schemas[0].user_id_field is None


def test_clustering_column_must_exist(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", "retention_days: 30\nclustering: [song]\n"))
    assert defs.errors() == [
        f"{S}:7: clustering column 'song' is not a top-level scalar column of the table (did you mean 'song_id'?)"
    ]


@pytest.mark.parametrize("column", ["user_id", "context", "event_time", "user_pseudonym"])
def test_clustering_uses_the_anonymized_table_columns(defs, edit, column):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", f"retention_days: 30\nclustering: [{column}]\n"))
    if column in ("event_time", "user_pseudonym"):
        defs.load()
    else:
        assert defs.errors()[0].startswith(f"{S}:7: clustering column {column!r} is not a top-level scalar column")


def test_at_most_four_clustering_columns(defs, edit):
    columns = "event_id, event_time, song_id, ms_played, user_pseudonym"
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", f"retention_days: 30\nclustering: [{columns}]\n"))
    assert defs.errors() == [f"{S}:7: at most 4 clustering columns"]


@pytest.mark.parametrize("days", [0, 3651])
def test_retention_out_of_bounds(defs, edit, days):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", f"retention_days: {days}"))
    assert defs.errors() == [f"{S}:6: retention_days {days} is out of bounds: use 1 to 3650 days"]


def test_hourly_partitions_cap_retention(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", "retention_days: 500\npartitioning: HOUR"))
    assert defs.errors() == [
        f"{S}:6: retention_days 500 with partitioning: HOUR needs 12000 hourly partitions, more than "
        "BigQuery's 10000 a table; use at most 416 days or partitioning: DAY"
    ]


def test_lateness_longer_than_retention(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", "retention_days: 2\nallowed_lateness: 3d"))
    assert defs.errors() == [
        f"{S}:7: allowed_lateness 3d is longer than retention_days 2: late events would land in expired partitions"
    ]


def test_lateness_is_measured_against_a_valid_retention_only(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", "retention_days: 1\npartitioning: HOUR"))
    defs.load()  # the 2h default lateness fits in one day
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", "retention_days: 1\nallowed_lateness: 25h"))
    assert defs.errors() == [
        f"{S}:7: allowed_lateness 25h is longer than retention_days 1: late events would land in expired partitions"
    ]


def test_file_name_must_match(defs):
    defs.schema(name="songs")
    assert defs.errors() == ["schemas/songs.yaml:1: name 'song_played' does not match the file name 'songs.yaml'; rename one of them"]


def test_file_may_carry_the_major_version(defs, edit):
    defs.schema(name="song_played_v1")
    defs.schema(edit(defs.SCHEMA, "version: 1", "version: 2"), name="song_played_v2")
    assert [s.key for s in defs.load().schemas] == ["song_played_v1", "song_played_v2"]


def test_duplicate_event_type(defs):
    defs.schema()
    defs.schema(name="song_played_v1")
    assert defs.errors() == [
        "schemas/song_played_v1.yaml:1: duplicate event type 'song_played_v1': also defined in "
        "schemas/song_played.yaml; rename or remove one"
    ]
