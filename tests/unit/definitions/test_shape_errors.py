"""Errors in the shape of one file: keys, types, values, YAML itself — each with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplatform.definitions.loader import DefinitionErrors, load_catalog
from dataplatform.errors import PlatformError

S = "schemas/song_played.yaml"
W = "workflows/daily_song_plays.yaml"


def test_the_small_catalog_is_valid(defs):
    defs.schema()
    defs.endpoint()
    catalog = defs.load()
    assert [s.key for s in catalog.schemas] == ["song_played_v1"]
    assert [e.name for e in catalog.endpoints] == ["daily_song_plays"]


def test_misspelt_required_key_is_one_error_with_a_suggestion(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", "retension_days: 30"))
    assert defs.errors() == [f"{S}:6: unknown key 'retension_days' (did you mean 'retention_days'?)"]


def test_misspelt_nested_key_names_the_field(defs, edit):
    defs.schema(edit(defs.SCHEMA, "        type: FLOAT64", "        typ: FLOAT64"))
    assert defs.errors() == [f"{S}:29: field 'context.lat': unknown key 'typ' (did you mean 'type'?)"]


def test_unknown_key_far_from_any_key_also_reports_the_missing_one(defs, edit):
    defs.schema(edit(defs.SCHEMA, "description: A song was played.", "summary: A song was played."))
    assert defs.errors() == [f"{S}:1: missing required key 'description'", f"{S}:5: unknown key 'summary'"]


def test_missing_key(defs, edit):
    defs.schema(edit(defs.SCHEMA, "    type: INT64\n", ""))
    assert defs.errors() == [f"{S}:17: field 'ms_played': missing required key 'type'"]


def test_unknown_field_type_with_suggestion(defs, edit):
    defs.schema(edit(defs.SCHEMA, "type: INT64", "type: INTEGER64"))
    assert defs.errors() == [
        f"{S}:18: field 'ms_played' type: unknown field type 'INTEGER64' (did you mean 'INT64'?); "
        "expected one of STRING, INT64, FLOAT64, BOOL, TIMESTAMP, DATE, RECORD"
    ]


def test_unknown_privacy_policy_with_suggestion(defs, edit):
    defs.schema(edit(defs.SCHEMA, "privacy: encrypt", "privacy: encrypted"))
    assert defs.errors() == [
        f"{S}:30: field 'context.lat' privacy: unknown privacy policy 'encrypted' (did you mean 'encrypt'?); "
        "expected one of none, user_id, encrypt, encrypt_deterministic, hash, truncate_ip, drop"
    ]


def test_unknown_partitioning_with_suggestion(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", "retention_days: 30\npartitioning: HOURLY\n"))
    assert defs.errors() == [
        f"{S}:7: partitioning: unknown partitioning 'HOURLY' (did you mean 'HOUR'?); expected one of DAY, HOUR"
    ]


def test_unknown_check_type_with_suggestion(defs, edit):
    defs.schema()
    defs.endpoint(edit(defs.ENDPOINT, "type: not_null", "type: notnull"))
    assert defs.errors() == [
        f"{W}:8: checks[0]: unknown check type 'notnull' (did you mean 'not_null'?); "
        "expected one of not_null, unique, accepted_values, row_count, relationship, sql"
    ]


def test_misspelt_key_of_a_check_suggests_from_that_check_type(defs, edit):
    defs.schema()
    defs.endpoint(edit(defs.ENDPOINT, "    columns: [date, song_id]", "    column: [date, song_id]"))
    # `column` is a key of other check types, but not_null takes `columns`.
    assert defs.errors() == [f"{W}:9: checks[0]: unknown key 'column' (did you mean 'columns'?)"]


def test_check_without_type(defs, edit):
    defs.schema()
    defs.endpoint(edit(defs.ENDPOINT, "  - type: not_null\n    columns", "  - columns"))
    assert defs.errors() == [f"{W}:8: checks[0]: missing required key 'type'"]


def test_pattern_mismatch_says_what_is_expected(defs, edit):
    defs.schema(edit(defs.SCHEMA, "owner: team-playback", "owner: Team Playback"))
    assert defs.errors() == [
        f"{S}:3: owner: 'Team Playback' is not valid: use a team slug like team-playback (lower case, digits, - and _)"
    ]


def test_public_reader_is_rejected(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", "retention_days: 30\nreaders: [allUsers]\n"))
    assert defs.errors() == [
        f"{S}:7: readers[0]: 'allUsers' is not valid: use an IAM member like group:analysts@example.com "
        "(user:, group:, serviceAccount:, domain:)"
    ]


def test_bad_duration(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", "retention_days: 30\nallowed_lateness: 2 hours\n"))
    assert defs.errors() == [f"{S}:7: allowed_lateness: duration '2 hours' must look like 30m, 2h or 3d"]


def test_zero_duration(defs, edit):
    defs.schema()
    defs.endpoint(edit(defs.ENDPOINT, "retention_days: 90\n", "retention_days: 90\nfreshness_deadline: 0h\n"))
    assert defs.errors() == [f"{W}:7: freshness_deadline: duration '0h' must be longer than zero"]


def test_wrong_scalar_type_shows_the_value(defs, edit):
    defs.schema(edit(defs.SCHEMA, "version: 1", "version: one"))
    assert defs.errors() == [f"{S}:2: version: input should be a valid integer, unable to parse string as an integer (got 'one')"]


def test_value_that_fits_no_member_of_a_union_is_one_error(defs, edit):
    defs.schema()
    defs.endpoint(
        defs.ENDPOINT + "  - type: accepted_values\n    column: song_id\n    values: [a, {b: 1}]\n"
    )
    assert defs.errors() == [f"{W}:12: checks[1].values[1]: expected a string, a number or true/false, not a mapping"]


def test_bad_list_item_is_not_also_reported_as_a_too_short_list(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", "retention_days: 30\nclustering: [Song]\n"))
    assert defs.errors() == [f"{S}:7: clustering[0]: 'Song' is not valid: use a column name in lower_snake_case"]


def test_empty_list_where_items_are_required(defs, edit):
    defs.schema()
    defs.endpoint(edit(defs.ENDPOINT, "columns: [date, song_id]", "columns: []"))
    assert defs.errors() == [f"{W}:9: checks[0].columns: tuple should have at least 1 item after validation, not 0"]


def test_mapping_where_a_list_is_expected(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30\n", "retention_days: 30\nreaders: group:a@example.com\n"))
    assert defs.errors() == [f"{S}:7: readers: expected a list, not a string"]


def test_list_item_that_is_not_a_mapping(defs):
    defs.schema(defs.SCHEMA + "  - just a name\n")
    assert defs.errors() == [f"{S}:32: fields[4]: expected a mapping of keys, not a string"]


def test_yaml_syntax_error_has_its_line(defs, edit):
    defs.schema(edit(defs.SCHEMA, "description: Milliseconds heard.", "description: [Milliseconds heard."))
    errors = defs.errors()
    assert len(errors) == 1
    assert errors[0].startswith(f"{S}:20: invalid YAML: ")


def test_repeated_yaml_key_is_reported_not_silently_overwritten(defs, edit):
    defs.schema(edit(defs.SCHEMA, "    privacy: truncate_ip\n", "    privacy: truncate_ip\n        privacy: drop\n"))
    assert defs.errors() == [f"{S}:27: 'fields[3].fields[0].privacy' is given twice (first on line 26); keep one"]


def test_document_that_is_not_a_mapping(defs):
    defs.schema("- name: song_played\n")
    assert defs.errors() == [f"{S}:1: expected a mapping of keys (name:, owner:, ...)"]


def test_empty_file(defs):
    defs.schema("")
    assert defs.errors() == [f"{S}:1: expected a mapping of keys (name:, owner:, ...)"]


def test_file_that_is_not_utf8(defs):
    path = defs.schema()
    path.write_bytes(path.read_bytes().replace(b"A song was played.", b"A song was pl\xe4yed."))
    assert defs.errors() == [f"{S}:5: not UTF-8 text; save the file as UTF-8"]


def test_sql_in_the_yaml_points_to_the_sql_file(defs):
    defs.schema()
    defs.endpoint(defs.ENDPOINT + "sql: SELECT 1\n")
    assert defs.errors() == [f"{W}:10: put the SQL in workflows/daily_song_plays.sql, not in the YAML"]


def test_all_errors_of_all_files_come_in_one_exception(defs, edit, tmp_path: Path):
    defs.schema(edit(defs.SCHEMA, "type: INT64", "type: INTEGER"))
    defs.endpoint(edit(defs.ENDPOINT, "type: not_null", "type: nonnull"))
    raised = defs.raised()
    assert isinstance(raised, DefinitionErrors)
    assert [(e.path, e.line) for e in raised.errors] == [(S, 18), (W, 8)]
    assert str(raised).endswith("\n2 errors in the definitions")
    assert str(raised).splitlines()[:2] == [str(e) for e in raised.errors]
    # the same definitions load the same way every time (pure)
    assert str(raised) == str(_raised(tmp_path))


def _raised(root: Path) -> DefinitionErrors:
    try:
        load_catalog(root)
    except DefinitionErrors as exc:
        return exc
    raise AssertionError("expected DefinitionErrors")


def test_yml_extension_is_not_skipped_silently(defs):
    (defs.root / "schemas" / "song_played.yml").write_text(defs.SCHEMA)
    assert defs.errors() == ["schemas/song_played.yml:1: definitions use the .yaml extension: rename it to song_played.yaml"]


def test_hidden_files_are_not_definitions(defs):
    defs.schema()
    (defs.root / "schemas" / ".#song_played.yaml").symlink_to(defs.root / "nowhere")  # an editor's lock file
    defs.load()


def test_unreadable_file(defs):
    (defs.root / "schemas" / "song_played.yaml").symlink_to(defs.root / "nowhere")
    assert defs.errors() == ["schemas/song_played.yaml:1: cannot read the file: No such file or directory"]


def test_root_without_definitions(tmp_path: Path):
    with pytest.raises(PlatformError, match=r"no schemas/ or workflows/ directory under .*: run from the repository root"):
        load_catalog(tmp_path)
