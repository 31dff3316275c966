"""`describe NAME`: fields, privacy, storage, access and lineage of one definition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataplatform.definitions.loader import Catalog, load_catalog
from dataplatform.errors import PlatformError
from dataplatform.pipeline.describe import describe, render_text, to_json
from tests.golden import assert_golden

PLAY = """\
name: play
version: 1
owner: team-playback
domain: playback
description: A listener played a track.
retention_days: 395
partitioning: HOUR
allowed_lateness: 2h
clustering: [track_id]
readers:
  - group:analysts@example.com
fields:
  - name: user_id
    type: STRING
    required: true
    privacy: user_id
    description: Account id of the listener.
  - name: track_id
    type: STRING
    required: true
    description: Catalog id of the track.
  - name: email
    type: STRING
    privacy: encrypt
    description: Contact address.
  - name: tags
    type: STRING
    repeated: true
    description: Labels of the play.
  - name: device
    type: RECORD
    description: The playing device.
    fields:
      - name: id
        type: STRING
        required: true
        privacy: hash
        description: Installation id.
      - name: ip
        type: STRING
        privacy: truncate_ip
        description: Client IP address.
      - name: serial
        type: STRING
        privacy: drop
        description: Hardware serial number; never stored.
"""

SIGNUP = """\
name: signup
version: 1
owner: team-growth
domain: growth
description: An account was created.
retention_days: 30
fields:
  - name: country
    type: STRING
    description: Country of the new account.
"""

DAILY_PLAYS_YAML = """\
name: daily_plays
owner: team-playback
domain: playback
description: Plays per track and day.
schedule: "0 4 * * *"
retention_days: 730
clustering: [track_id]
readers:
  - group:analysts@example.com
freshness_deadline: 6h
checks:
  - type: not_null
    columns: [date, track_id]
  - type: unique
    columns: [date, track_id]
  - type: row_count
    min: 1
    severity: warn
  - name: known_sources
    type: accepted_values
    column: source
    values: [app, web]
  - type: sql
    sql: SELECT track_id FROM endpoints.daily_plays WHERE date = @run_date AND plays < 0
"""

DAILY_PLAYS_SQL = """\
SELECT @run_date AS date, track_id, 'app' AS source, COUNT(*) AS plays
FROM events.play_v1_dedup
WHERE DATE(event_time) = @run_date
GROUP BY track_id
"""

TOP_TRACKS_YAML = """\
name: top_tracks
owner: team-charts
domain: charts
description: The ten most played tracks of the day.
schedule: "0 5 * * *"
retention_days: 365
checks:
  - type: relationship
    column: track_id
    to: endpoints.daily_plays
    field: track_id
"""

TOP_TRACKS_SQL = """\
SELECT date, track_id, plays
FROM endpoints.daily_plays
WHERE date = @run_date
ORDER BY plays DESC
LIMIT 10
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    files = {
        "schemas/play.yaml": PLAY,
        "schemas/signup.yaml": SIGNUP,
        "workflows/daily_plays.yaml": DAILY_PLAYS_YAML,
        "workflows/daily_plays.sql": DAILY_PLAYS_SQL,
        "workflows/top_tracks.yaml": TOP_TRACKS_YAML,
        "workflows/top_tracks.sql": TOP_TRACKS_SQL,
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return load_catalog(tmp_path)


def test_event_golden(catalog: Catalog) -> None:
    description = describe(catalog, "play")
    assert_golden("describe/play_v1.txt", render_text(description))
    assert_golden("describe/play_v1.json", json.dumps(to_json(description), indent=2) + "\n")


def test_event_fields_show_the_warehouse_column_after_anonymization(catalog: Catalog) -> None:
    fields = {f.path: f for f in describe(catalog, "play_v1").fields}
    assert (fields["user_id"].column, fields["user_id"].column_type) == ("user_pseudonym", "STRING REQUIRED")
    assert fields["email"].column_type == "BYTES NULLABLE"
    assert (fields["device.id"].privacy, fields["device.id"].column_type) == ("hash", "STRING REQUIRED")
    assert fields["device.serial"].column is None
    assert fields["tags"].mode == "REPEATED"


def test_event_downstreams_are_marked_transitive(catalog: Catalog) -> None:
    d = describe(catalog, "events.play_v1")
    assert [(r.name, r.direct, r.via) for r in d.downstreams] == [
        ("daily_plays", True, None),
        ("top_tracks", False, "daily_plays"),
    ]
    assert d.upstreams == ()
    assert d.topics == ("play_v1-raw", "play_v1")
    assert d.partitioning == "HOUR on event_time" and d.allowed_lateness == "2h"


def test_endpoint_golden(catalog: Catalog) -> None:
    description = describe(catalog, "daily_plays")
    assert_golden("describe/daily_plays.txt", render_text(description))
    assert [(c.path, c.type, c.sources) for c in description.fields] == [
        ("date", "DATE", ()),
        ("track_id", "STRING", ("events.play_v1.track_id",)),
        ("source", "STRING", ()),
        ("plays", "INT64", ()),
    ]


def test_endpoint_upstreams_include_transitive_ones(catalog: Catalog) -> None:
    d = describe(catalog, "top_tracks")
    assert [(r.name, r.kind, r.direct, r.via) for r in d.upstreams] == [
        ("daily_plays", "endpoint", True, None),
        ("play_v1", "event", False, "daily_plays"),
    ]
    assert d.checks == ("relationship(track_id → endpoints.daily_plays.track_id)",)
    assert d.readers == () and "readers       (owner only)" in render_text(d)


def test_event_without_lineage_says_none(catalog: Catalog) -> None:
    text = render_text(describe(catalog, "signup"))
    assert "upstreams\n  (none)\n\ndownstreams\n  (none)\n" in text
    assert "clustering    event_id\n" in text  # the platform's default when there is no user_id


def test_unknown_name_suggests_the_closest(catalog: Catalog) -> None:
    with pytest.raises(PlatformError, match=r"unknown event type or endpoint 'daily_play' \(did you mean 'daily_plays'\?\)"):
        describe(catalog, "daily_play")
