"""`schema diff --against REF` on a real temporary git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dataplatform.compile import evolution as ev
from dataplatform.definitions.loader import DefinitionErrors
from dataplatform.errors import PlatformError
from dataplatform.pipeline.schema_diff import render_text, schema_diff, schemas_at_ref, to_json
from tests.golden import assert_golden

TRACK_PLAYED = """\
name: track_played
version: 1
owner: team-playback
domain: playback
description: A listener played a track.
retention_days: 30
readers: [group:analysts@example.com]
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
  - name: ms_played
    type: INT64
    description: Milliseconds played.
  - name: context
    type: RECORD
    description: Where it was played.
    fields:
      - name: ip
        type: STRING
        privacy: truncate_ip
        description: Client IP address.
      - name: os
        type: STRING
        description: Operating system.
"""

AD_CLICK = """\
name: ad_click
version: 1
owner: team-ads
domain: ads
description: A listener clicked an ad.
retention_days: 90
fields:
  - name: ad_id
    type: STRING
    required: true
    description: Id of the ad.
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose `main` holds two event schemas."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, {"schemas/track_played.yaml": TRACK_PLAYED, "schemas/ad_click.yaml": AD_CLICK})
    commit(root, "two schemas")
    return root


def edit(repo: Path, name: str, old: str, new: str) -> None:
    path = repo / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def test_unchanged_tree_has_no_changes(repo: Path) -> None:
    report = schema_diff(repo, "HEAD")
    assert report.changes == () and report.exit_code == 0
    assert render_text(report) == "No event schema changes against HEAD.\n"


def test_multi_change_diff_against_head(repo: Path) -> None:
    edit(repo, "schemas/track_played.yaml", "retention_days: 30", "retention_days: 14")
    edit(repo, "schemas/track_played.yaml", "name: ms_played\n    type: INT64", "name: ms_played\n    type: FLOAT64")
    edit(repo, "schemas/track_played.yaml", "name: os", "name: platform")
    edit(repo, "schemas/track_played.yaml", "        privacy: truncate_ip\n", "")
    edit(
        repo,
        "schemas/track_played.yaml",
        "    description: Milliseconds played.\n",
        "    description: Milliseconds played.\n  - name: shuffle\n    type: BOOL\n    description: Shuffle was on.\n",
    )
    (repo / "schemas/ad_click.yaml").unlink()
    write(repo, {"schemas/search_performed.yaml": AD_CLICK.replace("ad_click", "search_performed")})

    report = schema_diff(repo, "HEAD")

    assert report.against == "HEAD"
    assert [(c.key, c.path, c.kind) for c in report.changes] == [
        ("ad_click_v1", None, ev.EVENT_REMOVED),
        ("search_performed_v1", None, ev.EVENT_ADDED),
        ("track_played_v1", None, ev.RETENTION_CHANGED),
        ("track_played_v1", "ms_played", ev.TYPE_CHANGED),
        ("track_played_v1", "context.ip", ev.PRIVACY_WEAKENED),
        ("track_played_v1", "context.os", ev.FIELD_RENAMED),
        ("track_played_v1", "shuffle", ev.FIELD_ADDED),
    ]
    assert report.exit_code == 1
    assert_golden("evolution/multi_change.txt", render_text(report))
    assert_golden("evolution/multi_change.json", json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n")


def test_the_message_says_which_field_and_why(repo: Path) -> None:
    edit(repo, "schemas/track_played.yaml", "name: ip\n        type: STRING", "name: ip\n        type: INT64")
    edit(repo, "schemas/track_played.yaml", "        privacy: truncate_ip\n", "")
    text = render_text(schema_diff(repo, "HEAD"))
    assert "track_played_v1: field 'context.ip': type changed STRING → INT64 — breaking: " in text
    assert "schemas/track_played_v2.yaml with `version: 2`" in text


def test_compatible_changes_exit_zero(repo: Path) -> None:
    edit(repo, "schemas/ad_click.yaml", "description: A listener clicked an ad.", "description: A listener clicked on an ad.")
    edit(
        repo,
        "schemas/ad_click.yaml",
        "    description: Id of the ad.\n",
        "    description: Id of the ad.\n  - name: placement\n    type: STRING\n    description: Where it was shown.\n",
    )
    report = schema_diff(repo, "HEAD")
    assert [c.kind for c in report.changes] == [ev.DESCRIPTION_CHANGED, ev.FIELD_ADDED]
    assert report.exit_code == 0
    text = render_text(report)
    assert "2 changes against HEAD: 2 compatible, 0 breaking." in text
    assert "To fix" not in text


def test_breaking_change_shipped_as_a_new_major_version_passes(repo: Path) -> None:
    v2 = TRACK_PLAYED.replace("version: 1", "version: 2").replace("type: INT64", "type: FLOAT64")
    write(repo, {"schemas/track_played_v2.yaml": v2})
    report = schema_diff(repo, "HEAD")
    assert [(c.key, c.kind) for c in report.changes] == [("track_played_v2", ev.MAJOR_VERSION_ADDED)]
    assert report.exit_code == 0


def test_retiring_the_old_major_version_after_the_bump_passes(repo: Path) -> None:
    write(repo, {"schemas/track_played_v2.yaml": TRACK_PLAYED.replace("version: 1", "version: 2")})
    commit(repo, "v2")
    (repo / "schemas/track_played.yaml").unlink()
    report = schema_diff(repo, "HEAD")
    assert [(c.key, c.kind, c.compatibility) for c in report.changes] == [("track_played_v1", ev.EVENT_RETIRED, "breaking")]
    assert report.exit_code == 0


def test_against_a_branch(repo: Path) -> None:
    git(repo, "branch", "release")
    edit(repo, "schemas/ad_click.yaml", "retention_days: 90", "retention_days: 365")
    commit(repo, "keep clicks longer")
    edit(repo, "schemas/ad_click.yaml", "    required: true\n", "")
    commit(repo, "ad_id optional")
    assert schema_diff(repo, "HEAD").changes == ()
    report = schema_diff(repo, "release")
    assert [(c.kind, c.compatibility) for c in report.changes] == [
        (ev.RETENTION_CHANGED, "compatible"),
        (ev.MADE_OPTIONAL, "compatible"),
    ]
    assert schema_diff(repo, "HEAD~1").changes[0].kind == ev.MADE_OPTIONAL


def test_missing_ref_names_the_ref(repo: Path) -> None:
    with pytest.raises(PlatformError, match="git ref 'origin/main' not found"):
        schema_diff(repo, "origin/main")


@pytest.mark.parametrize("ref", ["", "--output=/tmp/x", "-h"])
def test_option_like_or_empty_ref_is_refused(repo: Path, ref: str) -> None:
    with pytest.raises(PlatformError, match="is not a git ref"):
        schema_diff(repo, ref)


def test_ref_without_schemas_means_everything_is_new(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, {"README.md": "empty\n"})
    commit(root, "start")
    write(root, {"schemas/ad_click.yaml": AD_CLICK})
    report = schema_diff(root, "HEAD")
    assert [(c.key, c.kind) for c in report.changes] == [("ad_click_v1", ev.EVENT_ADDED)]
    assert report.exit_code == 0


def test_catalog_in_a_subdirectory_of_the_repository(tmp_path: Path) -> None:
    top = tmp_path / "mono"
    root = top / "platform"
    root.mkdir(parents=True)
    git(top, "init", "-q", "-b", "main")
    write(root, {"schemas/ad_click.yaml": AD_CLICK, "schemas/nested/ignored.yaml": "not: a schema\n"})
    write(top, {"schemas/elsewhere.yaml": "name: not ours\n"})
    commit(top, "start")
    edit(root, "schemas/ad_click.yaml", "owner: team-ads", "owner: team-revenue")
    report = schema_diff(root, "HEAD")
    assert [(c.key, c.kind) for c in report.changes] == [("ad_click_v1", ev.OWNER_CHANGED)]


def test_schemas_at_the_ref_that_do_not_load_are_reported_with_path_and_line(repo: Path) -> None:
    edit(repo, "schemas/ad_click.yaml", "retention_days: 90", "retention_days: 90\ncolour: red")
    commit(repo, "broken")
    edit(repo, "schemas/ad_click.yaml", "\ncolour: red", "")
    with pytest.raises(PlatformError, match=r"HEAD:schemas/ad_click.yaml:7: unknown key 'colour'"):
        schema_diff(repo, "HEAD")


def test_invalid_yaml_at_the_ref_is_reported(repo: Path) -> None:
    write(repo, {"schemas/ad_click.yaml": "name: [unclosed\n"})
    commit(repo, "broken yaml")
    with pytest.raises(PlatformError, match=r"the event schemas at HEAD do not load(.|\n)*schemas/ad_click.yaml:\d+: invalid YAML"):
        schemas_at_ref(repo, "HEAD")


def test_invalid_working_tree_fails_like_validate(repo: Path) -> None:
    edit(repo, "schemas/ad_click.yaml", "type: STRING", "type: STRNG")
    with pytest.raises(DefinitionErrors, match="schemas/ad_click.yaml"):
        schema_diff(repo, "HEAD")


def test_not_a_git_repository(tmp_path: Path) -> None:
    write(tmp_path, {"schemas/ad_click.yaml": AD_CLICK})
    with pytest.raises(PlatformError, match="not inside a git repository"):
        schema_diff(tmp_path, "HEAD")


def test_json_lists_changes_summary_and_exit_code(repo: Path) -> None:
    edit(repo, "schemas/ad_click.yaml", "    required: true\n", "")
    edit(repo, "schemas/track_played.yaml", "name: ms_played\n    type: INT64\n", "name: ms_played\n    type: INT64\n    required: true\n")
    data = to_json(schema_diff(repo, "HEAD"))
    assert data["summary"] == {"changes": 2, "compatible": 1, "breaking": 1, "breaking_without_bump": 1}
    assert data["exit_code"] == 1
    assert [c["path"] for c in data["breaking_without_bump"]] == ["ms_played"]
    assert data["instructions"][0].startswith("track_played_v1: undo its breaking changes")
    json.dumps(data)  # JSON-serializable as is


def test_non_utf8_schema_at_the_ref_is_reported_with_its_line(repo: Path) -> None:
    (repo / "schemas/ad_click.yaml").write_bytes(AD_CLICK.encode() + b"# caf\xe9\n")
    commit(repo, "latin-1 comment")
    with pytest.raises(PlatformError, match=r"HEAD:schemas/ad_click.yaml:12: not UTF-8 text"):
        schemas_at_ref(repo, "HEAD")
