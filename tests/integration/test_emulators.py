"""The emulators start, answer the real Google client libraries, and stop without leftovers."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from dataplatform.errors import PlatformError
from dataplatform.local import emulators
from dataplatform.local.emulators import Emulator, EmulatorMissing

pytestmark = pytest.mark.emulator


def test_pubsub_emulator_publish_and_pull(pubsub_emulator: Emulator, emulator_project: str) -> None:
    from google.cloud import pubsub_v1

    assert os.environ["PUBSUB_EMULATOR_HOST"] == pubsub_emulator.host_port
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    name = f"t-{uuid.uuid4().hex[:12]}"
    topic = publisher.topic_path(emulator_project, name)
    subscription = subscriber.subscription_path(emulator_project, name)
    publisher.create_topic(name=topic, timeout=10)
    subscriber.create_subscription(name=subscription, topic=topic, timeout=10)

    publisher.publish(topic, b"hello", kind="greeting").result(timeout=10)

    response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
    assert [m.message.data for m in response.received_messages] == [b"hello"]
    assert response.received_messages[0].message.attributes["kind"] == "greeting"
    subscriber.acknowledge(
        subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
    )


def test_firestore_emulator_write_and_read(
    firestore_emulator: Emulator, emulator_project: str
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    assert os.environ["FIRESTORE_EMULATOR_HOST"] == firestore_emulator.host_port
    client = firestore.Client(project=emulator_project, credentials=AnonymousCredentials())
    doc = client.collection("emulator_smoke").document(uuid.uuid4().hex)
    doc.set({"n": 1, "blob": b"\x00\xff"})
    snapshot = doc.get()
    assert snapshot.exists and snapshot.to_dict() == {"n": 1, "blob": b"\x00\xff"}


def test_gcs_emulator_bucket_and_blob(gcs_emulator: Emulator, emulator_project: str) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator.url
    client = storage.Client(project=emulator_project, credentials=AnonymousCredentials())
    bucket = client.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    bucket.blob("keys/x.bin").upload_from_string(b"\x01\x02")
    assert client.bucket(bucket.name).blob("keys/x.bin").download_as_bytes() == b"\x01\x02"


@pytest.mark.parametrize("start", ["pubsub", "firestore", "gcs"])
def test_stop_leaves_no_process_of_the_group(start: str, tmp_path: Path) -> None:
    emulator = getattr(emulators, f"start_{start}")(tmp_path)
    try:
        assert emulator.pgid == emulator.pid
        assert emulators.group_members(emulator.pgid), "the emulator group should be running"
        assert emulator.started_in > 0
    finally:
        emulator.stop()
    assert emulators.group_members(emulator.pgid) == []
    assert not emulator.alive()
    # the wrapper's Java grandchild is gone too: nothing in /proc still claims the group
    leftovers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            rest = stat[stat.rfind(")") + 2 :].split()
            if int(rest[2]) == emulator.pgid and rest[0] not in ("Z", "X"):
                leftovers.append(entry.name)
    assert leftovers == []


def test_stop_group_of_a_recorded_pgid(tmp_path: Path) -> None:
    """`local down` stops from a recorded pgid, without the Popen handle."""
    emulator = emulators.start_gcs(tmp_path)
    record = emulator.record()
    emulators.stop_group(int(record["pgid"]))  # type: ignore[arg-type]
    assert emulators.group_members(emulator.pgid) == []
    emulator.process.wait(timeout=5)  # type: ignore[union-attr]  # reap in this test


def test_fixed_port_already_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PlatformError, match=f"port {port} on 127.0.0.1 is already in use"):
            emulators.start_gcs(tmp_path, port=port)


def test_start_timeout_reports_the_log_tail(tmp_path: Path) -> None:
    """A process that never answers HTTP: bounded wait, error with its log, group stopped."""
    script = tmp_path / "silent-emulator"
    script.write_text("#!/bin/sh\necho 'booting slowly' \nexec sleep 30\n")
    script.chmod(0o755)
    with pytest.raises(emulators.EmulatorStartError) as caught:
        emulators.start_gcs(tmp_path, binary=script, timeout=1.0)
    message = str(caught.value)
    assert "did not answer" in message and "booting slowly" in message
    assert "gcs.log" in message


def test_early_exit_reports_the_log_tail(tmp_path: Path) -> None:
    script = tmp_path / "broken-emulator"
    script.write_text("#!/bin/sh\necho 'cannot bind: boom' >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(emulators.EmulatorExited, match=r"exited with code 3[\s\S]*cannot bind"):
        emulators.start_gcs(tmp_path, binary=script, port=emulators.free_port())


@pytest.mark.parametrize(
    ("start", "kwargs", "component", "hint"),
    [
        ("pubsub", {"binary": "/nonexistent/cloud-pubsub-emulator"}, "Pub/Sub emulator",
         "apt-get install google-cloud-cli-pubsub-emulator"),
        ("pubsub", {"java": "/nonexistent/java"}, "Java", "apt-get install openjdk"),
        ("firestore", {"gcloud": "/nonexistent/gcloud"}, "Google Cloud CLI",
         "install"),
        ("firestore", {"java": "/nonexistent/java"}, "Java", "apt-get install openjdk"),
        ("gcs", {"binary": "/nonexistent/gcp-storage-emulator"}, "gcp-storage-emulator",
         "pip install gcp-storage-emulator"),
    ],
)
def test_missing_component_is_one_clear_line(
    start: str, kwargs: dict[str, str], component: str, hint: str, tmp_path: Path
) -> None:
    with pytest.raises(EmulatorMissing) as caught:
        getattr(emulators, f"start_{start}")(tmp_path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{component} not found (/nonexistent/")
    assert hint in message
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_missing_firestore_component(tmp_path: Path) -> None:
    """A gcloud without the Firestore emulator component (an SDK root without the jar)."""
    fake_sdk = tmp_path / "google-cloud-sdk" / "bin"
    fake_sdk.mkdir(parents=True)
    gcloud = fake_sdk / "gcloud"
    gcloud.write_text("#!/bin/sh\nexit 1\n")
    gcloud.chmod(0o755)
    with pytest.raises(EmulatorMissing) as caught:
        emulators.start_firestore(tmp_path / "state", gcloud=gcloud)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Firestore emulator component not found")
    assert "gcloud components install cloud-firestore-emulator" in message


def test_env_override_points_to_missing_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAPLATFORM_GCS_EMULATOR", "/nonexistent/override")
    expected = r"^gcp-storage-emulator not found \(/nonexistent/override\)"
    with pytest.raises(EmulatorMissing, match=expected):
        emulators.start_gcs(tmp_path)


def test_refuses_to_signal_init_or_own_group() -> None:
    with pytest.raises(PlatformError, match="refusing"):
        emulators.stop_group(1)
    with pytest.raises(PlatformError, match="refusing"):
        emulators.stop_group(os.getpgrp())
