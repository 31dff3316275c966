"""A tiny catalog in tmp_path that each test breaks in one way.

`defs.schema(text)` / `defs.endpoint(yaml, sql)` write files (dedented); `defs.errors()`
loads the catalog and returns every reported line (`path:line: message`), failing the test
if loading succeeds. The valid texts are attributes, so a test reads as "the valid
definition with this one change".
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dataplatform.definitions.loader import Catalog, DefinitionErrors, load_catalog

SCHEMA = """\
name: song_played
version: 1
owner: team-playback
domain: playback
description: A song was played.
retention_days: 30
fields:
  - name: user_id
    type: STRING
    required: true
    privacy: user_id
    description: The listener.
  - name: song_id
    type: STRING
    required: true
    description: The song.
  - name: ms_played
    type: INT64
    description: Milliseconds heard.
  - name: context
    type: RECORD
    description: Where it was played.
    fields:
      - name: ip
        type: STRING
        privacy: truncate_ip
        description: Client IP.
      - name: lat
        type: FLOAT64
        privacy: encrypt
        description: Latitude.
"""

ENDPOINT = """\
name: daily_song_plays
owner: team-playback
domain: playback
description: Plays per song and day.
schedule: "0 4 * * *"
retention_days: 90
checks:
  - type: not_null
    columns: [date, song_id]
"""

ENDPOINT_SQL = """\
SELECT
  @run_date AS date,
  song_id,
  COUNT(*) AS plays
FROM events.song_played_v1_dedup
WHERE DATE(event_time) = @run_date
GROUP BY song_id
"""


class Defs:
    """Writes definition files under `root` and loads them."""

    SCHEMA = SCHEMA
    ENDPOINT = ENDPOINT
    ENDPOINT_SQL = ENDPOINT_SQL

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "schemas").mkdir()
        (root / "workflows").mkdir()

    def schema(self, text: str = SCHEMA, name: str = "song_played") -> Path:
        path = self.root / "schemas" / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    def endpoint(self, text: str = ENDPOINT, sql: str | None = ENDPOINT_SQL, name: str = "daily_song_plays") -> Path:
        path = self.root / "workflows" / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        if sql is not None:
            path.with_suffix(".sql").write_text(textwrap.dedent(sql))
        return path

    def load(self) -> Catalog:
        return load_catalog(self.root)

    def raised(self) -> DefinitionErrors:
        with pytest.raises(DefinitionErrors) as info:
            load_catalog(self.root)
        return info.value

    def errors(self) -> list[str]:
        return [str(e) for e in self.raised().errors]


@pytest.fixture
def defs(tmp_path: Path) -> Defs:
    return Defs(tmp_path)


def replace(text: str, old: str, new: str) -> str:
    """`text` with `old` replaced once; fails loudly when the valid text changed under a test."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


@pytest.fixture
def edit():
    return replace
