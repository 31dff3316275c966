"""The local stand-in for Cloud KMS: a Tink keyset file created once, atomically, 0600."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dataplatform.adapters.local_kms import LocalKms
from dataplatform.errors import PlatformError
from dataplatform.ports import Kms

ENCRYPT_SCRIPT = """
import sys
from pathlib import Path
from dataplatform.adapters.local_kms import LocalKms
print(LocalKms(Path(sys.argv[1])).encrypt(b"from " + sys.argv[2].encode()).hex())
"""


def test_it_is_a_kms_port(tmp_path: Path) -> None:
    assert isinstance(LocalKms(tmp_path / "k.json"), Kms)


def test_key_uri_names_the_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kms = LocalKms(Path(".dataplatform/k.json"))
    assert kms.key_uri == f"local-kms://{tmp_path}/.dataplatform/k.json"


def test_the_key_file_is_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "k.json"
    kms = LocalKms(path)
    assert not path.exists()
    old_umask = os.umask(0)
    try:
        kms.encrypt(b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keyset = json.loads(path.read_text())
    assert [key["keyData"]["typeUrl"] for key in keyset["key"]] == ["type.googleapis.com/google.crypto.tink.AesGcmKey"]
    assert [p.name for p in path.parent.iterdir()] == ["k.json"]


def test_raw_encryption_round_trips_with_associated_data(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "k.json")
    sealed = kms.encrypt(b"keyset bytes", b"aad")
    assert b"keyset bytes" not in sealed
    assert sealed[0] == 1 and len(sealed) == 5 + 12 + len(b"keyset bytes") + 16  # Tink AES-GCM wire format
    assert kms.decrypt(sealed, b"aad") == b"keyset bytes"
    assert kms.decrypt(kms.encrypt(b"k")) == b"k"


def test_a_second_instance_on_the_same_file_decrypts(tmp_path: Path) -> None:
    sealed = LocalKms(tmp_path / "k.json").encrypt(b"v")
    assert LocalKms(tmp_path / "k.json").decrypt(sealed) == b"v"


@pytest.mark.parametrize("other", ["different file", "different aad"])
def test_decrypt_failure_says_the_key_file_does_not_match(tmp_path: Path, other: str) -> None:
    sealed = LocalKms(tmp_path / "k.json").encrypt(b"v", b"a")
    kms = LocalKms(tmp_path / "other.json") if other == "different file" else LocalKms(tmp_path / "k.json")
    aad = b"a" if other == "different file" else b"b"
    with pytest.raises(PlatformError, match="does not match") as err:
        kms.decrypt(sealed, aad)
    assert str(kms.path) in str(err.value)


def test_a_damaged_key_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text('{"primaryKeyId": 1, "key": []}')
    with pytest.raises(PlatformError, match="is not a Tink AEAD keyset"):
        LocalKms(path).encrypt(b"x")


def test_an_uncreatable_key_file_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(PlatformError, match="cannot create the local KMS key file"):
        LocalKms(blocker / "k.json").encrypt(b"x")


def test_threads_racing_on_first_use_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    sealed: list[bytes] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        sealed.append(LocalKms(path).encrypt(b"v"))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = LocalKms(path)
    assert [reader.decrypt(item) for item in sealed] == [b"v"] * 6
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def test_processes_racing_on_first_use_end_with_one_file(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENCRYPT_SCRIPT, str(path), str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(4)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err for _, err in outputs]
    reader = LocalKms(path)
    assert sorted(reader.decrypt(bytes.fromhex(out.decode().strip())) for out, _ in outputs) == [
        f"from {i}".encode() for i in range(4)
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]
