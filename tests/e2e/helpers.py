"""What the end-to-end tests check on the warehouse: the accounting, PII in clear, failed events."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from sqlglot import exp

from dataplatform.compile.bigquery_schema import BqField
from dataplatform.compile.sql import DIALECT
from dataplatform.local.runtime import RuntimeClient
from dataplatform.pipeline.demo import Accounting, RunScope, SendReport
from dataplatform.pipeline.generator import GeneratedEvent, PiiIndex
from dataplatform.pipeline.warehouse_setup import warehouse_plan

UTC = timezone.utc


def scope(run_id: str, started: datetime) -> RunScope:
    return RunScope(f"{run_id}-", started - timedelta(days=1), started + timedelta(days=1), started - timedelta(minutes=5))


def assert_balanced(accounting: Accounting) -> None:
    """sent == loaded + failed per type, each event as generated, nothing both loaded and failed."""
    problems = {
        name: t.to_dict()
        for name, t in accounting.types.items()
        if not t.balanced or t.unexpected or t.overlap
    }
    assert not problems, problems


def assert_dedup(accounting: Accounting) -> None:
    """Duplicates reached the tables, and the dedup views count each event id once."""
    for name, t in accounting.types.items():
        if t.table is None:
            continue
        assert t.raw_rows >= t.loaded, name
        assert t.dedup_rows == t.loaded, (name, t.dedup_rows, t.loaded)
    assert sum(t.raw_rows - t.loaded for t in accounting.types.values()) > 0, "no duplicate reached a table"


def _walk(fields: Sequence[BqField], value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(column path, BigQuery type, value) of every STRING/BYTES leaf of a row."""
    if not isinstance(value, Mapping):
        return
    for field in fields:
        item = value.get(field.name)
        if item is None:
            continue
        items = item if field.mode == "REPEATED" and isinstance(item, list) else [item]
        for element in items:
            if field.type == "RECORD":
                yield from _walk(field.fields, element, f"{path}{field.name}.")
            elif field.type in ("STRING", "BYTES"):
                yield f"{path}{field.name}", field.type, element


def pii_in_clear(runtime: RuntimeClient, catalog: Any, pii: PiiIndex) -> list[str]:
    """Every place a generated PII value is readable: STRING cells (as text) and BYTES cells
    (raw bytes, e.g. quarantined payloads) of every table of the warehouse."""
    found: list[str] = []
    for spec in warehouse_plan(catalog).tables:
        select = exp.select(exp.Star()).from_(exp.Table(this=exp.to_identifier(spec.table), db=exp.to_identifier(spec.dataset)))
        for row in runtime.rows(select.sql(dialect=DIALECT)):
            for path, kind, value in _walk(spec.fields, row):
                hit = pii.in_text(path, value) if kind == "STRING" else pii.in_bytes(base64.b64decode(value))
                if hit is not None:
                    found.append(f"{spec.ref}.{path}: {hit!r}")
    return found


def null_id_rejections(
    runtime: RuntimeClient, events: Sequence[GeneratedEvent], report: SendReport, platform: Any, since: datetime
) -> int:
    """How many failed-event rows without an event id hold (quarantined) an event of this run
    that collect rejected without an id; each must carry its reason."""
    mine = {
        _canonical(e.event) for e in events if e.seq in report.rejected_without_id
    }
    rows = runtime.rows(
        "SELECT reason, detail, payload_ciphertext FROM platform.failed_events "
        "WHERE event_id IS NULL AND failed_at >= TIMESTAMP(@since)",
        {"since": since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    )
    matched = 0
    for row in rows:
        event = platform.quarantine_decrypt(base64.b64decode(row["payload_ciphertext"]), "")
        if _canonical_bytes(event) in mine:
            assert row["reason"] and row["detail"], row
            matched += 1
    return matched


def _canonical(event: Any) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def _canonical_bytes(data: bytes) -> bytes:
    return _canonical(orjson.loads(data))
