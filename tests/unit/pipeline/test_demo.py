"""The demo use case: batching, the collect client, and the accounting rule, checked on the
real collect/anonymize use cases feeding a real DuckDB warehouse in one process
(`tests/unit/local/offline.py`), with the accounting queries running as BigQuery SQL."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
from dataplatform.errors import PlatformError
from dataplatform.pipeline.demo import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    Accountant,
    CollectClient,
    DemoConfig,
    RunScope,
    post_events,
    requests_for,
    run_demo,
    send,
    sink_rows,
    wait_accounted,
)
from dataplatform.pipeline.generator import EventGenerator
from dataplatform.pipeline.warehouse_setup import ensure_warehouse
from tests.functions.recording import API_KEY
from tests.unit.local.offline import JsonQuerier, LoadingService, OfflinePipeline

UTC = timezone.utc


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def warehouse(catalog: Any) -> Iterator[DuckDBWarehouse]:
    with DuckDBWarehouse() as warehouse:
        ensure_warehouse(warehouse, catalog)
        yield warehouse


@pytest.fixture
def service(catalog: Any, warehouse: DuckDBWarehouse, tmp_path: Path, now: datetime) -> Iterator[LoadingService]:
    service = LoadingService(OfflinePipeline(catalog.schemas, tmp_path, now + timedelta(seconds=1)), warehouse)
    yield service
    service.close()


def scope_of(run_id: str, now: datetime) -> RunScope:
    return RunScope(f"{run_id}-", now - timedelta(days=1), now + timedelta(days=1), now - timedelta(minutes=5))


# --------------------------------------------------------------------------- batching


def test_requests_hold_at_most_1000_events_in_order() -> None:
    requests = requests_for(list(range(2500)))
    assert [len(r.indexes) for r in requests] == [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS, 500]
    assert [i for r in requests for i in r.indexes] == list(range(2500))
    assert [x for r in requests for x in orjson.loads(r.body)["events"]] == list(range(2500))


def test_requests_stay_under_the_byte_limit() -> None:
    big = ["x" * 1_000_000 for _ in range(10)]
    requests = requests_for(big)
    assert all(len(r.body) <= MAX_BATCH_BYTES + len('{"events":[]}') for r in requests)
    assert sum(len(r.indexes) for r in requests) == 10 and len(requests) == 3
    assert orjson.loads(requests[0].body) == {"events": big[: len(requests[0].indexes)]}


# --------------------------------------------------------------------------- the collect client


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers with the next status of the server's `script`, echoing one result per event."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server: Any = self.server
        server.keys.append(self.headers.get("X-Api-Key"))
        status = server.script.pop(0) if server.script else 200
        if status == 200:
            results = [{"index": i, "event_id": e.get("event_id"), "status": "accepted"} for i, e in enumerate(body["events"])]
            data = orjson.dumps({"accepted": len(results), "rejected": 0, "results": results})
        else:
            data = orjson.dumps({"error": "scripted"})
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.keys = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_client_retries_the_whole_batch_after_503(scripted: Any) -> None:
    scripted.script = [503]
    client = CollectClient(f"http://127.0.0.1:{scripted.server_address[1]}/", "k-1", attempts=3)
    results = post_events([{"event_id": f"e{i}"} for i in range(1500)], client, concurrency=1)
    assert [r["index"] for r in results] == list(range(1500))
    assert [r["event_id"] for r in results[998:1002]] == ["e998", "e999", "e1000", "e1001"]
    assert client.retries == 1 and scripted.keys == ["k-1"] * 3


def test_client_gives_up_with_a_clear_message(scripted: Any) -> None:
    scripted.script = [503, 503]
    client = CollectClient(f"http://127.0.0.1:{scripted.server_address[1]}/", "k", attempts=2)
    with pytest.raises(PlatformError, match=r"did not take a batch after 2 attempts \(last: 503"):
        client.post(b'{"events": []}')


def test_client_does_not_retry_a_refused_batch(scripted: Any) -> None:
    scripted.script = [401]
    client = CollectClient(f"http://127.0.0.1:{scripted.server_address[1]}/", "bad")
    with pytest.raises(PlatformError, match="collect answered 401"):
        client.post(b'{"events": []}')
    assert client.retries == 0


def test_client_names_a_bad_url() -> None:
    with pytest.raises(PlatformError, match="must look like http://127.0.0.1:<port>/"):
        CollectClient("localhost:80", "k")


# --------------------------------------------------------------------------- accounting


def test_demo_accounts_for_every_event_by_type(catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime) -> None:
    config = DemoConfig(events=1500, users=100, invalid_share=0.2, duplicate_share=0.1, concurrency=2, timeout=30, sample_rows=1)
    client = CollectClient(service.url, API_KEY)
    report = run_demo(catalog.schemas, client, JsonQuerier(warehouse), config, run_id="unit", now=now)
    data = report.to_dict()

    assert data["balanced"] is True
    totals = data["totals"]
    assert totals["posted"] == 1500 and totals["sent"] == 1350
    assert totals["loaded"] + totals["failed"] == totals["sent"]
    assert totals["unexpected"] == 0 and totals["overlap"] == 0
    assert totals["duplicates_removed"] == totals["raw_rows"] - totals["dedup_rows"] > 0
    assert set(totals["failed_by_reason"]) == {
        "schema_violation", "unknown_event_type", "invalid_envelope", "clock_skew", "too_late", "too_large",
    }
    for name, account in data["types"].items():
        assert account["sent"] == account["loaded"] + account["failed"], name
        assert account["sent"] == account["accepted"] + account["rejected_at_collect"], name
        assert account["dedup_rows"] == account["loaded"], name
    assert data["types"]["podcast_episode_played"]["loaded"] == 0
    assert {row["event_type"] for row in data["sample"]} >= {"track_played"}
    assert all(row["event_id"].startswith("unit-") for row in data["sample"])
    orjson.dumps(data)  # the --json output is JSON


def test_events_without_an_id_are_counted_from_collects_answer(
    catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime
) -> None:
    events = [e for e in EventGenerator(catalog.schemas, invalid_share=0.5, run_id="noid", now=now).generate(400)]
    report = send(events, CollectClient(service.url, API_KEY))
    missing = {e.seq for e in events if e.kind == "missing_event_id"}
    assert set(report.rejected_without_id) == missing and missing
    accounting = Accountant(catalog.schemas, events, report, scope_of("noid", now), JsonQuerier(warehouse)).exact()
    assert accounting.balanced
    null_rows = warehouse.query("SELECT COUNT(*) AS n FROM platform.failed_events WHERE event_id IS NULL")[0]["n"]
    assert null_rows == report.null_id_posts


def test_rows_of_other_runs_are_not_counted(catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime) -> None:
    client = CollectClient(service.url, API_KEY)
    other = EventGenerator(catalog.schemas, run_id="other", now=now).generate(200)
    send(other, client)
    mine = EventGenerator(catalog.schemas, run_id="mine", now=now).generate(300)
    report = send(mine, client)
    accounting = Accountant(catalog.schemas, mine, report, scope_of("mine", now), JsonQuerier(warehouse)).exact()
    assert accounting.balanced
    assert sum(t.sent for t in accounting.types.values()) == len({e.seq for e in mine})


def test_an_id_both_loaded_and_failed_counts_as_loaded(
    catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime
) -> None:
    events = EventGenerator(catalog.schemas, invalid_share=0.0, duplicate_share=0.0, run_id="ovl", now=now).generate(50)
    report = send(events, CollectClient(service.url, API_KEY))
    loaded = events[0]
    warehouse.insert_rows(
        "platform.failed_events",
        [
            {
                "event_id": loaded.event_id, "event_type": loaded.event_type, "schema_version": 1, "reason": "dead_lettered",
                "detail": "redelivered after it was published", "event_time": None, "received_at": now, "failed_at": now,
                "stage": "anonymize", "payload_ciphertext": None, "quarantine_expires_at": now + timedelta(days=30),
                "message_id": None, "publish_time": None, "subscription_name": None, "attributes": None,
            }
        ],
    )
    accountant = Accountant(catalog.schemas, events, report, scope_of("ovl", now), JsonQuerier(warehouse))
    quick = accountant.quick()[loaded.event_type]
    assert quick.loaded + quick.failed == quick.sent + 1
    accounting = accountant.exact()
    account = accounting.types[loaded.event_type]
    assert accounting.balanced and account.overlap == 1 and account.failed == 0


def test_waiting_ends_when_everything_is_loaded(catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime) -> None:
    events = EventGenerator(catalog.schemas, run_id="wait", now=now).generate(300)
    service.hold = True
    report = send(events, CollectClient(service.url, API_KEY))
    accountant = Accountant(catalog.schemas, events, report, scope_of("wait", now), JsonQuerier(warehouse))
    seen: list[int] = []
    releaser = threading.Timer(0.5, service.release)
    releaser.start()
    accounting, _ = wait_accounted(accountant, timeout=20, poll=0.05, progress=lambda phase, done, total: seen.append(done))
    releaser.join()
    assert accounting.balanced
    assert seen[0] < seen[-1] == len({e.seq for e in events})


def test_on_complete_is_called_when_the_counts_balance_and_before_the_exact_check(
    catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime
) -> None:
    """The benchmark reads CPU counters in `on_complete`: it must come once the counts show
    every event, at the clock's stop, and before the exact check's queries."""
    events = EventGenerator(catalog.schemas, run_id="done", now=now).generate(200)
    service.hold = True
    report = send(events, CollectClient(service.url, API_KEY))
    querier = JsonQuerier(warehouse)
    accountant = Accountant(catalog.schemas, events, report, scope_of("done", now), querier)
    calls: list[tuple[float, int]] = []
    releaser = threading.Timer(0.3, service.release)
    releaser.start()
    accounting, complete_at = wait_accounted(
        accountant, timeout=20, poll=0.05, on_complete=lambda: calls.append((time.perf_counter(), querier.queries))
    )
    releaser.join()
    assert accounting.balanced and len(calls) == 1
    called_at, queries_then = calls[0]
    assert complete_at <= called_at
    assert 0 < queries_then < querier.queries  # after the counting queries, before the exact ones


def test_the_counting_queries_wait_for_the_row_counter(
    catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime
) -> None:
    events = EventGenerator(catalog.schemas, run_id="gate", now=now).generate(300)
    service.hold = True
    report = send(events, CollectClient(service.url, API_KEY))
    querier = JsonQuerier(warehouse)
    accountant = Accountant(catalog.schemas, events, report, scope_of("gate", now), querier)
    distinct = len({e.seq for e in events})
    counter = [0]
    queries_while_closed: list[int] = []

    def rows_loaded() -> int:
        counter[0] += 1
        if counter[0] < 5:
            queries_while_closed.append(querier.queries)
            return distinct - 1
        service.release()
        return distinct  # every event has a row somewhere: now the counts can balance

    accounting, _ = wait_accounted(accountant, timeout=20, poll=0.05, rows_loaded=rows_loaded)
    assert accounting.balanced and counter[0] >= 5
    assert queries_while_closed == [0, 0, 0, 0]
    # The counter only saves work: a counter that stays behind (a restarted runtime) delays
    # the counting queries by at most GATE_FALLBACK_SECONDS, it never blocks the answer.
    accounting, _ = wait_accounted(accountant, timeout=20, poll=0.05, rows_loaded=lambda: -5)
    assert accounting.balanced


def test_sink_rows_adds_rows_and_load_failures_of_every_sink() -> None:
    status = {"sinks": {"a-bq": {"rows": 10, "failures": 1}, "failed-events-bq": {"rows": 5, "failures": 0}, "d": {}}}
    assert sink_rows(status) == 16 and sink_rows({}) == 0


def test_waiting_times_out_naming_the_types_that_are_short(
    catalog: Any, service: LoadingService, warehouse: DuckDBWarehouse, now: datetime
) -> None:
    events = EventGenerator(catalog.schemas, invalid_share=0.0, run_id="late", now=now).generate(100)
    service.hold = True
    report = send(events, CollectClient(service.url, API_KEY))
    accountant = Accountant(catalog.schemas, events, report, scope_of("late", now), JsonQuerier(warehouse))
    with pytest.raises(PlatformError, match=r"after 0s not every event is accounted for \(.*track_played: \d+ of \d+ not accounted for"):
        wait_accounted(accountant, timeout=0.2, poll=0.05)
