"""A broken copy of part of the example catalog reports every mistake, once, in one pass.

The fixture (tests/fixtures/broken_catalog) holds two schemas and one endpoint (YAML + SQL)
with fifteen deliberate mistakes of different kinds. The full report is a golden file;
each mistake is also asserted on its own, with its file and the exact line that holds it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dataplatform.definitions.loader import DefinitionErrors, load_catalog
from tests.golden import assert_golden

BROKEN = Path(__file__).resolve().parents[2] / "fixtures" / "broken_catalog"

# (file, line, text on that line of the file, what the report says about it)
MISTAKES = [
    ("schemas/search_performed.yaml", 4, "nmae: search_performed", "unknown key 'nmae' (did you mean 'name'?)"),
    ("schemas/search_performed.yaml", 11, "retention_days: 5000", "retention_days 5000 is out of bounds"),
    ("schemas/search_performed.yaml", 13, "allowed_lateness: 6 hours", "duration '6 hours' must look like 30m, 2h or 3d"),
    ("schemas/search_performed.yaml", 20, "privacy: user_id", "user_id field 'user_id' must be required: true"),
    ("schemas/track_played.yaml", 15, "clustering: [track,", "clustering column 'track' is not a top-level scalar column of the table (did you mean 'track_id'?)"),
    ("schemas/track_played.yaml", 51, "type: BOOLEAN", "unknown field type 'BOOLEAN' (did you mean 'BOOL'?)"),
    ("schemas/track_played.yaml", 59, "requird: true", "field 'offline': unknown key 'requird' (did you mean 'required'?)"),
    ("schemas/track_played.yaml", 98, "privacy: truncate-ip", "unknown privacy policy 'truncate-ip' (did you mean 'truncate_ip'?)"),
    ("schemas/track_played.yaml", 110, "privacy: hash", "privacy: hash cannot apply to FLOAT64 field 'context.location.lat'"),
    ("workflows/daily_track_plays.sql", 13, "FROM events.track_plays_v1_dedup", "unknown table 'events.track_plays_v1_dedup' (did you mean 'events.track_played_v1_dedup'?)"),
    ("workflows/daily_track_plays.sql", 14, "@run_day", "unknown query parameter @run_day (did you mean '@run_date'?)"),
    ("workflows/daily_track_plays.yaml", 8, 'schedule: "30 3 * *"', "schedule '30 3 * *' is not a valid cron expression"),
    ("workflows/daily_track_plays.yaml", 19, "columns: [date, track]", "unique check column 'track' is not a column the query returns (did you mean 'track_id'?)"),
    ("workflows/daily_track_plays.yaml", 20, "type: not_nul", "unknown check type 'not_nul' (did you mean 'not_null'?)"),
    ("workflows/daily_track_plays.yaml", 24, "to: events.track_play_v1", "unknown table 'events.track_play_v1' (did you mean 'events.track_played_v1'?)"),
]


@pytest.fixture(scope="module")
def raised() -> DefinitionErrors:
    with pytest.raises(DefinitionErrors) as info:
        load_catalog(BROKEN)
    return info.value


def test_report_matches_the_golden_file(raised):
    assert_golden("definitions/broken_catalog.txt", str(raised) + "\n")


def test_every_mistake_comes_in_the_one_exception(raised):
    assert len(raised.errors) == len(MISTAKES)
    assert str(raised).endswith(f"\n{len(MISTAKES)} errors in the definitions")


@pytest.mark.parametrize(("path", "line", "written", "said"), MISTAKES, ids=[f"{m[0]}:{m[1]}" for m in MISTAKES])
def test_each_mistake_is_reported_at_its_file_and_line(raised, path, line, written, said):
    assert written in (BROKEN / path).read_text().splitlines()[line - 1], "the fixture changed under the test"
    at = [e.message for e in raised.errors if (e.path, e.line) == (path, line)]
    assert len(at) == 1 and said in at[0], f"{path}:{line}: {at}"


def test_mistakes_are_of_many_kinds_across_files():
    assert len({said.split("'")[0] for *_, said in MISTAKES}) >= 12
    assert len({path for path, *_ in MISTAKES}) == 4


def test_validate_prints_them_all_and_exits_1(raised, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "from dataplatform.cli import main; main()", "validate", "--root", str(BROKEN)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == str(raised) + "\n"
