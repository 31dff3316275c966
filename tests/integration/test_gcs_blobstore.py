"""The GCS blob store against the real gcp-storage-emulator, and the key hierarchy on top.

Runs the real google-cloud-storage client against the emulator (fixture `gcs_emulator`
from tests/integration/conftest.py, which sets STORAGE_EMULATOR_HOST for the session).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dataplatform.adapters.gcs import GcsBlobStore
from dataplatform.adapters.local_kms import LocalKms
from dataplatform.errors import PlatformError, TransientError
from dataplatform.local.emulators import Emulator, free_port
from dataplatform.ports import BlobStore
from dataplatform.privacy.keys import SECRET_OBJECT, WRAPPING_KEYSET_OBJECT, PlatformKeys, bootstrap

pytestmark = pytest.mark.emulator


def _bucket() -> str:
    return f"cfg-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(gcs_emulator: Emulator) -> GcsBlobStore:
    return GcsBlobStore(_bucket(), create_bucket=True)


def test_it_is_a_blob_store_port(store: GcsBlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_read_of_an_absent_object_is_none(store: GcsBlobStore) -> None:
    assert store.read("keys/nothing.bin") is None


def test_create_is_create_if_absent(store: GcsBlobStore) -> None:
    data = bytes(range(256))
    assert store.create("keys/a.bin", data) is True
    assert store.read("keys/a.bin") == data
    assert store.create("keys/a.bin", b"other") is False
    assert store.read("keys/a.bin") == data


def test_stores_on_the_same_bucket_share_objects(gcs_emulator: Emulator) -> None:
    name = _bucket()
    first = GcsBlobStore(name, create_bucket=True)
    second = GcsBlobStore(name, create_bucket=True)
    assert first.create("x", b"1") is True
    assert second.create("x", b"2") is False
    assert second.read("x") == b"1"


def test_a_missing_bucket_is_not_created_unless_asked(gcs_emulator: Emulator) -> None:
    store = GcsBlobStore(_bucket())
    assert store.read("x") is None
    with pytest.raises(PlatformError, match="does not exist; create it with `pulumi up`"):
        store.create("x", b"1")


def test_an_unreachable_storage_service_is_transient(gcs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    store = GcsBlobStore(_bucket(), create_bucket=True, timeout=1.0)
    with pytest.raises(TransientError, match="retry"):
        store.read("x")


def test_a_bad_bucket_name_is_rejected() -> None:
    with pytest.raises(PlatformError, match="not a bucket name"):
        GcsBlobStore("gs://bucket/path")


def test_the_key_hierarchy_bootstraps_once_on_the_emulator(store: GcsBlobStore, tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "kms.json")
    first = bootstrap(kms, store)
    assert set(first.values()) == {True}
    wrapped = store.read(WRAPPING_KEYSET_OBJECT)

    assert set(bootstrap(kms, store).values()) == {False}
    assert store.read(WRAPPING_KEYSET_OBJECT) == wrapped
    assert len(kms.decrypt(store.read(SECRET_OBJECT) or b"")) == 32

    platform = PlatformKeys.load(LocalKms(tmp_path / "kms.json"), store)
    assert platform.wrapped_wrapping_keyset == wrapped
    assert platform.unwrap_user_keyset(platform.wrap_user_keyset(b"k", "r"), "r") == b"k"
