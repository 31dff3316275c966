"""settings: environment parsing, definitions discovery, lazy wiring, process-wide caching."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dataplatform import settings
from dataplatform.adapters.local_kms import LocalKms
from dataplatform.settings import Runtime, Settings, SettingsError, SystemClock


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "workflows").mkdir()
    return tmp_path


def test_defaults(repo: Path) -> None:
    s = Settings.from_env({}, cwd=repo)
    assert s == Settings(
        project="dataplatform-local",
        definitions=repo,
        state_dir=repo / ".dataplatform",
        kms=f"local:{repo / '.dataplatform' / 'local_kms_keyset.json'}",
        config_bucket="dataplatform-local-config",
        collect_api_keys=(),
        keystore="firestore",
        warehouse=f"duckdb:{repo / '.dataplatform' / 'warehouse.duckdb'}",
        bigquery_location="US",
        firestore_database="(default)",
    )


def test_every_variable(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("defs")
    (other / "schemas").mkdir()
    env = {
        "DATAPLATFORM_PROJECT": "acme-prod",
        "DATAPLATFORM_DEFINITIONS": str(other),
        "DATAPLATFORM_STATE_DIR": "state",
        "DATAPLATFORM_KMS": "projects/acme-prod/locations/eu/keyRings/platform/cryptoKeys/wrapping",
        "DATAPLATFORM_CONFIG_BUCKET": "acme-platform-config",
        "DATAPLATFORM_COLLECT_API_KEYS": " key-a, key-b ,,",
        "DATAPLATFORM_KEYSTORE": "firestore",
        "DATAPLATFORM_WAREHOUSE": "bigquery",
        "DATAPLATFORM_BIGQUERY_LOCATION": "EU",
    }
    s = Settings.from_env(env, cwd=repo)
    assert (s.warehouse, s.bigquery_location) == ("bigquery", "EU")
    assert s.project == "acme-prod"
    assert s.definitions == other
    assert s.state_dir == repo / "state"
    assert s.kms == "projects/acme-prod/locations/eu/keyRings/platform/cryptoKeys/wrapping"
    assert s.config_bucket == "acme-platform-config"
    assert s.collect_api_keys == ("key-a", "key-b")
    assert s.describe()["collect_api_keys"] == 2
    assert "key-a" not in repr(s.describe())


def test_duckdb_warehouse_path_is_made_absolute_and_bad_values_are_named(repo: Path) -> None:
    assert Settings.from_env({"DATAPLATFORM_WAREHOUSE": "duckdb:w.duckdb"}, cwd=repo).warehouse == f"duckdb:{repo / 'w.duckdb'}"
    with pytest.raises(SettingsError, match="DATAPLATFORM_WAREHOUSE must be bigquery or duckdb"):
        Settings.from_env({"DATAPLATFORM_WAREHOUSE": "bigqeury"}, cwd=repo)


def test_api_keys_as_the_deployed_json_list(repo: Path) -> None:
    s = Settings.from_env({"DATAPLATFORM_COLLECT_API_KEYS": '["key-a-0123456789", "key-b-0123456789"]'}, cwd=repo)
    assert s.collect_api_keys == ("key-a-0123456789", "key-b-0123456789")
    with pytest.raises(SettingsError, match="not valid JSON"):
        Settings.from_env({"DATAPLATFORM_COLLECT_API_KEYS": '["key-a'}, cwd=repo)


def test_local_kms_path_is_made_absolute(repo: Path) -> None:
    s = Settings.from_env({"DATAPLATFORM_KMS": "local:keys/kms.json"}, cwd=repo)
    assert s.kms == f"local:{repo / 'keys' / 'kms.json'}"


def test_definitions_are_found_upward_from_the_working_directory(repo: Path) -> None:
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    assert Settings.from_env({}, cwd=deep).definitions == repo


def test_definitions_fall_back_to_the_deployed_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    (source / "definitions" / "schemas").mkdir(parents=True)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.setattr(settings, "FUNCTION_SOURCE", source)
    # cwd without schemas/ anywhere above (tmp dirs live under /tmp, which has none)
    assert Settings.from_env({}, cwd=empty).definitions == source / "definitions"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATAPLATFORM_KMS": "local:"}, "DATAPLATFORM_KMS=local: needs a key file path"),
        ({"DATAPLATFORM_KMS": "gcp-kms://projects/x"}, "DATAPLATFORM_KMS must be local:<key file> or a Cloud KMS key name"),
        ({"DATAPLATFORM_KEYSTORE": "firestor"}, "DATAPLATFORM_KEYSTORE='firestor' is not a key store kind (did you mean 'firestore'?)"),
        ({"DATAPLATFORM_DEFINITIONS": "nowhere"}, "DATAPLATFORM_DEFINITIONS='nowhere':"),
    ],
)
def test_bad_values_name_the_variable(repo: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env, cwd=repo)
    assert str(info.value).startswith(message)


def test_no_definitions_anywhere_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "FUNCTION_SOURCE", tmp_path / "none")
    with pytest.raises(SettingsError, match="set DATAPLATFORM_DEFINITIONS"):
        Settings.from_env({}, cwd=tmp_path)


def test_importing_settings_builds_nothing_and_imports_no_google_client() -> None:
    code = (
        "import sys; before = set(sys.modules); import dataplatform.settings as s; "
        "assert s._RUNTIME is None; "
        "new = [m for m in set(sys.modules) - before if m.startswith(('google', 'grpc', 'tink'))]; "
        "assert not new, new; "
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_runtime_builds_each_piece_once_on_first_use(repo_root: Path, tmp_path: Path) -> None:
    s = Settings.from_env({"DATAPLATFORM_KMS": f"local:{tmp_path / 'kms.json'}"}, cwd=repo_root)
    rt = Runtime(s)
    assert "_built" not in rt.__dict__  # nothing yet

    kms = rt.kms
    assert isinstance(kms, LocalKms) and kms.path == tmp_path / "kms.json"
    assert not (tmp_path / "kms.json").exists()  # the key file is made on first encrypt, not here
    assert rt.kms is kms
    assert isinstance(rt.clock, SystemClock) and rt.clock.now().tzinfo is not None
    assert rt.catalog is rt.catalog
    assert set(rt.codecs) == {schema.key for schema in rt.catalog.schemas}
    assert repr(rt.publisher) == "PubSubPublisher('dataplatform-local')"


def test_runtime_is_thread_safe(repo_root: Path) -> None:
    rt = Runtime(Settings.from_env({}, cwd=repo_root))
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(rt.catalog)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1


def test_a_failed_build_is_retried_next_time(repo_root: Path) -> None:
    rt = Runtime(Settings.from_env({}, cwd=repo_root))
    calls = []

    def flaky() -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return "built"

    with pytest.raises(RuntimeError):
        rt._once("thing", flaky)
    assert rt._once("thing", flaky) == "built"
    assert rt._once("thing", flaky) == "built"
    assert len(calls) == 2


def test_collect_needs_api_keys(repo_root: Path) -> None:
    rt = Runtime(Settings.from_env({}, cwd=repo_root))
    with pytest.raises(SettingsError, match="set DATAPLATFORM_COLLECT_API_KEYS"):
        rt.collect_deps()


def test_process_wide_runtime_is_cached_until_reset(monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> None:
    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("DATAPLATFORM_PROJECT", "first")
    settings.reset_runtime()
    try:
        first = settings.runtime()
        monkeypatch.setenv("DATAPLATFORM_PROJECT", "second")
        assert settings.runtime() is first and first.settings.project == "first"
        settings.reset_runtime()
        assert settings.runtime().settings.project == "second"
    finally:
        settings.reset_runtime()
