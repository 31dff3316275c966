"""The definition commands through the real typer app: exit codes, summaries, JSON."""

from __future__ import annotations

import json
import subprocess

from typer.testing import CliRunner

from dataplatform.cli import app

runner = CliRunner()


def test_validate_on_the_repo_exits_0_with_a_summary(repo_root):
    result = runner.invoke(app, ["validate", "--root", str(repo_root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert summary["event_types"] >= 5 and summary["endpoints"] >= 5
    assert set(summary["pii_fields_by_policy"]) >= {"user_id", "encrypt", "hash", "truncate_ip", "drop"}
    assert summary["pii_fields"] == sum(summary["pii_fields_by_policy"].values())


def test_validate_table_names_the_counts(repo_root):
    result = runner.invoke(app, ["validate", "--root", str(repo_root)])
    assert result.exit_code == 0
    assert "event types" in result.stdout and "privacy: encrypt" in result.stdout


def test_describe_unknown_name_exits_1_with_a_suggestion(repo_root):
    result = runner.invoke(app, ["describe", "track_plyed", "--root", str(repo_root)])
    assert result.exit_code == 1
    assert "track_played" in result.stderr


def test_describe_json_lists_fields_and_privacy(repo_root):
    result = runner.invoke(app, ["describe", "track_played", "--root", str(repo_root), "--json"])
    assert result.exit_code == 0, result.output
    assert "user_id" in result.stdout and "user_pseudonym" in result.stdout


def test_lineage_of_the_chain_shows_its_upstream_endpoint(repo_root):
    result = runner.invoke(app, ["lineage", "weekly_top_tracks", "--root", str(repo_root)])
    assert result.exit_code == 0, result.output
    assert "daily_track_plays" in result.stdout and "track_played_v1" in result.stdout


def test_schema_diff_exits_1_on_a_breaking_change_without_bump(tmp_path, repo_root):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "workflows").mkdir()
    schema = (repo_root / "schemas" / "track_played.yaml").read_text()
    (tmp_path / "schemas" / "track_played.yaml").write_text(schema)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    assert "name: track_duration_ms\n    type: INT64" in schema
    (tmp_path / "schemas" / "track_played.yaml").write_text(
        schema.replace("name: track_duration_ms\n    type: INT64", "name: track_duration_ms\n    type: FLOAT64")
    )
    result = runner.invoke(app, ["schema", "diff", "--against", "HEAD", "--root", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "track_duration_ms" in result.stdout and "breaking" in result.stdout


def test_catalog_build_writes_a_page_per_definition(tmp_path, repo_root, catalog):
    out = tmp_path / "catalog"
    (out / "stale.md").parent.mkdir(parents=True)
    (out / "stale.md").write_text("old")
    result = runner.invoke(app, ["catalog", "build", "--out", str(out), "--root", str(repo_root), "--json"])
    assert result.exit_code == 0, result.output
    pages = json.loads(result.stdout)["pages"]
    assert len(pages) == 1 + len(catalog.schemas) + len(catalog.endpoints)
    assert not (out / "stale.md").exists()
    index = (out / "index.md").read_text()
    for schema in catalog.schemas:
        assert f"events/{schema.key}.md" in index
        assert (out / "events" / f"{schema.key}.md").read_text().startswith("#")
    weekly = (out / "endpoints" / "weekly_top_tracks.md").read_text()
    assert "endpoints.daily_track_plays" in weekly or "daily_track_plays" in weekly
    assert "| [weekly_top_tracks](endpoints/weekly_top_tracks.md) |" in index and "daily_track_plays |" in index
