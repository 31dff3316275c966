"""The pipeline's use cases wired in-process for unit tests: the real collect and anonymize
(with the real key hierarchy) over a recording publisher and an in-memory key store.

It lets the generator's expected outcomes and the demo's accounting be checked against
what the platform really does, without emulators or processes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from dataplatform.compile.avro_codec import codec_for
from dataplatform.definitions.models import EventSchema
from dataplatform.pipeline.collect import CollectDeps, collect
from dataplatform.pipeline.failed_events import FailedEvent
from dataplatform.privacy.anonymizer import Anonymizer
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import PlatformKeys
from tests.fakes import FixedClock, MemoryKeyStore
from tests.fixtures.privacy.keys import platform_keys
from tests.functions.recording import API_KEY, RecordingPublisher


@dataclass
class Outcome:
    """What the in-process pipeline did with a stream of posted batches."""

    results: list[dict[str, Any]] = field(default_factory=list)
    """collect's per-event results, in posting order."""
    clean: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    """Clean rows (decoded from their Avro messages) by event key."""
    failed: list[FailedEvent] = field(default_factory=list)


class OfflinePipeline:
    """collect → raw messages → anonymize → clean rows / failed events, in one process."""

    def __init__(self, schemas: Iterable[EventSchema], key_dir: Path, now: datetime) -> None:
        self.schemas = tuple(schemas)
        self.platform: PlatformKeys = platform_keys(key_dir)
        self.clock = FixedClock(now)
        self.publisher = RecordingPublisher()
        self.deps = CollectDeps.create(self.schemas, [API_KEY], self.publisher, self.platform, self.clock)
        self.anonymizer = Anonymizer(
            self.schemas, KeyService(MemoryKeyStore(), self.platform, self.clock), self.platform, self.clock
        )
        self.codecs = {s.key: codec_for(s) for s in self.schemas}

    def post(self, events: Sequence[Any]) -> list[dict[str, Any]]:
        response = collect(orjson.dumps({"events": list(events)}), {"X-Api-Key": API_KEY}, self.deps)
        assert response.status == 200, response.body
        return list(response.body["results"])

    def run(self, batches: Iterable[Sequence[Any]]) -> Outcome:
        outcome = Outcome()
        for batch in batches:
            outcome.results.extend(self.post(batch))
        raw = [topic for topic in self.publisher.published if topic.endswith("-raw")]
        for topic in raw:
            result = self.anonymizer.anonymize(self.publisher.published.pop(topic))
            for key, rows in result.rows.items():
                codec = self.codecs[key]
                # Through Avro, as the clean topic carries them.
                outcome.clean[key].extend(codec.decode(codec.encode(row)) for row in rows)
            outcome.failed.extend(result.failed)
        outcome.failed.extend(self.publisher.failed_events())
        self.publisher.published.clear()
        return outcome


class LoadingService:
    """A collect endpoint on loopback HTTP whose batches go straight through anonymize into a
    warehouse — the local stack's data flow in one process, for the demo's unit tests.

    Every request is handled completely (collect, anonymize, Avro round trip, insert with
    the BigQuery-subscription metadata columns) before it is answered; `hold` makes the
    loading wait until released, to test waiting for the pipeline.
    """

    def __init__(self, pipeline: OfflinePipeline, warehouse: Any) -> None:
        import http.server
        import threading

        self.pipeline = pipeline
        self.warehouse = warehouse
        self.lock = threading.Lock()
        self.held: list[Outcome] = []
        self.hold = False
        self.requests = 0
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with service.lock:
                    response = collect(body, dict(self.headers), service.pipeline.deps)
                    service.requests += 1
                    outcome = service.pipeline.run([])
                    if service.hold:
                        service.held.append(outcome)
                    else:
                        service.load(outcome)
                data, status, headers = response.to_flask()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def load(self, outcome: Outcome) -> None:
        now = self.pipeline.clock.now()
        meta = {"message_id": "m-1", "publish_time": now, "subscription_name": "projects/p/subscriptions/s", "attributes": None}
        for key, rows in outcome.clean.items():
            schema = next(s for s in self.pipeline.schemas if s.key == key)
            self.warehouse.insert_rows(schema.table_ref, [{**row, **meta} for row in rows])
        if outcome.failed:
            self.warehouse.insert_rows("platform.failed_events", [{**f.to_record(), **meta} for f in outcome.failed])

    def release(self) -> None:
        with self.lock:
            self.hold = False
            for outcome in self.held:
                self.load(outcome)
            self.held.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class JsonQuerier:
    """The runtime's /query answer shape without HTTP: rows through the same JSON encoding."""

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse
        self.queries = 0

    def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        from dataplatform.local.runtime import dumps

        self.queries += 1
        return list(orjson.loads(dumps(self.warehouse.query(sql, params))))
