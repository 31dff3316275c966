"""`lineage NAME`: table-level upstream/downstream trees of a small catalog built in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataplatform.definitions.loader import Catalog, load_catalog
from dataplatform.errors import PlatformError
from dataplatform.pipeline import lineage_tree as lt
from dataplatform.pipeline.lineage_tree import lineage, render_text, resolve, table_graph, to_json
from tests.golden import assert_golden


def _schema(name: str, version: int = 1) -> str:
    return f"""\
name: {name}
version: {version}
owner: team-a
domain: music
description: The {name} event.
retention_days: 30
fields:
  - name: user_id
    type: STRING
    required: true
    privacy: user_id
    description: The user.
  - name: track_id
    type: STRING
    description: The track.
"""


def _endpoint(name: str) -> str:
    return f"""\
name: {name}
owner: team-a
domain: music
description: The {name} endpoint.
schedule: "0 4 * * *"
retention_days: 90
"""


ENDPOINT_SQL = {
    "daily_plays": "SELECT @run_date AS date, track_id, COUNT(*) AS plays\nFROM events.play_v1_dedup\nWHERE DATE(event_time) = @run_date\nGROUP BY track_id",
    "daily_signups": "SELECT @run_date AS date, COUNT(*) AS signups\nFROM events.signup_v1\nWHERE DATE(event_time) = @run_date",
    "top_tracks": "SELECT date, track_id, plays\nFROM endpoints.daily_plays\nWHERE date = @run_date\nORDER BY plays DESC\nLIMIT 10",
    "activity": (
        "SELECT p.date, SUM(p.plays) AS plays, MAX(s.signups) AS signups\n"
        "FROM endpoints.daily_plays AS p\nCROSS JOIN endpoints.daily_signups AS s\n"
        "WHERE p.date = @run_date AND s.date = @run_date\nGROUP BY p.date"
    ),
    "report": (
        "SELECT a.date, a.plays, t.track_id AS top_track\nFROM endpoints.activity AS a\n"
        "JOIN endpoints.top_tracks AS t ON t.date = a.date\nWHERE a.date = @run_date"
    ),
}


def write_catalog(root: Path) -> Catalog:
    """play (v1, v2), signup; daily_plays → top_tracks, activity → report (a diamond)."""
    (root / "schemas").mkdir(parents=True)
    (root / "workflows").mkdir()
    (root / "schemas/play.yaml").write_text(_schema("play"))
    (root / "schemas/play_v2.yaml").write_text(_schema("play", 2))
    (root / "schemas/signup.yaml").write_text(_schema("signup"))
    for name, sql in ENDPOINT_SQL.items():
        (root / f"workflows/{name}.yaml").write_text(_endpoint(name))
        (root / f"workflows/{name}.sql").write_text(sql + "\n")
    return load_catalog(root)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return write_catalog(tmp_path)


def test_graph_edges_follow_the_sql(catalog: Catalog) -> None:
    graph = table_graph(catalog)
    assert graph.upstream["daily_plays"] == ("play_v1",)  # the _dedup view folds onto its table
    assert graph.upstream["activity"] == ("daily_plays", "daily_signups")
    assert graph.upstream["play_v1"] == ()
    assert graph.downstream["daily_plays"] == ("activity", "top_tracks")
    assert graph.downstream["play_v2"] == ()
    assert graph.nodes["report"].table == "endpoints.report"


def test_downstream_tree_of_an_event(catalog: Catalog) -> None:
    tree = lineage(catalog, "play_v1")
    assert tree.root.kind == "event" and tree.upstream == ()
    assert_golden("describe/lineage_play_v1.txt", render_text(tree))


def test_upstream_tree_of_an_endpoint_shows_a_shared_upstream_once(catalog: Catalog) -> None:
    tree = lineage(catalog, "report")
    text = render_text(tree)
    assert_golden("describe/lineage_report.txt", text)
    assert text.count("daily_plays (endpoint: endpoints.daily_plays)") == 2
    assert text.count("[see above]") == 1
    assert_golden("describe/lineage_report.json", json.dumps(to_json(tree), indent=2) + "\n")


def test_event_by_name_is_its_highest_major_version(catalog: Catalog) -> None:
    assert lineage(catalog, "play").root.name == "play_v2"
    assert lineage(catalog, "play").downstream == ()


def test_table_refs_resolve_too(catalog: Catalog) -> None:
    assert resolve(catalog, "events.play_v1").key == "play_v1"
    assert resolve(catalog, "events.play_v1_dedup").key == "play_v1"
    assert resolve(catalog, "endpoints.top_tracks").name == "top_tracks"


def test_unknown_name_suggests_the_closest(catalog: Catalog) -> None:
    with pytest.raises(PlatformError, match=r"unknown event type or endpoint 'top_track' \(did you mean 'top_tracks'\?\)"):
        lineage(catalog, "top_track")


def test_cycles_are_cut_even_though_validation_rejects_them() -> None:
    a, b, c = (lt.NodeRef(n, "endpoint", f"endpoints.{n}") for n in "abc")
    graph = lt.TableGraph({"a": a, "b": b, "c": c}, {"a": ("b",), "b": ("c",), "c": ("a", "b")}, {})
    (b_node,) = lt._subtrees(graph, graph.upstream, "a")
    (c_node,) = b_node.children
    assert [(n.ref.name, n.note) for n in c_node.children] == [("a", lt.CYCLE), ("b", lt.CYCLE)]


def test_column_lineage_for_an_endpoint_when_asked(catalog: Catalog) -> None:
    tree = lineage(catalog, "activity", columns=True)
    assert tree.columns == {
        "date": ("endpoints.daily_plays.date",),
        "plays": ("endpoints.daily_plays.plays",),
        "signups": ("endpoints.daily_signups.signups",),
    }
    assert_golden("describe/lineage_activity_columns.txt", render_text(tree))
    assert to_json(tree)["columns"]["signups"] == ["endpoints.daily_signups.signups"]
    assert lineage(catalog, "activity").columns is None


def test_events_have_no_column_lineage(catalog: Catalog) -> None:
    assert lineage(catalog, "play_v1", columns=True).columns is None
