"""The demo use case (`dataplatform demo`, `make demo`): synthetic traffic through the whole
local platform, and an exact account of where every event went.

Steps: bring the local stack up if it is not (`local.stack.Stack.up`, idempotent); generate
N events (`pipeline.generator`: a seeded user population, a share of invalid events of
eight kinds, a share of exact duplicates); POST them to the collect function over HTTP in
batches of at most 1,000 events (and under 4.5 MB) with the stack's `X-Api-Key`, a few
requests in flight; wait until every event is accounted for, polling the runtime's query
API; then report per event type.

**Accounting rule** (what "every event is accounted for" means, per claimed event type):

    sent == loaded + failed

- `sent`: distinct events generated for the type — distinct event ids; a duplicate is a
  resend of the same event (same event_id) and is counted once. (`posted` counts every copy.)
- `loaded`: distinct event_ids of this run in the type's event table `events.<name>_v<N>`.
- `failed`: distinct event_ids of this run in `platform.failed_events` with that
  event_type that are not loaded, plus the events collect rejected without a usable
  event_id (no id, or not a 1–128 character string). Those are stored with event_id NULL,
  so they cannot be found by id: they are counted from collect's per-event answer
  (`results[i].status == "rejected"`, `event_id` null), once per distinct event.
- An id that is both loaded and failed (only possible when a raw batch was dead-lettered
  after an earlier delivery had already published it) counts as loaded; `overlap` reports
  how many there were (0 in a healthy run).
- "This run": every event id is `<run_id>-<seq>`, so the counts ignore rows of earlier runs
  (queries filter on the id prefix, on the event_time window for the partitioned event
  tables, and on failed_at >= the run's start).

Also reported per type: `accepted` / `rejected_at_collect` (distinct events, from collect's
answers), failures by reason, `raw_rows` (rows in the table, duplicates included), rows of
the `<table>_dedup` view and the duplicates it removed (`raw_rows - dedup_rows`), whether
each event ended as the generator expected (`unexpected`), and for the whole run the
end-to-end rate: events posted (duplicates included) ÷ seconds from the first POST until
the last event was accounted for. A sample of anonymized rows shows what analysts see.

Waiting is bounded (`timeout`): when time is up, a PlatformError names every type that is
short and by how much.
"""

from __future__ import annotations

import http.client
import secrets
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import orjson
from sqlglot import exp

from dataplatform.compile.sql import DIALECT
from dataplatform.definitions.models import EventSchema
from dataplatform.errors import PlatformError
from dataplatform.pipeline.generator import EventGenerator, GeneratedEvent

UTC = timezone.utc
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 4_500_000
"""Below collect's 5 MB body limit, with room for the JSON around the events."""
SEND_ATTEMPTS = 6
POLL_SECONDS = 0.25
GATE_POLL_SECONDS = 0.05
"""How often the cheap row counter (`wait_accounted`'s `rows_loaded`) is read."""
GATE_FALLBACK_SECONDS = 2.0
FAILED_TABLE = "platform.failed_events"


Progress = Callable[[str, int, int], None]
"""(phase "send" | "load", done, total)."""


def _no_progress(phase: str, done: int, total: int) -> None:
    del phase, done, total


class Querier(Protocol):
    """The warehouse's query API (`local.runtime.RuntimeClient`)."""

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...


# --------------------------------------------------------------------------- sending


class CollectClient:
    """POSTs batches to the collect function, one keep-alive connection per thread.

    503 (collect could not publish) and connection errors are retried — the whole batch,
    as a client SDK would; event ids make the resends harmless. Anything else is an error.
    """

    def __init__(self, url: str, api_key: str, *, timeout: float = 60.0, attempts: int = SEND_ATTEMPTS) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise PlatformError(f"collect URL {url!r} must look like http://127.0.0.1:<port>/")
        self.host, self.port, self.path = parsed.hostname, parsed.port, parsed.path or "/"
        self.api_key = api_key
        self.timeout = timeout
        self.attempts = attempts
        self._local = threading.local()
        self.retries = 0
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def post(self, body: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "X-Api-Key": self.api_key}
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                with self._lock:
                    self.retries += 1
                time.sleep(min(4.0, 0.25 * 2**attempt))
            try:
                conn = self._connection()
                conn.request("POST", self.path, body=body, headers=headers)
                response = conn.getresponse()
                status, text = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                problem = f"{type(exc).__name__}"
                continue
            if status == 200:
                return dict(orjson.loads(text))
            if status == 503:
                problem = "503 (collect could not publish)"
                continue
            raise PlatformError(f"collect answered {status}: {text[:300].decode('utf-8', 'replace')}")
        raise PlatformError(
            f"collect at {self.host}:{self.port} did not take a batch after {self.attempts} attempts "
            f"(last: {problem}); check `dataplatform local status` and the collect log"
        )


@dataclass(frozen=True)
class Request:
    """One POST to collect: the positions of its events in the input, and its body."""

    indexes: range
    body: bytes


def requests_for(events: Sequence[Any]) -> list[Request]:
    """Consecutive batches of at most MAX_BATCH_EVENTS events and MAX_BATCH_BYTES of JSON,
    as ready-to-send `{"events": [...]}` bodies: each event is encoded once, here, so a
    caller that measures the sending can prepare the bodies before its clock starts."""
    out: list[Request] = []
    start, parts, size = 0, [], 0
    for index, event in enumerate(events):
        part = orjson.dumps(event)
        if parts and (len(parts) >= MAX_BATCH_EVENTS or size + len(part) + 1 > MAX_BATCH_BYTES):
            out.append(Request(range(start, index), b'{"events":[' + b",".join(parts) + b"]}"))
            start, parts, size = index, [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        out.append(Request(range(start, len(events)), b'{"events":[' + b",".join(parts) + b"]}"))
    return out


def post_requests(
    requests: Sequence[Request], client: CollectClient, *, concurrency: int = 4, progress: Progress = _no_progress
) -> list[dict[str, Any]]:
    """POST prepared requests, a few in flight; collect's per-event results in input order,
    each with `index` renumbered to the event's position in the input."""
    total = sum(len(r.indexes) for r in requests)
    results: list[dict[str, Any]] = [{} for _ in range(total)]
    lock = threading.Lock()
    done = [0]

    def one(request: Request) -> None:
        answered = client.post(request.body).get("results")
        if not isinstance(answered, list) or len(answered) != len(request.indexes):
            raise PlatformError("collect's answer does not have one result per event")
        for index, result in zip(request.indexes, answered):
            result["index"] = index
            results[index] = result
        with lock:
            done[0] += len(request.indexes)
            count = done[0]
        progress("send", count, total)

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="send") as pool:
        for future in [pool.submit(one, request) for request in requests]:
            future.result()
    return results


def post_events(
    events: Sequence[Any], client: CollectClient, *, concurrency: int = 4, progress: Progress = _no_progress
) -> list[dict[str, Any]]:
    """POST raw events (JSON values) in batches (`requests_for`); see `post_requests`."""
    return post_requests(requests_for(events), client, concurrency=concurrency, progress=progress)


@dataclass
class SendReport:
    """What collect answered, per distinct event (seq)."""

    posted: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    accepted: set[int] = field(default_factory=set)
    rejected: dict[int, str] = field(default_factory=dict)
    """seq → reason, for events collect rejected."""
    rejected_without_id: dict[int, str] = field(default_factory=dict)
    """seq → reason, for rejected events collect could not give an event_id."""
    null_id_posts: int = 0
    """Rejections with event_id null, every copy counted (= NULL-id failed rows to expect)."""


def send(
    events: Sequence[GeneratedEvent],
    client: CollectClient,
    *,
    concurrency: int = 4,
    progress: Progress = _no_progress,
    requests: Sequence[Request] | None = None,
) -> SendReport:
    """POST every event (in order, batched) and record collect's answer per distinct event.

    `requests`: the events' bodies prepared beforehand (`requests_for`), so `seconds` is the
    sending only."""
    if requests is None:
        requests = requests_for([e.event for e in events])
    started = time.perf_counter()
    results = post_requests(requests, client, concurrency=concurrency, progress=progress)
    report = SendReport(
        posted=len(events),
        requests=len(requests),
        retries=client.retries,
        seconds=time.perf_counter() - started,
    )
    for event, result in zip(events, results):
        if result.get("status") == "accepted":
            report.accepted.add(event.seq)
            continue
        reason = str(result.get("reason"))
        report.rejected[event.seq] = reason
        if result.get("event_id") is None:
            report.rejected_without_id[event.seq] = reason
            report.null_id_posts += 1
    return report


# --------------------------------------------------------------------------- accounting


@dataclass
class TypeAccount:
    """The account of one claimed event type (see the module docstring)."""

    event_type: str
    table: str | None
    sent: int = 0
    posted: int = 0
    accepted: int = 0
    rejected_at_collect: int = 0
    loaded: int = 0
    failed: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    raw_rows: int = 0
    dedup_rows: int = 0
    overlap: int = 0
    unexpected: int = 0

    @property
    def balanced(self) -> bool:
        return self.sent == self.loaded + self.failed

    @property
    def duplicates_removed(self) -> int:
        return self.raw_rows - self.dedup_rows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["balanced"] = self.balanced
        data["duplicates_removed"] = self.duplicates_removed
        return data


@dataclass(frozen=True)
class RunScope:
    """What identifies this run's rows in the warehouse."""

    prefix: str
    time_from: datetime
    time_to: datetime
    since: datetime

    def params(self) -> dict[str, str]:
        return {
            "prefix": self.prefix,
            "time_from": _ts(self.time_from),
            "time_to": _ts(self.time_to),
            "since": _ts(self.since),
        }


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _in_run(table: str, *, partitioned: bool, time_column: str = "event_time") -> exp.Select:
    """`SELECT ... FROM <table> WHERE STARTS_WITH(event_id, @prefix) AND <time window>`:
    event tables by `event_time` (a bounded window: their partition filter), the failed
    events by `failed_at >= @since`."""
    column = exp.column(time_column)
    lower = exp.condition("TIMESTAMP(@time_from)" if partitioned else "TIMESTAMP(@since)", dialect=DIALECT)
    condition = exp.and_(exp.condition("STARTS_WITH(event_id, @prefix)", dialect=DIALECT), column.copy() >= lower)
    if partitioned:
        condition = exp.and_(condition, column.copy() < exp.condition("TIMESTAMP(@time_to)", dialect=DIALECT))
    dataset, name = table.split(".")
    return exp.select().from_(exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(dataset))).where(condition)


def counts_sql(tables: Mapping[str, str]) -> str:
    """Per event type: raw rows and distinct loaded ids of this run (one UNION ALL query)."""
    parts = [
        _in_run(table, partitioned=True).select(
            exp.alias_(exp.Literal.string(event_type), "event_type"),
            exp.alias_(exp.Count(this=exp.Star()), "raw_rows"),
            exp.alias_(exp.Count(this=exp.Distinct(expressions=[exp.column("event_id")])), "loaded"),
        )
        for event_type, table in sorted(tables.items())
    ]
    query: exp.Expression = parts[0]
    for part in parts[1:]:
        query = exp.union(query, part, distinct=False)
    return query.sql(dialect=DIALECT)


def failed_counts_sql() -> str:
    """Per event type: distinct failed ids of this run."""
    return (
        _in_run(FAILED_TABLE, partitioned=False, time_column="failed_at")
        .select("event_type", exp.alias_(exp.Count(this=exp.Distinct(expressions=[exp.column("event_id")])), "failed"))
        .group_by("event_type")
        .sql(dialect=DIALECT)
    )


def ids_sql(table: str) -> str:
    """Each loaded id of this run with its number of rows."""
    return (
        _in_run(table, partitioned=True)
        .select("event_id", exp.alias_(exp.Count(this=exp.Star()), "copies"))
        .group_by("event_id")
        .sql(dialect=DIALECT)
    )


def failed_ids_sql() -> str:
    """Each failed id of this run with its type, reason and stage."""
    return (
        _in_run(FAILED_TABLE, partitioned=False, time_column="failed_at")
        .select("event_id", "event_type", "reason", "stage", exp.alias_(exp.Count(this=exp.Star()), "copies"))
        .group_by("event_id", "event_type", "reason", "stage")
        .sql(dialect=DIALECT)
    )


def dedup_count_sql(view: str) -> str:
    return _in_run(view, partitioned=True).select(exp.alias_(exp.Count(this=exp.Star()), "dedup_rows")).sql(dialect=DIALECT)


def sample_sql(view: str, limit: int) -> str:
    return _in_run(view, partitioned=True).select(exp.Star()).order_by("event_id").limit(limit).sql(dialect=DIALECT)


@dataclass
class Accounting:
    types: dict[str, TypeAccount]
    outcomes: dict[int, str]
    """seq → "loaded" or the failure reason (first found), for comparison with expectations."""

    @property
    def balanced(self) -> bool:
        return all(t.balanced for t in self.types.values())

    def short(self) -> dict[str, int]:
        """Types whose events are not all accounted for yet → how many are missing."""
        return {name: t.sent - t.loaded - t.failed for name, t in self.types.items() if not t.balanced}


class Accountant:
    """Counts this run's events in the warehouse (see the module docstring's rule)."""

    def __init__(
        self,
        schemas: Iterable[EventSchema],
        events: Sequence[GeneratedEvent],
        report: SendReport,
        scope: RunScope,
        querier: Querier,
    ) -> None:
        self.tables = {s.name: s.table_ref for s in sorted(schemas, key=lambda s: s.version)}
        self.views = {s.name: f"{s.table_ref}_dedup" for s in schemas}
        self.events = events
        self.report = report
        self.scope = scope
        self.querier = querier
        self._distinct: dict[int, GeneratedEvent] = {}
        for event in events:
            self._distinct.setdefault(event.seq, event)
        self._counts_sql = counts_sql(self.tables)
        self._failed_sql = failed_counts_sql()

    def types(self) -> dict[str, TypeAccount]:
        """The send-side figures per type (sent, posted, accepted, rejected at collect)."""
        out: dict[str, TypeAccount] = {}
        for event in self.events:
            account = out.get(event.event_type)
            if account is None:
                account = out[event.event_type] = TypeAccount(event.event_type, self.tables.get(event.event_type))
            account.posted += 1
        for seq, event in self._distinct.items():
            account = out[event.event_type]
            account.sent += 1
            if seq in self.report.accepted:
                account.accepted += 1
            elif seq in self.report.rejected:
                account.rejected_at_collect += 1
        return out

    def quick(self) -> dict[str, TypeAccount]:
        """Counts only (cheap, for polling): loaded + failed may exceed sent by the overlap."""
        types = self.types()
        params = self.scope.params()
        for row in self.querier.rows(self._counts_sql, params):
            account = types.get(row["event_type"])
            if account is not None:
                account.loaded, account.raw_rows = int(row["loaded"]), int(row["raw_rows"])
        for row in self.querier.rows(self._failed_sql, params):
            account = types.get(row["event_type"])
            if account is not None:
                account.failed += int(row["failed"])
        for seq in self.report.rejected_without_id:
            types[self._distinct[seq].event_type].failed += 1
        return types

    def exact(self) -> Accounting:
        """The account by id, with overlap, failures by reason, dedup counts, outcomes per event."""
        types = self.types()
        params = self.scope.params()
        seq_of = {e.event_id: e.seq for e in self._distinct.values() if e.event_id is not None}
        outcomes: dict[int, str] = {}
        loaded_ids: set[str] = set()
        for name, table in self.tables.items():
            account = types.get(name)
            rows = self.querier.rows(ids_sql(table), params)
            ids = {r["event_id"] for r in rows}
            loaded_ids |= ids
            for event_id in ids:
                seq = seq_of.get(event_id)
                if seq is not None:
                    outcomes[seq] = "loaded"
            if account is not None:
                account.loaded = len(ids)
                account.raw_rows = sum(int(r["copies"]) for r in rows)
                account.dedup_rows = int(self.querier.rows(dedup_count_sql(self.views[name]), params)[0]["dedup_rows"])
        failed_ids: dict[str, set[str]] = defaultdict(set)
        overlap: dict[str, set[str]] = defaultdict(set)
        by_reason: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for row in self.querier.rows(failed_ids_sql(), params):
            event_type, event_id, reason = row["event_type"], row["event_id"], row["reason"]
            if event_type not in types:
                continue
            seq = seq_of.get(event_id)
            if event_id in loaded_ids:
                overlap[event_type].add(event_id)
                continue
            failed_ids[event_type].add(event_id)
            by_reason[event_type][reason].add(event_id)
            if seq is not None and seq not in outcomes:
                outcomes[seq] = reason
        for event_type, ids in overlap.items():
            types[event_type].overlap = len(ids)
        for event_type, ids in failed_ids.items():
            types[event_type].failed = len(ids)
            types[event_type].failed_by_reason = {r: len(v) for r, v in sorted(by_reason[event_type].items())}
        for seq, reason in self.report.rejected_without_id.items():
            account = types[self._distinct[seq].event_type]
            account.failed += 1
            account.failed_by_reason[reason] = account.failed_by_reason.get(reason, 0) + 1
            outcomes[seq] = reason
        for seq, event in self._distinct.items():
            expected = "loaded" if event.reason is None else event.reason
            if outcomes.get(seq) != expected:
                types[event.event_type].unexpected += 1
        return Accounting(types, outcomes)

    def sample(self, rows: int) -> list[dict[str, Any]]:
        """A few anonymized rows of the most frequent type and of the one with most PII fields."""
        counts = Counter(e.event_type for e in self._distinct.values() if e.event_type in self.tables)
        if not counts:
            return []
        chosen = [counts.most_common(1)[0][0]]
        schemas_by_pii = sorted(self.views, key=lambda n: -self._pii_fields(n))
        if schemas_by_pii and schemas_by_pii[0] not in chosen:
            chosen.append(schemas_by_pii[0])
        out: list[dict[str, Any]] = []
        for name in chosen:
            for row in self.querier.rows(sample_sql(self.views[name], rows), self.scope.params()):
                out.append({"event_type": name, **row})
        return out

    def _pii_fields(self, name: str) -> int:
        event = next((e for e in self._distinct.values() if e.event_type == name and e.valid), None)
        return len(event.pii) if event is not None else 0


# --------------------------------------------------------------------------- the demo


@dataclass(frozen=True)
class DemoConfig:
    events: int = 20_000
    seed: int = 7
    users: int = 1000
    invalid_share: float = 0.05
    duplicate_share: float = 0.02
    concurrency: int = 4
    timeout: float = 300.0
    sample_rows: int = 2


@dataclass
class DemoReport:
    run_id: str
    events: int
    send: SendReport
    accounting: Accounting
    seconds_to_accounted: float
    events_per_second: float
    sample: list[dict[str, Any]]
    stack_started: bool

    def to_dict(self) -> dict[str, Any]:
        types = {name: account.to_dict() for name, account in sorted(self.accounting.types.items())}
        totals = {
            key: sum(t[key] for t in types.values())
            for key in ("sent", "posted", "accepted", "rejected_at_collect", "loaded", "failed", "raw_rows",
                        "dedup_rows", "duplicates_removed", "overlap", "unexpected")
        }
        reasons: Counter[str] = Counter()
        for t in types.values():
            reasons.update(t["failed_by_reason"])
        totals["failed_by_reason"] = dict(sorted(reasons.items()))
        return {
            "run_id": self.run_id,
            "balanced": self.accounting.balanced,
            "stack_started": self.stack_started,
            "events_posted": self.send.posted,
            "requests": self.send.requests,
            "send_retries": self.send.retries,
            "send_seconds": round(self.send.seconds, 3),
            "seconds_to_accounted": round(self.seconds_to_accounted, 3),
            "events_per_second": round(self.events_per_second, 1),
            "types": types,
            "totals": totals,
            "sample": self.sample,
        }


def wait_accounted(
    accountant: Accountant,
    *,
    timeout: float,
    progress: Progress = _no_progress,
    poll: float = POLL_SECONDS,
    rows_loaded: Callable[[], int] | None = None,
    on_complete: Callable[[], None] | None = None,
) -> tuple[Accounting, float]:
    """Poll until `sent == loaded + failed` for every type; the exact accounting and the
    `time.perf_counter()` at which the counts first showed everything (before the exact
    check by id, so the check's own time is not counted as pipeline time). PlatformError
    naming the short types when `timeout` seconds pass first.

    `rows_loaded`: a cheap count of the rows loaded so far since the run began (the
    runtime's sink counters). Every distinct event ends as at least one row, so until it
    reaches the number of distinct events the counting queries cannot balance and are not
    run: they scan every table, on the machine whose pipeline is being measured. The gate
    only saves work, it decides nothing: the queries still run every `GATE_FALLBACK_SECONDS`
    (a runtime restarted mid-run counts from zero again).

    `on_complete` is called each time the counts show every event, before the exact check
    (which, with an overlap, can send the wait on: then it is called again later)."""
    deadline = time.monotonic() + timeout
    total = len({e.seq for e in accountant.events})
    last: dict[str, TypeAccount] | None = None
    counted_at = time.monotonic()
    while True:
        loaded = rows_loaded() if rows_loaded is not None else None
        if loaded is not None and loaded < total and time.monotonic() - counted_at < GATE_FALLBACK_SECONDS:
            progress("load", max(0, loaded), total)
        else:
            counted_at = time.monotonic()
            last = accountant.quick()
            complete_at = time.perf_counter()
            done = sum(min(t.sent, t.loaded + t.failed) for t in last.values())
            progress("load", done, total)
            if all(t.loaded + t.failed >= t.sent for t in last.values()):
                if on_complete is not None:
                    on_complete()
                accounting = accountant.exact()
                if accounting.balanced:
                    return accounting, complete_at
                last = accounting.types
        if time.monotonic() >= deadline:
            last = last if last is not None else accountant.quick()
            short = {n: t.sent - t.loaded - t.failed for n, t in sorted(last.items()) if t.sent != t.loaded + t.failed}
            detail = ", ".join(f"{n}: {missing} of {last[n].sent} not accounted for" for n, missing in short.items())
            raise PlatformError(
                f"after {timeout:.0f}s not every event is accounted for ({detail}); "
                "look at `dataplatform local status` (sink errors, lag) and the logs under .dataplatform/logs"
            )
        time.sleep(poll if loaded is None else GATE_POLL_SECONDS)


def sink_rows(status: Mapping[str, Any]) -> int:
    """Rows the local runtime's sinks have loaded since it started (events, failed events
    and load failures), from its `/sinks` (or `/status`)."""
    return sum(int(s.get("rows") or 0) + int(s.get("failures") or 0) for s in status.get("sinks", {}).values())


def run_demo(
    schemas: Sequence[EventSchema],
    collect: CollectClient,
    querier: Querier,
    config: DemoConfig = DemoConfig(),
    *,
    progress: Progress = _no_progress,
    run_id: str | None = None,
    stack_started: bool = False,
    now: datetime | None = None,
    on_start: Callable[[], None] | None = None,
    on_complete: Callable[[], None] | None = None,
    rows_loaded: Callable[[], int] | None = None,
) -> DemoReport:
    """Generate, send, wait until accounted, report (the stack must be up).

    The clock starts at the first POST: generating the events and encoding the request
    bodies is the client's work, not the pipeline's. `rows_loaded` (the runtime's sink
    counters, `sink_rows`) spares the warehouse the counting queries while rows are still
    missing (see `wait_accounted`).
    `on_start` is called just before it and `on_complete` when the counts first show every
    event (the clock's stop, before the exact check by id): the benchmark reads CPU counters
    at both, so the accounting queries after the stop are not billed to the pipeline."""
    run_id = run_id or f"demo-{secrets.token_hex(4)}"
    started_at = (now or datetime.now(UTC)).astimezone(UTC)
    generator = EventGenerator(
        schemas, seed=config.seed, users=config.users, invalid_share=config.invalid_share,
        duplicate_share=config.duplicate_share, run_id=run_id, now=started_at,
    )
    events = generator.generate(config.events)
    scope = RunScope(
        prefix=f"{run_id}-",
        time_from=started_at - timedelta(days=1),
        time_to=started_at + timedelta(days=1),
        since=started_at - timedelta(minutes=5),
    )
    requests = requests_for([e.event for e in events])
    since_start = None
    if rows_loaded is not None:
        baseline = rows_loaded()
        since_start = lambda: rows_loaded() - baseline  # noqa: E731
    if on_start is not None:
        on_start()
    began = time.perf_counter()
    report = send(events, collect, concurrency=config.concurrency, progress=progress, requests=requests)
    accountant = Accountant(schemas, events, report, scope, querier)
    accounting, complete_at = wait_accounted(
        accountant, timeout=config.timeout, progress=progress, rows_loaded=since_start, on_complete=on_complete
    )
    elapsed = complete_at - began
    sample = accountant.sample(config.sample_rows) if config.sample_rows else []
    return DemoReport(
        run_id=run_id,
        events=len(events),
        send=report,
        accounting=accounting,
        seconds_to_accounted=elapsed,
        events_per_second=report.posted / elapsed if elapsed > 0 else 0.0,
        sample=sample,
        stack_started=stack_started,
    )
