"""A file with shape errors is still cross-checked, on a repair of what was meant."""

from __future__ import annotations

from dataplatform.definitions.models import EventSchema
from dataplatform.definitions.repair import NEUTRAL_CHECK, salvage
from dataplatform.definitions.yaml_lines import load_with_lines

S = "schemas/song_played.yaml"
W = "workflows/daily_song_plays.yaml"


def test_shape_error_does_not_hide_a_cross_check_error(defs, edit):
    text = edit(defs.SCHEMA, "retention_days: 30", "retention_days: 30\ncolour: red")  # shape error
    defs.schema(edit(text, "type: INT64", "type: INT64\n    privacy: truncate_ip"))  # cross-check error
    assert defs.errors() == [
        f"{S}:7: unknown key 'colour'",
        f"{S}:20: privacy: truncate_ip cannot apply to INT64 field 'ms_played'; it applies to STRING",
    ]


def test_the_misspelt_keys_value_is_checked_under_the_meant_key(defs, edit):
    # `typ: INT64` is read as `type: INT64`, so truncate_ip on it is still a cross-check error
    text = edit(defs.SCHEMA, "    type: INT64\n", "    typ: INT64\n    privacy: truncate_ip\n")
    defs.schema(text)
    assert defs.errors() == [
        f"{S}:18: field 'ms_played': unknown key 'typ' (did you mean 'type'?)",
        f"{S}:19: privacy: truncate_ip cannot apply to INT64 field 'ms_played'; it applies to STRING",
    ]


def test_an_invalid_value_under_a_misspelt_key_is_reported_too(defs, edit):
    defs.schema(edit(defs.SCHEMA, "    type: INT64\n", "    typ: INTEGER\n"))
    assert defs.errors() == [
        f"{S}:18: field 'ms_played' type: unknown field type 'INTEGER'; "
        "expected one of STRING, INT64, FLOAT64, BOOL, TIMESTAMP, DATE, RECORD",
        f"{S}:18: field 'ms_played': unknown key 'typ' (did you mean 'type'?)",
    ]


def test_suggested_policy_is_what_gets_cross_checked(defs, edit):
    # "user-id" is read as user_id, so the encrypted field does not also get "no user_id field"
    defs.schema(edit(defs.SCHEMA, "privacy: user_id", "privacy: user-id"))
    errors = defs.errors()
    assert len(errors) == 1
    assert errors[0].startswith(f"{S}:11: field 'user_id' privacy: unknown privacy policy 'user-id' (did you mean 'user_id'?)")


def test_no_cross_check_error_on_a_line_that_already_has_an_error(defs, edit):
    # `name: Song-Played` is repaired to song_played; the file-name check must not judge the repair
    defs.schema(edit(defs.SCHEMA, "name: song_played", "name: Song-Played"))
    assert defs.errors() == [
        f"{S}:1: name: 'Song-Played' is not valid: use lower_snake_case starting with a letter (at most 63 characters)"
    ]


def test_broken_check_keeps_the_other_checks_numbers(defs):
    defs.schema()
    defs.endpoint(
        defs.ENDPOINT
        + "  - type: accepted_values\n    column: song_id\n    values: [{a: 1}]\n"
        + "  - type: row_count\n    name: enough\n    min: 5\n    max: 1\n"
        + "  - type: row_count\n    name: enough\n    min: 1\n"
    )
    assert defs.errors() == [
        f"{W}:12: checks[1].values[0]: expected a string, a number or true/false, not a mapping",
        f"{W}:15: row_count min 5 is above max 1",
        f"{W}:18: duplicate check name 'enough': also checks[2]",
    ]


def test_endpoint_with_shape_errors_is_still_cross_checked(defs, edit):
    defs.schema()
    text = edit(defs.ENDPOINT, "owner: team-playback", "owner: Team")
    defs.endpoint(edit(text, '"0 4 * * *"', '"0 4 * *"'))
    assert defs.errors() == [
        f"{W}:2: owner: 'Team' is not valid: use a team slug like team-playback (lower case, digits, - and _)",
        f"{W}:5: schedule '0 4 * *' is not a valid cron expression "
        "(5 fields: minute hour day-of-month month day-of-week, e.g. '0 4 * * *')",
    ]


def test_gives_up_where_no_stand_in_is_safe(defs, edit):
    # without fields there is nothing to cross-check: only the shape error
    defs.schema(defs.SCHEMA.split("fields:")[0] + "fields: []\ncolour: red\n")
    assert defs.errors() == [
        f"{S}:7: fields: tuple should have at least 1 item after validation, not 0",
        f"{S}:8: unknown key 'colour'",
    ]


def test_salvage_leaves_the_input_untouched():
    text = "name: s\nversion: 1\nowner: t\ndomain: d\ndescription: x\nretention_days: 9\nfields:\n  - nam: a\n    type: STRING\n    description: y\n"
    data, lines = load_with_lines(text)
    before = repr(data), dict(lines)
    try:
        EventSchema.model_validate(data)
    except Exception as exc:  # noqa: BLE001 - the pydantic error is the input of salvage
        result = salvage(data, lines, exc.errors(), EventSchema, "s")
    assert result is not None
    assert result.model.fields[0].name == "a"
    assert (repr(data), dict(lines)) == before


def test_neutral_check_is_a_valid_check_that_cannot_fail_a_cross_check():
    from dataplatform.definitions.models import RowCountCheck

    check = RowCountCheck.model_validate(NEUTRAL_CHECK)
    assert (check.min, check.max, check.name) == (0, None, None)
