"""Push delivery end to end on the emulators: raw topic → push → anonymize (a real
functions-framework server running functions/main.py) → Avro on the clean topic; redelivery
after a 5xx; dead-lettering after N failed attempts.

The function server runs as its own process (own process group, stopped at the end), with
the same environment the local stack gives it: emulator hosts, project, definitions, a
local KMS key file and a config bucket on the GCS emulator. Every wait has a deadline.
"""

from __future__ import annotations

import http.client
import http.server
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from dataplatform.adapters.gcs import GcsBlobStore
from dataplatform.adapters.local_kms import LocalKms
from dataplatform.adapters.pubsub import PubSubAdmin, PubSubPublisher, ReceivedMessage, RetrySettings
from dataplatform.compile.avro_codec import codec_for
from dataplatform.local.emulators import Emulator, free_port, log_tail, stop_group
from dataplatform.pipeline import raw_batch as raw_batches
from dataplatform.pipeline.failed_events import FailedEvent
from dataplatform.ports import Message
from dataplatform.privacy.keys import bootstrap

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
FAST_RETRY = RetrySettings(min_backoff_seconds=1, max_backoff_seconds=2)
START_TIMEOUT_S = 60.0
DELIVERY_TIMEOUT_S = 90.0


@dataclass
class FunctionServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def start_function(target: str, signature_type: str, env: dict[str, str], log: Path) -> FunctionServer:
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--target", target, "--signature-type", signature_type,
        "--source", str(REPO / "functions" / "main.py"),
        "--host", "127.0.0.1", "--port", str(port),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_group(process.pid, grace=2.0, leader=process)
            raise AssertionError(f"functions-framework did not start on {port}:\n{log_tail(log)}")
        time.sleep(0.1)
    return FunctionServer(f"http://127.0.0.1:{port}/", process, log)


def function_env(
    emulator_project: str, pubsub: Emulator, firestore: Emulator, gcs: Emulator, state: Path, bucket: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPLATFORM_")}
    env.update(pubsub.env)
    env.update(firestore.env)
    env.update(gcs.env)
    env.update(
        {
            "DATAPLATFORM_PROJECT": emulator_project,
            "DATAPLATFORM_DEFINITIONS": str(REPO),
            "DATAPLATFORM_STATE_DIR": str(state),
            "DATAPLATFORM_KMS": f"local:{state / 'local_kms_keyset.json'}",
            "DATAPLATFORM_CONFIG_BUCKET": bucket,
            "WORKERS": "1",
            "THREADS": "4",
        }
    )
    return env


def bootstrap_keys(state: Path, bucket: str, project: str) -> None:
    bootstrap(LocalKms(state / "local_kms_keyset.json"), GcsBlobStore(bucket, project=project, create_bucket=True))


@pytest.fixture(scope="module")
def stack(
    pubsub_emulator: Emulator,
    firestore_emulator: Emulator,
    gcs_emulator: Emulator,
    emulator_project: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Emulators + bootstrapped keys + one anonymize function server."""
    state = tmp_path_factory.mktemp("push-state")
    bucket = f"config-{uuid.uuid4().hex[:8]}"
    bootstrap_keys(state, bucket, emulator_project)
    env = function_env(emulator_project, pubsub_emulator, firestore_emulator, gcs_emulator, state, bucket)
    server = start_function("anonymize", "cloudevent", env, state / "anonymize.log")
    admin = PubSubAdmin(emulator_project)
    publisher = PubSubPublisher(emulator_project)
    try:
        yield {"server": server, "admin": admin, "publisher": publisher, "env": env, "state": state}
    finally:
        publisher.close()
        admin.close()
        stop_group(server.process.pid, grace=5.0, leader=server.process)


def play(event_id: str, user: str = "listener-1", **payload: Any) -> dict[str, Any]:
    body = {
        "user_id": user,
        "track_id": "t-1",
        "artist_id": "a-1",
        "ms_played": 31_000,
        "track_duration_ms": 200_000,
        "skipped": False,
        "context": {"device": {"id": "device-1"}, "ip": "10.1.2.3", "location": {"lat": 59.33, "lon": 18.06}},
    }
    body.update(payload)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    return {"event_id": event_id, "event_type": "track_played", "schema_version": 1, "event_time": now, "payload": body}


def raw_batch(*events: Any) -> Message:
    """What collect publishes: the envelope, zstd-compressed, with its attributes."""
    received = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data, encoding = raw_batches.encode(received, list(events))
    return Message(data, {"event_type": "track_played_v1", "batch_id": "b", **encoding})


def pull_until(admin: PubSubAdmin, subscription: str, wanted: Any, deadline_s: float = DELIVERY_TIMEOUT_S) -> list[ReceivedMessage]:
    """Pull (and ack) until `wanted(messages)` is true or the deadline passes."""
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + deadline_s
    while not wanted(got) and time.monotonic() < deadline:
        batch = admin.pull(subscription, max_messages=100, timeout=2.0)
        if batch:
            admin.ack(subscription, [m.ack_id for m in batch])
            got.extend(batch)
    return got


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_raw_batch_is_pushed_to_the_function_and_ends_as_avro_on_the_clean_topic(stack: dict[str, Any], catalog: Any) -> None:
    admin: PubSubAdmin = stack["admin"]
    server: FunctionServer = stack["server"]
    raw_topic, push_sub = unique("track_played_v1-raw"), unique("anonymize-push")
    clean_sub, failed_sub = unique("clean-sink"), unique("failed-sink")
    for topic in (raw_topic, "track_played_v1", "failed-events"):
        admin.ensure_topic(topic)
    admin.ensure_pull_subscription(clean_sub, "track_played_v1")
    admin.ensure_pull_subscription(failed_sub, "failed-events")
    admin.ensure_push_subscription(
        push_sub, raw_topic, server.url, dead_letter_topic=unique("dead"), max_delivery_attempts=5, retry=FAST_RETRY
    )
    tag = uuid.uuid4().hex[:6]
    events = [play(f"{tag}-1"), play(f"{tag}-2", user="listener-2"), play(f"{tag}-3", ms_played="lots")]

    stack["publisher"].publish(raw_topic, [raw_batch(*events)])

    clean = pull_until(admin, clean_sub, lambda got: len(got) >= 2)
    codec = codec_for(catalog.schema("track_played"))
    rows = sorted((codec.decode(m.data) for m in clean), key=lambda r: r["event_id"])
    assert [r["event_id"] for r in rows] == [f"{tag}-1", f"{tag}-2"], server.log_text()
    assert rows[0]["context"]["ip"] == "10.1.2.0"
    assert isinstance(rows[0]["context"]["location"]["lat"], bytes)
    assert rows[0]["user_pseudonym"] != rows[1]["user_pseudonym"]
    assert rows[0]["event_time"].tzinfo is not None
    assert all(m.attributes.get("raw_message_id") for m in clean)

    failed = [FailedEvent.from_json_bytes(m.data) for m in pull_until(admin, failed_sub, lambda got: len(got) >= 1)]
    assert [(f.event_id, f.reason, f.stage) for f in failed] == [(f"{tag}-3", "schema_violation", "anonymize")]
    assert b"listener" not in b"".join(m.data for m in clean)


def test_a_5xx_from_the_function_is_redelivered_until_it_succeeds(
    pubsub_emulator: Emulator,
    firestore_emulator: Emulator,
    gcs_emulator: Emulator,
    emulator_project: str,
    stack: dict[str, Any],
    tmp_path: Path,
    catalog: Any,
) -> None:
    """A function deployed before `keys bootstrap` fails (500); after the bootstrap, Pub/Sub's
    redelivery of the same message succeeds — nothing is lost on the way."""
    admin: PubSubAdmin = stack["admin"]
    bucket = f"late-{uuid.uuid4().hex[:8]}"
    env = function_env(emulator_project, pubsub_emulator, firestore_emulator, gcs_emulator, tmp_path, bucket)
    server = start_function("anonymize", "cloudevent", env, tmp_path / "anonymize.log")
    try:
        raw_topic, push_sub, clean_sub = unique("track_played_v1-raw"), unique("late-push"), unique("late-sink")
        admin.ensure_topic(raw_topic)
        admin.ensure_topic("track_played_v1")
        admin.ensure_topic("failed-events")
        admin.ensure_pull_subscription(clean_sub, "track_played_v1")
        admin.ensure_push_subscription(push_sub, raw_topic, server.url, retry=FAST_RETRY)
        tag = uuid.uuid4().hex[:6]
        stack["publisher"].publish(raw_topic, [raw_batch(play(f"{tag}-late"))])

        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while "keys bootstrap" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "keys bootstrap" in server.log_text(), "the first delivery did not fail as expected"
        assert admin.pull(clean_sub, timeout=1.0) == []

        bootstrap_keys(tmp_path, bucket, emulator_project)

        clean = pull_until(admin, clean_sub, lambda got: any(f"{tag}-late".encode() in m.data for m in got))
        codec = codec_for(catalog.schema("track_played"))
        assert [codec.decode(m.data)["event_id"] for m in clean] == [f"{tag}-late"], server.log_text()
    finally:
        stop_group(server.process.pid, grace=5.0, leader=server.process)


class _AlwaysFails(http.server.BaseHTTPRequestHandler):
    hits: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 — http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        type(self).hits.append(orjson.loads(self.rfile.read(length)))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_a_message_that_always_fails_is_dead_lettered_after_max_attempts(stack: dict[str, Any]) -> None:
    admin: PubSubAdmin = stack["admin"]
    _AlwaysFails.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysFails)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        raw_topic, push_sub = unique("doomed-raw"), unique("doomed-push")
        dead_topic, dead_sub = unique("doomed-dead-letter"), unique("doomed-drain")
        admin.ensure_topic(raw_topic)
        admin.ensure_topic(dead_topic)
        admin.ensure_pull_subscription(dead_sub, dead_topic)
        admin.ensure_push_subscription(
            push_sub, raw_topic, f"http://127.0.0.1:{server.server_port}/",
            dead_letter_topic=dead_topic, max_delivery_attempts=5, retry=FAST_RETRY,
        )
        (sent_id,) = stack["publisher"].publish(raw_topic, [Message(b"cannot be processed", {"event_type": "x_v1"})])

        dead = pull_until(admin, dead_sub, lambda got: len(got) >= 1)

        assert len(dead) == 1
        assert dead[0].data == b"cannot be processed"
        assert dead[0].attributes["event_type"] == "x_v1"
        assert dead[0].attributes.get("CloudPubSubDeadLetterSourceDeliveryCount") == "5"
        assert len(_AlwaysFails.hits) == 5
        assert {hit["message"]["messageId"] for hit in _AlwaysFails.hits} == {sent_id}
        assert all(hit["subscription"].endswith(f"/subscriptions/{push_sub}") for hit in _AlwaysFails.hits)
    finally:
        server.shutdown()
        server.server_close()
