"""The functions archive: deterministic bytes, so its content-hash name is stable across runs."""

from __future__ import annotations

import io
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from dataplatform.errors import PlatformError
from infra.archive import FIXED_TIME, build_archive, build_bytes

from .conftest import REPO_ROOT


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "functions", root / "functions", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO_ROOT / "schemas", root / "schemas")
    shutil.copytree(REPO_ROOT / "workflows", root / "workflows")
    return root


def test_name_is_stable_across_runs_and_file_times(source: Path, tmp_path: Path):
    first = build_archive(source, tmp_path / "out1")
    later = time.time() + 3600
    for path in source.rglob("*"):
        os.utime(path, (later, later))
    second = build_archive(source, tmp_path / "out2")
    assert first.object_name == second.object_name
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.object_name == f"functions-{first.sha256[:16]}.zip"


def test_entries_are_sorted_with_fixed_times_and_no_build_debris(source: Path):
    (source / "functions" / "dataplatform" / "__pycache__").mkdir(exist_ok=True)
    (source / "functions" / "dataplatform" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (source / "functions" / "dataplatform" / "stray.pyc").write_bytes(b"\0")
    (source / "functions" / "dataplatform.egg-info").mkdir()
    (source / "functions" / "dataplatform.egg-info" / "PKG-INFO").write_text("x")
    (source / "functions" / ".DS_Store").write_text("x")
    data, names = build_bytes(source)
    assert list(names) == sorted(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") or "egg-info" in n or "/." in f"/{n}" for n in names)
    assert "dataplatform/definitions/models.py" in names  # functions/ at the zip root
    assert "schemas/track_played.yaml" in names and "workflows/daily_track_plays.sql" in names
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert {info.date_time for info in archive.infolist()} == {FIXED_TIME}
    assert {info.external_attr >> 16 for info in archive.infolist()} == {0o644}


def test_a_changed_file_changes_the_name(source: Path, tmp_path: Path):
    before = build_archive(source, tmp_path / "a")
    models = source / "functions" / "dataplatform" / "definitions" / "models.py"
    models.write_text(models.read_text() + "\n# changed\n")
    after = build_archive(source, tmp_path / "b")
    assert before.object_name != after.object_name


def test_a_changed_schema_changes_the_name(source: Path, tmp_path: Path):
    before = build_archive(source, tmp_path / "a")
    schema = source / "schemas" / "track_played.yaml"
    schema.write_text(schema.read_text().replace("A listener played", "A listener played back"))
    assert build_archive(source, tmp_path / "b").object_name != before.object_name


def test_a_root_without_function_source_is_refused(tmp_path: Path):
    with pytest.raises(PlatformError, match="holds no function source"):
        build_archive(tmp_path)
