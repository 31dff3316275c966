"""Cross-checks of data endpoints: schedule, SQL, tables, columns, quality checks, graph."""

from __future__ import annotations

import pytest

W = "workflows/daily_song_plays.yaml"
Q = "workflows/daily_song_plays.sql"


@pytest.fixture
def song(defs):
    defs.schema()
    return defs


def test_missing_sql_file(song):
    song.endpoint(sql=None)
    assert song.errors() == [f"{W}:1: missing SQL file workflows/daily_song_plays.sql next to it"]


def test_missing_sql_file_does_not_hide_the_yaml_errors(song, edit):
    song.endpoint(edit(song.ENDPOINT, "retention_days: 90", "retension_days: 90"), sql=None)
    assert song.errors() == [
        f"{W}:1: missing SQL file workflows/daily_song_plays.sql next to it",
        f"{W}:6: unknown key 'retension_days' (did you mean 'retention_days'?)",
    ]


def test_sql_file_without_yaml(song):
    (song.root / "workflows" / "weekly.sql").write_text("SELECT @run_date AS date\n")
    assert song.errors() == [
        "workflows/weekly.sql:1: SQL file without a definition: add workflows/weekly.yaml "
        "(name, owner, schedule, ...) or remove it"
    ]


def test_sql_syntax_error_has_its_line_in_the_sql_file(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "WHERE DATE(event_time) = @run_date", "WHERE (DATE(event_time) = @run_date"))
    # sqlglot notices the missing parenthesis at the next clause, GROUP BY on line 7
    assert song.errors() == [f"{Q}:7: SQL does not parse: Expecting )"]


def test_sql_syntax_error_message_has_no_parser_internals(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "FROM events.song_played_v1_dedup", "FROM WHERE"))
    [error] = song.errors()
    assert error.startswith(f"{Q}:")
    assert "Token" not in error and "<class" not in error


def test_empty_sql_file(song):
    song.endpoint(sql="-- nothing yet\n")
    assert song.errors() == [f"{Q}:1: SQL is empty: write one SELECT query"]


def test_unknown_table_with_suggestion(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "song_played_v1_dedup", "songs_played_v1_dedup"))
    assert song.errors() == [f"{Q}:5: unknown table 'events.songs_played_v1_dedup' (did you mean 'events.song_played_v1_dedup'?)"]


def test_table_without_dataset(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "events.song_played_v1_dedup", "song_played_v1_dedup"))
    assert song.errors() == [
        f"{Q}:5: table 'song_played_v1_dedup' must be qualified with its dataset (events. or endpoints.) "
        "(did you mean 'events.song_played_v1_dedup'?)"
    ]


def test_ctes_are_not_tables(song):
    song.endpoint(sql="""\
        WITH plays AS (SELECT song_id FROM events.song_played_v1_dedup WHERE DATE(event_time) = @run_date)
        SELECT @run_date AS date, song_id, COUNT(*) AS plays FROM plays GROUP BY song_id
        """)
    song.load()


def test_endpoint_reads_its_own_table(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "events.song_played_v1_dedup", "endpoints.daily_song_plays"))
    assert song.errors() == [f"{Q}:5: endpoint 'daily_song_plays' reads its own table"]


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("DELETE FROM events.song_played_v1 WHERE DATE(event_time) < @run_date", "a DELETE statement"),
        ("SELECT @run_date AS date, 1 AS song_id;\nSELECT 2", "2 statements"),
    ],
)
def test_sql_must_be_one_select(song, sql, found):
    song.endpoint(sql=sql)
    assert song.errors() == [
        f"{Q}:1: the SQL must be one SELECT query, found {found}; the platform writes the query's result "
        "into the endpoint's partition itself"
    ]


def test_unknown_query_parameter(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "= @run_date", "= @rundate"))
    assert song.errors() == [
        f"{Q}:6: unknown query parameter @rundate (did you mean '@run_date'?); "
        "an endpoint's query gets @run_date (DATE) and @run_time (TIMESTAMP)"
    ]


def test_query_must_use_the_run_date(song):
    song.endpoint(sql="SELECT CURRENT_DATE() AS date, song_id FROM events.song_played_v1_dedup\n")
    assert song.errors() == [
        f"{Q}:1: the query uses neither @run_date nor @run_time, so every run would write the same rows "
        "into its own day; filter the input by @run_date (e.g. WHERE DATE(event_time) = @run_date)"
    ]


def test_run_time_is_a_parameter_too(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "DATE(event_time) = @run_date", "event_time < @run_time"))
    song.load()


def test_query_must_return_the_partition_column(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "@run_date AS date", "@run_date AS day"), text=edit(song.ENDPOINT, "[date, song_id]", "[song_id]"))
    assert song.errors() == [f"{Q}:1: the query must return the partition column 'date' (e.g. `@run_date AS date`)"]


def test_partition_column_can_be_renamed(song, edit):
    text = edit(song.ENDPOINT, "[date, song_id]", "[day, song_id]") + "partition_field: day\n"
    song.endpoint(text, sql=edit(song.ENDPOINT_SQL, "@run_date AS date", "@run_date AS day"))
    assert song.load().endpoints[0].partition_field == "day"


def test_unnamed_and_repeated_columns(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "COUNT(*) AS plays", "COUNT(*), SUM(ms_played) AS song_id"))
    assert song.errors() == [
        f"{Q}:1: column 3 of the query has no name; give it one with AS",
        f"{Q}:1: the query returns column 'song_id' more than once",
    ]


def test_select_star_skips_the_column_checks(song):
    song.endpoint(sql="SELECT @run_date AS date, * FROM events.song_played_v1_dedup WHERE DATE(event_time) = @run_date\n")
    song.load()


def test_check_column_must_be_returned(song, edit):
    song.endpoint(edit(song.ENDPOINT, "[date, song_id]", "[date, song]"))
    assert song.errors() == [f"{W}:9: not_null check column 'song' is not a column the query returns (did you mean 'song_id'?)"]


def test_accepted_values_column_must_be_returned(song):
    song.endpoint(song.ENDPOINT + "  - type: accepted_values\n    column: plays_count\n    values: [1]\n")
    assert song.errors() == [f"{W}:11: accepted_values check column 'plays_count' is not a column the query returns (did you mean 'plays'?)"]


def test_clustering_column_must_be_returned(song):
    song.endpoint(song.ENDPOINT + "clustering: [song]\n")
    assert song.errors() == [f"{W}:10: clustering column 'song' is not a column the query returns (did you mean 'song_id'?)"]


def test_relationship_to_unknown_table(song):
    song.endpoint(song.ENDPOINT + "  - type: relationship\n    column: song_id\n    to: events.song_played\n    field: song_id\n")
    assert song.errors() == [
        f"{W}:12: relationship check refers to unknown table 'events.song_played' (did you mean 'events.song_played_v1'?)"
    ]


def test_relationship_to_unknown_field(song):
    song.endpoint(song.ENDPOINT + "  - type: relationship\n    column: song_id\n    to: events.song_played_v1_dedup\n    field: song\n")
    assert song.errors() == [
        f"{W}:13: relationship check field 'song' is not a column of events.song_played_v1_dedup (did you mean 'song_id'?)"
    ]


def test_relationship_field_of_an_endpoint_is_one_of_its_columns(song):
    song.endpoint()
    song.endpoint(
        """\
        name: top_songs
        owner: team-playback
        domain: playback
        description: Top songs.
        schedule: "0 5 * * *"
        retention_days: 90
        checks:
          - type: relationship
            column: song_id
            to: endpoints.daily_song_plays
            field: plays_total
        """,
        "SELECT @run_date AS date, song_id FROM endpoints.daily_song_plays WHERE date = @run_date\n",
        name="top_songs",
    )
    assert song.errors() == [
        "workflows/top_songs.yaml:11: relationship check field 'plays_total' is not a column of "
        "endpoints.daily_song_plays (did you mean 'plays'?)"
    ]


def test_sql_check_that_does_not_parse(song):
    song.endpoint(song.ENDPOINT + "  - type: sql\n    sql: |\n      SELECT *\n      FROM WHERE\n")
    [error] = song.errors()
    assert error.startswith(f"{W}:11: checks[1].sql: SQL does not parse: ")
    assert error.endswith("(line 2 of the query)")


def test_sql_check_reading_an_unknown_table(song):
    song.endpoint(song.ENDPOINT + "  - type: sql\n    sql: SELECT * FROM endpoints.daily_song_play WHERE date = @run_date\n")
    assert song.errors() == [
        f"{W}:11: checks[1].sql: unknown table 'endpoints.daily_song_play' (did you mean 'endpoints.daily_song_plays'?) "
        "(line 1 of the query)"
    ]


def test_sql_check_with_unknown_parameter(song):
    song.endpoint(song.ENDPOINT + "  - type: sql\n    sql: SELECT * FROM endpoints.daily_song_plays WHERE date = @date\n")
    assert song.errors() == [
        f"{W}:11: checks[1].sql: unknown query parameter @date (did you mean '@run_date'?) (line 1 of the query); "
        "checks get @run_date and @run_time"
    ]


def test_row_count_needs_a_bound(song):
    song.endpoint(song.ENDPOINT + "  - type: row_count\n")
    assert song.errors() == [f"{W}:10: row_count check needs min, max or both"]


def test_row_count_min_above_max(song):
    song.endpoint(song.ENDPOINT + "  - type: row_count\n    min: 10\n    max: 2\n")
    assert song.errors() == [f"{W}:11: row_count min 10 is above max 2"]


def test_duplicate_check_names(song):
    song.endpoint(song.ENDPOINT + "    name: complete\n  - type: row_count\n    name: complete\n    min: 1\n")
    assert song.errors() == [f"{W}:12: duplicate check name 'complete': also checks[0]"]


@pytest.mark.parametrize("schedule", ["0 25 * * *", "0 4 * *", "every day", "0 4 * * * *", "@daily"])
def test_bad_cron(song, edit, schedule):
    song.endpoint(edit(song.ENDPOINT, '"0 4 * * *"', f'"{schedule}"'))
    assert song.errors() == [
        f"{W}:5: schedule {schedule!r} is not a valid cron expression "
        "(5 fields: minute hour day-of-month month day-of-week, e.g. '0 4 * * *')"
    ]


@pytest.mark.parametrize("days", [0, 4000])
def test_endpoint_retention_out_of_bounds(song, edit, days):
    song.endpoint(edit(song.ENDPOINT, "retention_days: 90", f"retention_days: {days}"))
    assert song.errors() == [f"{W}:6: retention_days {days} is out of bounds: use 1 to 3650 days"]


def test_endpoint_file_name_must_match(song):
    song.endpoint(name="song_plays")
    assert song.errors() == [
        "workflows/song_plays.yaml:1: name 'daily_song_plays' does not match the file name 'song_plays.yaml'; rename one of them"
    ]


def test_endpoint_named_like_an_event_type(song, edit):
    song.endpoint(edit(song.ENDPOINT, "name: daily_song_plays", "name: song_played"), name="song_played")
    assert song.errors() == [
        "workflows/song_played.yaml:1: duplicate name 'song_played': also defined in schemas/song_played.yaml; "
        "rename or remove one"
    ]


def _chain(defs, name: str, reads: str) -> None:
    defs.endpoint(
        defs.ENDPOINT.replace("daily_song_plays", name).replace("[date, song_id]", "[date]"),
        f"SELECT @run_date AS date FROM endpoints.{reads} WHERE date = @run_date\n",
        name=name,
    )


def test_cycle_between_two_endpoints(song):
    _chain(song, "a_plays", "b_plays")
    _chain(song, "b_plays", "a_plays")
    assert song.errors() == ["workflows/a_plays.yaml:1: endpoints form a cycle: a_plays -> b_plays -> a_plays"]


def test_cycle_between_three_endpoints(song):
    _chain(song, "a_plays", "b_plays")
    _chain(song, "b_plays", "c_plays")
    _chain(song, "c_plays", "a_plays")
    assert song.errors() == ["workflows/a_plays.yaml:1: endpoints form a cycle: a_plays -> b_plays -> c_plays -> a_plays"]


def test_chain_without_cycle_loads(song):
    song.endpoint()
    _chain(song, "a_plays", "daily_song_plays")
    _chain(song, "b_plays", "a_plays")
    from dataplatform.definitions.checks import endpoint_upstreams

    assert endpoint_upstreams(song.load()) == {"a_plays": ["daily_song_plays"], "b_plays": ["a_plays"], "daily_song_plays": []}


def test_sql_is_checked_even_when_the_yaml_does_not_load(song, edit):
    song.endpoint(
        edit(song.ENDPOINT, "schedule:", "schedul:").replace("owner: team-playback", "owner: Playback Team"),
        sql=edit(song.ENDPOINT_SQL, "song_played_v1_dedup", "song_play_v1_dedup"),
    )
    assert song.errors() == [
        f"{Q}:5: unknown table 'events.song_play_v1_dedup' (did you mean 'events.song_played_v1_dedup'?)",
        f"{W}:2: owner: 'Playback Team' is not valid: use a team slug like team-playback (lower case, digits, - and _)",
        f"{W}:5: unknown key 'schedul' (did you mean 'schedule'?)",
    ]


def test_sql_is_checked_when_the_yaml_is_not_even_yaml(song, edit):
    song.endpoint("name: [daily_song_plays\n", sql=edit(song.ENDPOINT_SQL, "@run_date AS date", "@run_dat AS date"))
    errors = song.errors()
    assert errors[0] == (
        f"{Q}:2: unknown query parameter @run_dat (did you mean '@run_date'?); "
        "an endpoint's query gets @run_date (DATE) and @run_time (TIMESTAMP)"
    )
    assert errors[1].startswith(f"{W}:2: invalid YAML: ")
    assert len(errors) == 2


def test_reading_a_schema_that_does_not_load_is_not_a_second_error(defs, edit):
    defs.schema(edit(defs.SCHEMA, "owner: team-playback", "owner: Playback"))
    defs.endpoint()
    assert defs.errors() == [
        "schemas/song_played.yaml:3: owner: 'Playback' is not valid: use a team slug like team-playback (lower case, digits, - and _)"
    ]


def test_reading_an_endpoint_that_does_not_load_is_not_a_second_error(song, edit):
    song.endpoint(edit(song.ENDPOINT, "retention_days: 90", "retention_days: ninety"))
    _chain(song, "a_plays", "daily_song_plays")
    assert song.errors() == [
        f"{W}:6: retention_days: input should be a valid integer, unable to parse string as an integer (got 'ninety')"
    ]


def test_missing_sql_file_does_not_hide_the_yaml_cross_checks(song, edit):
    song.endpoint(edit(song.ENDPOINT, '"0 4 * * *"', '"0 4 * *"') + "  - type: row_count\n", sql=None)
    assert song.errors() == [
        f"{W}:1: missing SQL file workflows/daily_song_plays.sql next to it",
        f"{W}:5: schedule '0 4 * *' is not a valid cron expression "
        "(5 fields: minute hour day-of-month month day-of-week, e.g. '0 4 * * *')",
        f"{W}:10: row_count check needs min, max or both",
    ]


def test_construct_duckdb_cannot_run_fails_at_validate_time(song, edit):
    song.endpoint(sql=edit(song.ENDPOINT_SQL, "COUNT(*) AS plays", "FARM_FINGERPRINT(song_id) AS plays"))
    errors = song.errors()
    assert len(errors) == 1
    assert errors[0].startswith(f"{Q}:4: ")
    assert "FARM_FINGERPRINT" in errors[0] and "cannot run on the local DuckDB warehouse" in errors[0]


def test_sql_check_with_a_construct_duckdb_cannot_run(song):
    song.endpoint(song.ENDPOINT + "  - type: sql\n    sql: SELECT * FROM endpoints.daily_song_plays WHERE FARM_FINGERPRINT(song_id) = 0 AND date = @run_date\n")
    errors = song.errors()
    assert len(errors) == 1
    assert errors[0].startswith(f"{W}:11: checks[1].sql: ") and "FARM_FINGERPRINT" in errors[0]
    assert "(line 1 of the query)" in errors[0]


def test_freshness_deadline_must_leave_time_for_the_events_lateness(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", "retention_days: 30\nallowed_lateness: 1d"))
    defs.endpoint()
    [error] = defs.errors()
    assert error.startswith(f"{W}:1: freshness_deadline 6h is not later than event song_played_v1's allowed_lateness (1d)")


def test_freshness_deadline_of_a_chain_counts_the_lateness_through_its_upstream(defs, edit):
    defs.schema(edit(defs.SCHEMA, "retention_days: 30", "retention_days: 30\nallowed_lateness: 12h"))
    defs.endpoint(edit(defs.ENDPOINT, "retention_days: 90", "retention_days: 90\nfreshness_deadline: 1d"))
    defs.endpoint(
        "name: song_report\nowner: team-playback\ndomain: playback\ndescription: Report.\n"
        "schedule: '0 6 * * *'\nretention_days: 90\nfreshness_deadline: 10h\n",
        "SELECT @run_date AS date, COUNT(*) AS n FROM endpoints.daily_song_plays WHERE date = @run_date\n",
        name="song_report",
    )
    [error] = defs.errors()
    assert error.startswith(
        "workflows/song_report.yaml:7: freshness_deadline 10h is not later than event song_played_v1's "
        "allowed_lateness (12h) (through daily_song_plays)"
    )
