"""`dataplatform keys bootstrap` and `dataplatform forget USER_ID` (CliRunner, fake stores)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dataplatform.cli  # noqa: F401  (registers every command on `app`)
from dataplatform import settings
from dataplatform.adapters.local_kms import LocalKms
from dataplatform.cli.app import app
from dataplatform.pipeline.forget import ForgetDeps
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import QUARANTINE_KEYSET_OBJECT, SECRET_OBJECT, WRAPPING_KEYSET_OBJECT, PlatformKeys
from tests.fakes import FixedClock, MemoryBlobStore, MemoryKeyStore

runner = CliRunner()


@dataclass
class CliRuntime:
    settings: Any
    kms: LocalKms
    blobs: MemoryBlobStore
    store: MemoryKeyStore

    def forget_deps(self) -> ForgetDeps:
        return ForgetDeps(KeyService(self.store, PlatformKeys.load(self.kms, self.blobs), FixedClock()))


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> Iterator[CliRuntime]:
    stub = CliRuntime(
        settings=settings.Settings.from_env({"DATAPLATFORM_CONFIG_BUCKET": "acme-config"}, cwd=repo_root),
        kms=LocalKms(tmp_path / "kms.json"),
        blobs=MemoryBlobStore(),
        store=MemoryKeyStore(),
    )
    monkeypatch.setattr(settings, "_RUNTIME", stub)
    yield stub


def test_keys_bootstrap_creates_then_reports_present(rt: CliRuntime) -> None:
    first = runner.invoke(app, ["keys", "bootstrap", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {
        "bucket": "acme-config",
        "kms_key_uri": rt.kms.key_uri,
        "objects": {WRAPPING_KEYSET_OBJECT: True, SECRET_OBJECT: True, QUARANTINE_KEYSET_OBJECT: True},
    }
    second = runner.invoke(app, ["keys", "bootstrap"])
    assert second.exit_code == 0
    assert second.stdout.count("already present") == 3


def test_forget_erases_and_prints_only_the_record_id(rt: CliRuntime) -> None:
    runner.invoke(app, ["keys", "bootstrap"])
    record_id = PlatformKeys.load(rt.kms, rt.blobs).record_id("mallory@example.com")
    rt.forget_deps().keys.resolve(["mallory@example.com"])  # type: ignore[attr-defined]  # mint keys

    result = runner.invoke(app, ["forget", "mallory@example.com", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"record_id": record_id, "erased": True}
    assert "mallory" not in result.stdout
    assert rt.store.all()[record_id].erased
    again = runner.invoke(app, ["forget", "mallory@example.com"])
    assert again.exit_code == 0 and "Nothing to erase" in again.stdout


def test_forget_reads_the_user_id_from_stdin(rt: CliRuntime) -> None:
    runner.invoke(app, ["keys", "bootstrap"])
    result = runner.invoke(app, ["forget", "-", "--json"], input="stdin-user\n")
    assert result.exit_code == 0, result.output
    record_id = PlatformKeys.load(rt.kms, rt.blobs).record_id("stdin-user")
    assert json.loads(result.stdout)["record_id"] == record_id


def test_forget_before_bootstrap_says_what_to_run(rt: CliRuntime) -> None:
    result = runner.invoke(app, ["forget", "someone"])
    assert result.exit_code == 1
    assert "dataplatform keys bootstrap" in result.output


def test_forget_with_an_empty_user_id_is_an_error(rt: CliRuntime) -> None:
    runner.invoke(app, ["keys", "bootstrap"])
    result = runner.invoke(app, ["forget", "-"], input="\n")
    assert result.exit_code == 1
    assert "user_id must be a non-empty string" in result.output
