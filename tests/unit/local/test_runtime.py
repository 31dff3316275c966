"""The local runtime's sinks and HTTP API, with a scripted subscriber and a real DuckDB warehouse.

What must hold: rows land with the BigQuery-subscription metadata; messages are acked only
after their insert, nacked when it fails; what cannot be loaded becomes a failed event
(never retried forever, never lost); dead-lettered raw batches become one failed event per
event; the pull size adapts to the client's response limit; /query and /status answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
from dataplatform.adapters.pubsub import ReceivedMessage
from dataplatform.compile.avro_codec import codec_for
from dataplatform.errors import PlatformError, TransientError
from dataplatform.local.runtime import (
    ACTIVE_SECONDS,
    DEAD_LETTERED,
    FULL_PULL,
    DeadLetterRows,
    EventRows,
    FailedRows,
    LocalRuntime,
    RuntimeClient,
    Sink,
    make_handler,
)
from dataplatform.local.topology import plan_topology
from dataplatform.pipeline import raw_batch
from dataplatform.pipeline.demo import sink_rows
from dataplatform.pipeline.generator import EventGenerator
from dataplatform.pipeline.warehouse_setup import ensure_warehouse
from dataplatform.privacy.keys import PlatformKeys
from tests.fixtures.privacy.keys import platform_keys
from tests.unit.local.offline import OfflinePipeline

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
PATH = "projects/p/subscriptions/track_played_v1-bq"


class ScriptedSubscriber:
    """Pull returns queued messages (at most `max_messages`); errors can be scripted."""

    project = "p"

    def __init__(self) -> None:
        self.queues: dict[str, list[ReceivedMessage]] = {}
        self.acked: list[str] = []
        self.nacked: list[str] = []
        self.pull_sizes: list[int] = []
        self.waits: list[bool] = []
        self.errors: list[BaseException] = []
        self.max_response = 10**9
        self.hands_out = 10**9
        """At most this many messages a response, whatever was asked (the emulator's is 100)."""

    def put(self, subscription: str, messages: Sequence[ReceivedMessage]) -> None:
        self.queues.setdefault(subscription, []).extend(messages)

    def pull(
        self, subscription: str, max_messages: int = 1000, timeout: float = 5.0, *, wait: bool = True
    ) -> list[ReceivedMessage]:
        self.pull_sizes.append(max_messages)
        self.waits.append(wait)
        if self.errors:
            raise self.errors.pop(0)
        queue = self.queues.get(subscription, [])
        if max_messages > self.max_response:
            raise TransientError(f"Pub/Sub unavailable while pulling from {subscription!r}: ResourceExhausted; retry later")
        count = min(max_messages, self.hands_out)
        taken, self.queues[subscription] = queue[:count], queue[count:]
        return taken

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        self.acked.extend(ack_ids)

    def nack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        self.nacked.extend(ack_ids)


def received(data: bytes, n: int, attributes: dict[str, str] | None = None) -> ReceivedMessage:
    return ReceivedMessage(
        ack_id=f"ack-{n}", message_id=str(1000 + n), data=data, attributes=attributes or {"raw_message_id": "7"},
        publish_micros=(NOW - EPOCH) // timedelta(microseconds=1) + (n % 60) * 1_000_000, delivery_attempt=1,
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return platform_keys(tmp_path_factory.mktemp("runtime-keys"))


@pytest.fixture
def warehouse(catalog: Any) -> Iterator[DuckDBWarehouse]:
    with DuckDBWarehouse() as warehouse:
        ensure_warehouse(warehouse, catalog)
        yield warehouse


@pytest.fixture(scope="module")
def outcome(catalog: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    events = EventGenerator(catalog.schemas, run_id="rt", invalid_share=0.3, duplicate_share=0.0, now=NOW).generate(400)
    pipeline = OfflinePipeline(catalog.schemas, tmp_path_factory.mktemp("rt"), NOW + timedelta(seconds=2))
    return pipeline.run([[e.event for e in events]])


def clean_messages(catalog: Any, outcome: Any, key: str = "track_played_v1") -> list[ReceivedMessage]:
    codec = codec_for(catalog.schema(key.rsplit("_v", 1)[0]))
    return [received(codec.encode(row), i) for i, row in enumerate(outcome.clean[key])]


def event_sink(catalog: Any, subscriber: ScriptedSubscriber, writer: Any, platform: PlatformKeys, **kwargs: Any) -> Sink:
    plan = plan_topology(catalog.schemas, None).sink("track_played_v1-bq")
    codec = codec_for(catalog.schema("track_played"))
    return Sink(plan, subscriber, writer, EventRows("track_played_v1", codec, PATH, platform), lambda: NOW, platform, **kwargs)


class CountingWriter:
    """Records the size of every insert."""

    def __init__(self) -> None:
        self.inserts: list[int] = []

    def insert_rows(self, table_ref: str, rows: Sequence[Any]) -> int:
        self.inserts.append(len(rows))
        return len(rows)

    def insert_columns(self, table_ref: str, columns: Any, count: int) -> int:
        self.inserts.append(count)
        return count


# --------------------------------------------------------------------------- event sink


def test_clean_messages_are_inserted_with_metadata_then_acked(catalog: Any, outcome: Any, warehouse: DuckDBWarehouse, platform: PlatformKeys) -> None:
    messages = clean_messages(catalog, outcome)
    subscriber = ScriptedSubscriber()
    subscriber.put("track_played_v1-bq", messages)
    sink = event_sink(catalog, subscriber, warehouse, platform)

    assert sink.load_once() == len(messages)

    assert sorted(subscriber.acked) == sorted(m.ack_id for m in messages)
    rows = warehouse.query(
        "SELECT event_id, message_id, publish_time, subscription_name, attributes FROM events.track_played_v1 ORDER BY message_id"
    )
    assert len(rows) == len(messages)
    first = min(messages, key=lambda m: m.message_id)
    assert rows[0]["message_id"] == first.message_id and rows[0]["publish_time"] == first.publish_time
    assert rows[0]["subscription_name"] == PATH and orjson.loads(rows[0]["attributes"]) == {"raw_message_id": "7"}
    stats = sink.stats.snapshot()
    assert stats["messages"] == stats["rows"] == len(messages) and stats["errors"] == 0


def test_columnar_and_row_conversion_load_the_same_table(catalog: Any, outcome: Any, platform: PlatformKeys) -> None:
    class RowsOnly:
        """The codec without `decode_values`: EventRows falls back to a dict per row."""

        def __init__(self) -> None:
            self.decode = codec_for(catalog.schema("track_played")).decode

    tables = []
    for codec in (codec_for(catalog.schema("track_played")), RowsOnly()):
        with DuckDBWarehouse() as warehouse:
            ensure_warehouse(warehouse, catalog)
            subscriber = ScriptedSubscriber()
            subscriber.put("track_played_v1-bq", [*clean_messages(catalog, outcome), received(b"\x02 not avro", 999)])
            plan = plan_topology(catalog.schemas, None).sink("track_played_v1-bq")
            Sink(plan, subscriber, warehouse, EventRows("track_played_v1", codec, PATH, platform), lambda: NOW, platform).load_once()
            tables.append(
                (
                    warehouse.query("SELECT * FROM events.track_played_v1 ORDER BY message_id"),
                    warehouse.query("SELECT event_type, stage, detail FROM platform.failed_events"),
                )
            )
    assert tables[0] == tables[1] and len(tables[0][0]) == len(outcome.clean["track_played_v1"]) and len(tables[0][1]) == 1


def test_a_backlog_is_gathered_into_one_insert(catalog: Any, outcome: Any, platform: PlatformKeys) -> None:
    messages = clean_messages(catalog, outcome)
    subscriber = ScriptedSubscriber()
    subscriber.put("track_played_v1-bq", messages)
    writer = CountingWriter()
    sink = event_sink(catalog, subscriber, writer, platform, max_messages=10, batch_messages=50)
    sink.load_once()
    assert writer.inserts == [50] and subscriber.pull_sizes[:3] == [10, 10, 10]


def test_a_backlog_handed_out_100_a_pull_is_still_gathered(catalog: Any, outcome: Any, platform: PlatformKeys) -> None:
    """The emulator answers a pull of 1,000 with 100 messages: that is a backlog, not its end."""
    data = [m.data for m in clean_messages(catalog, outcome)]
    messages = [received(data[i % len(data)], i) for i in range(250)]
    subscriber = ScriptedSubscriber()
    subscriber.hands_out = FULL_PULL
    subscriber.put("track_played_v1-bq", messages)
    writer = CountingWriter()
    sink = event_sink(catalog, subscriber, writer, platform, max_messages=1000, batch_messages=5000, min_batch=250)
    assert sink.load_once() == 250
    assert writer.inserts == [250] and subscriber.pull_sizes == [1000, 1000, 1000]
    assert sink.stats.snapshot()["pulls"] == 3


class FakeTime:
    """`timer` and `sleep` for a sink: sleeping moves the clock; a pull takes `pull_cost`."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def timer(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_an_idle_sink_waits_on_the_server_and_an_active_one_does_not(catalog: Any, outcome: Any, platform: PlatformKeys) -> None:
    time_ = FakeTime()
    subscriber = ScriptedSubscriber()
    sink = event_sink(catalog, subscriber, CountingWriter(), platform, timer=time_.timer, sleep=time_.sleep)
    assert sink.load_once() == 0  # idle: one waiting pull, nothing came, no pause of its own
    assert subscriber.waits == [True] and time_.sleeps == []
    assert (sink.stats.snapshot()["pulls"], sink.stats.snapshot()["empty_pulls"]) == (0, 1)
    subscriber.put("track_played_v1-bq", clean_messages(catalog, outcome)[:5])
    assert sink.load_once() == 5
    assert subscriber.waits[1] is True and set(subscriber.waits[2:]) == {False}  # then it paces itself
    waits_before = len(subscriber.waits)
    time_.now += ACTIVE_SECONDS + 0.1
    assert sink.load_once() == 0
    assert subscriber.waits[waits_before:] == [True]  # idle again after ACTIVE_SECONDS


def test_a_trickle_is_gathered_into_a_bigger_batch_within_the_window(catalog: Any, outcome: Any, platform: PlatformKeys) -> None:
    data = [m.data for m in clean_messages(catalog, outcome)]
    time_ = FakeTime()
    subscriber = ScriptedSubscriber()
    subscriber.hands_out = 7  # a trickle: 7 messages a pull
    subscriber.put("track_played_v1-bq", [received(data[i % len(data)], i) for i in range(500)])
    writer = CountingWriter()
    sink = event_sink(
        catalog, subscriber, writer, platform, min_batch=50, gather_seconds=1.0, poll_pause=0.0625,
        timer=time_.timer, sleep=time_.sleep,
    )
    assert sink.load_once() == 56  # 7 a pull, pausing between pulls, until min_batch (50) is passed
    assert writer.inserts == [56] and time_.sleeps == [0.0625] * 7
    sink.min_batch, sink.gather_seconds = 1000, 0.25
    start = time_.now
    sink.load_once()  # the window closes first: 0.25 s after the batch's first message
    assert writer.inserts[1] == 35 and time_.now - start == 0.25  # pulls at 0, 1/16, ... 4/16 s


def test_a_backlog_is_pulled_without_pausing(catalog: Any, outcome: Any, platform: PlatformKeys) -> None:
    data = [m.data for m in clean_messages(catalog, outcome)]
    time_ = FakeTime()
    subscriber = ScriptedSubscriber()
    subscriber.hands_out = FULL_PULL
    subscriber.put("track_played_v1-bq", [received(data[i % len(data)], i) for i in range(1200)])
    writer = CountingWriter()
    sink = event_sink(catalog, subscriber, writer, platform, timer=time_.timer, sleep=time_.sleep)
    assert sink.load_once() == 1200 and time_.sleeps == []  # full pulls, then one empty: the backlog is drained
    assert subscriber.waits == [True] + [False] * 12
    assert (sink.stats.snapshot()["pulls"], sink.stats.snapshot()["empty_pulls"]) == (12, 1)


def test_a_failed_insert_nacks_the_batch_for_redelivery(catalog: Any, outcome: Any, platform: PlatformKeys) -> None:
    class BrokenWriter:
        def insert_rows(self, table_ref: str, rows: Sequence[Any]) -> int:
            raise PlatformError("inserting into events.track_played_v1 failed on the local DuckDB warehouse: disk full")

        def insert_columns(self, table_ref: str, columns: Any, count: int) -> int:
            return self.insert_rows(table_ref, [])

    messages = clean_messages(catalog, outcome)[:5]
    subscriber = ScriptedSubscriber()
    subscriber.put("track_played_v1-bq", messages)
    sink = event_sink(catalog, subscriber, BrokenWriter(), platform)
    with pytest.raises(PlatformError, match="disk full"):
        sink.load_once()
    assert subscriber.acked == [] and sorted(subscriber.nacked) == sorted(m.ack_id for m in messages)
    assert sink.stats.snapshot()["errors"] == 1 and "disk full" in sink.stats.snapshot()["last_error"]


def test_an_undecodable_message_becomes_a_failed_event_and_is_acked(
    catalog: Any, outcome: Any, warehouse: DuckDBWarehouse, platform: PlatformKeys
) -> None:
    messages = [*clean_messages(catalog, outcome)[:3], received(b"\x02\x03not avro", 99)]
    subscriber = ScriptedSubscriber()
    subscriber.put("track_played_v1-bq", messages)
    event_sink(catalog, subscriber, warehouse, platform).load_once()

    assert len(subscriber.acked) == 4
    assert warehouse.row_count("events.track_played_v1") == 3
    (failed,) = warehouse.query("SELECT * FROM platform.failed_events")
    assert failed["reason"] == DEAD_LETTERED and failed["stage"] == "load" and failed["event_type"] == "track_played"
    assert "message 1099 on projects/p/subscriptions/track_played_v1-bq could not be loaded" in failed["detail"]
    assert platform.quarantine_decrypt(failed["payload_ciphertext"], "") == b"\x02\x03not avro"


class Tampering:
    """Decodes, then breaks the row of the `nth` message (by its event id, so decoding the
    same messages again breaks the same row) the way a buggy producer would — through both
    the row and the columnar decoder."""

    def __init__(self, catalog: Any, messages: Sequence[ReceivedMessage], *, nth: int, column: str, value: Any) -> None:
        self.codec = codec_for(catalog.schema("track_played"))
        self.target = self.codec.decode(messages[nth - 1].data)["event_id"]
        self.columns = self.codec.columns
        self.column, self.value = column, value

    def decode(self, data: bytes) -> dict[str, Any]:
        row = self.codec.decode(data)
        if row["event_id"] == self.target:
            row[self.column] = self.value
        return row

    def decode_values(self, data: bytes) -> tuple[Any, ...]:
        values = self.codec.decode_values(data)
        if values[0] == self.target:
            values = tuple(self.value if name == self.column else v for name, v in zip(self.columns, values))
        return values


def tampered_sink(catalog: Any, subscriber: ScriptedSubscriber, writer: Any, platform: PlatformKeys, codec: Tampering) -> Sink:
    plan = plan_topology(catalog.schemas, None).sink("track_played_v1-bq")
    return Sink(plan, subscriber, writer, EventRows("track_played_v1", codec, PATH, platform), lambda: NOW, platform)


def test_rows_the_table_refuses_are_quarantined_and_the_rest_inserted(
    catalog: Any, outcome: Any, warehouse: DuckDBWarehouse, platform: PlatformKeys
) -> None:
    subscriber = ScriptedSubscriber()
    messages = clean_messages(catalog, outcome)[:4]
    subscriber.put("track_played_v1-bq", messages)
    sink = tampered_sink(catalog, subscriber, warehouse, platform, Tampering(catalog, messages, nth=2, column="ms_played", value="lots"))
    sink.load_once()
    assert warehouse.row_count("events.track_played_v1") == 3 and len(subscriber.acked) == 4
    (failed,) = warehouse.query("SELECT * FROM platform.failed_events")
    assert failed["stage"] == "load" and "ms_played" in failed["detail"] and failed["event_id"].startswith("rt-")
    assert orjson.loads(platform.quarantine_decrypt(failed["payload_ciphertext"], failed["event_id"]))["ms_played"] == "lots"


def test_a_decoded_row_duckdb_refuses_is_found_by_the_checked_insert_and_quarantined(
    catalog: Any, outcome: Any, warehouse: DuckDBWarehouse, platform: PlatformKeys
) -> None:
    """Decoded rows are inserted column by column without the per-value checks; when one
    does not fit after all (here a NULL in a REQUIRED column, which only DuckDB notices),
    the sink inserts the rows again with the checks and quarantines just that row."""

    subscriber = ScriptedSubscriber()
    messages = clean_messages(catalog, outcome)[:5]
    subscriber.put("track_played_v1-bq", messages)
    sink = tampered_sink(catalog, subscriber, warehouse, platform, Tampering(catalog, messages, nth=3, column="track_id", value=None))
    assert sink.load_once() == 5
    assert warehouse.row_count("events.track_played_v1") == 4 and len(subscriber.acked) == 5
    (failed,) = warehouse.query("SELECT * FROM platform.failed_events")
    assert failed["stage"] == "load" and "track_id" in failed["detail"] and "required" in failed["detail"]


def test_the_pull_size_shrinks_when_a_response_is_too_large_and_grows_back(
    catalog: Any, outcome: Any, warehouse: DuckDBWarehouse, platform: PlatformKeys
) -> None:
    subscriber = ScriptedSubscriber()
    subscriber.put("track_played_v1-bq", clean_messages(catalog, outcome))
    subscriber.max_response = 100
    sink = event_sink(catalog, subscriber, warehouse, platform, max_messages=1000)
    with pytest.raises(TransientError, match="ResourceExhausted"):
        sink.load_once()
    assert sink.pull_size == 250
    with pytest.raises(TransientError):
        sink.load_once()
    assert sink.pull_size == 62
    assert sink.load_once() > 0
    subscriber.max_response = 10**9
    subscriber.put("track_played_v1-bq", clean_messages(catalog, outcome))
    sink.load_once()
    assert sink.pull_size > 62


# --------------------------------------------------------------------------- failed events and dead letters


def test_failed_event_messages_load_into_platform_failed_events(outcome: Any, warehouse: DuckDBWarehouse, platform: PlatformKeys) -> None:
    messages = [received(f.to_json_bytes(), i) for i, f in enumerate(outcome.failed)] + [received(b"{not json", 500)]
    converted = FailedRows("projects/p/subscriptions/failed-events-bq", platform).convert(messages, NOW)
    assert len(converted.rows) == len(outcome.failed) and len(converted.failures) == 1
    warehouse.insert_rows("platform.failed_events", converted.rows + converted.failures)
    reasons = {r["reason"] for r in warehouse.query("SELECT DISTINCT reason FROM platform.failed_events")}
    assert {"schema_violation", DEAD_LETTERED} <= reasons
    assert "is not a failed-event record" in converted.failures[0]["detail"]


def test_a_dead_lettered_raw_batch_becomes_one_failed_event_per_event(warehouse: DuckDBWarehouse, platform: PlatformKeys) -> None:
    events = [
        {"event_id": "d-1", "event_type": "track_played", "schema_version": 1, "event_time": "2026-03-02T15:00:00Z", "payload": {"user_id": "u"}},
        {"event_id": "d-2", "event_type": "track_played", "schema_version": 1, "event_time": "2026-03-02T15:01:00Z", "payload": {}},
    ]
    batch = received(
        orjson.dumps({"received_at": "2026-03-02T15:02:00Z", "events": events}), 1,
        {"CloudPubSubDeadLetterSourceDeliveryCount": "30", "event_type": "track_played_v1"},
    )
    data, encoding = raw_batch.encode("2026-03-02T15:02:00Z", [{**events[0], "event_id": "d-3"}])
    compressed = received(data, 3, {"event_type": "track_played_v1", **encoding})
    garbage = received(b"\xff garbage", 2)
    corrupt = received(data[:-4], 4, {"event_type": "track_played_v1", **encoding})
    converted = DeadLetterRows("track_played_v1", "projects/p/subscriptions/x-drain", platform).convert(
        [batch, garbage, compressed, corrupt], NOW
    )
    warehouse.insert_rows("platform.failed_events", converted.rows)
    rows = warehouse.query("SELECT * FROM platform.failed_events ORDER BY event_id NULLS LAST, detail")
    assert [r["event_id"] for r in rows] == ["d-1", "d-2", "d-3", None, None]
    assert "not a raw batch envelope" in rows[3]["detail"] and "zstd data" in rows[4]["detail"]
    assert all(r["reason"] == DEAD_LETTERED and r["stage"] == "anonymize" and r["event_type"] == "track_played" for r in rows)
    assert "after 30 failed deliveries" in rows[0]["detail"]
    assert rows[0]["event_time"] == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert rows[0]["received_at"] == datetime(2026, 3, 2, 15, 2, tzinfo=UTC)
    assert orjson.loads(platform.quarantine_decrypt(rows[0]["payload_ciphertext"], "d-1")) == events[0]
    assert platform.quarantine_decrypt(rows[3]["payload_ciphertext"], "") == b"\xff garbage"
    assert "u" not in rows[0]["detail"].split()


# --------------------------------------------------------------------------- HTTP API


@pytest.fixture
def api(catalog: Any, warehouse: DuckDBWarehouse, platform: PlatformKeys) -> Iterator[tuple[LocalRuntime, RuntimeClient]]:
    runtime = LocalRuntime(
        plan_topology(catalog.schemas, None), ScriptedSubscriber(), warehouse,
        {s.key: codec_for(s) for s in catalog.schemas}, platform, warehouse_path="memory",
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(runtime))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield runtime, RuntimeClient("127.0.0.1", server.server_address[1], timeout=10)
    server.shutdown()
    server.server_close()


def test_query_runs_bigquery_sql_and_encodes_bytes_and_times(api: Any, warehouse: DuckDBWarehouse) -> None:
    _, client = api
    result = client.query(
        "SELECT b'\\x00\\x01' AS raw, TIMESTAMP('2026-03-02 15:30:00+00') AS at, @n + 1 AS n, DATE '2026-03-02' AS d",
        {"n": 41},
    )
    assert result["columns"] == ["raw", "at", "n", "d"]
    assert result["rows"] == [{"raw": "AAE=", "at": "2026-03-02T15:30:00Z", "n": 42, "d": "2026-03-02"}]


def test_a_bad_query_answers_with_the_warehouses_message(api: Any) -> None:
    _, client = api
    with pytest.raises(PlatformError, match="events.no_such_table"):
        client.query("SELECT * FROM events.no_such_table")
    with pytest.raises(PlatformError, match="parameter"):
        client.query("SELECT @missing AS x")


def test_status_reports_tables_and_sinks(api: Any) -> None:
    runtime, client = api
    status = client.status()
    assert status["ready"] is False
    assert status["tables"]["events.track_played_v1"] == 0 and status["tables"]["platform.failed_events"] == 0
    assert set(status["sinks"]) == {s.plan.name for s in runtime.sinks}


def test_sinks_reports_the_sink_counters_without_querying(api: Any, warehouse: DuckDBWarehouse) -> None:
    runtime, client = api
    runtime.sinks[0].stats.loaded(7, 6, 1, None, NOW)
    queries: list[str] = []
    original = warehouse.row_count
    warehouse.row_count = lambda *a, **k: queries.append("row_count") or original(*a, **k)  # type: ignore[method-assign]
    sinks = client.sinks()["sinks"]
    assert sinks[runtime.sinks[0].plan.name]["rows"] == 6 and sinks[runtime.sinks[0].plan.name]["failures"] == 1
    assert sink_rows(client.sinks()) == 7 and queries == []
    assert client.status()["sinks"] == sinks and queries  # /status counts the tables


def test_a_runtime_that_is_not_there_is_named() -> None:
    from dataplatform.local.emulators import free_port

    with pytest.raises(PlatformError, match="does not answer .* is the stack up"):
        RuntimeClient("127.0.0.1", free_port(), timeout=2).status()


def test_sinks_start_and_stop_cleanly(api: Any) -> None:
    runtime, client = api
    runtime.start()
    assert client.status()["ready"] is True
    runtime.stop(timeout=10)
    assert all(not t.is_alive() for t in runtime._threads)
