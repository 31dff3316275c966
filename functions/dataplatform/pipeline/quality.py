"""Run an endpoint's quality checks on a new partition and record every result.

The checks are compiled by `compile/quality_sql.py` (one query per check returning the
failing-row count and a sample). Each result — check, status, failing rows, sample,
duration — becomes a row of `platform.check_results`, locally and in GCP (where `monitor`
runs them when a scheduled query finishes).

Outcomes: `passed` (no failing rows), `failed` (some), `error` (the check query itself
failed: a broken custom query, a missing table). A partition fails when a check of
severity `error` did not pass (failed or error); a `warn` check is recorded and does not
block anything. An errored check's message goes into `sample` as `{"error": ...}`.

Samples are JSON text of at most `SAMPLE_ROWS` rows; BYTES values (ciphertext) are
replaced by `REDACTED_BYTES` and never written (see the privacy note in quality_sql).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from dataplatform.compile.platform_tables import CHECK_RESULTS_TABLE
from dataplatform.compile.quality_sql import FAILING_COUNT_COLUMN, check_queries
from dataplatform.definitions.models import PLATFORM_DATASET
from dataplatform.errors import PlatformError, TransientError

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog
    from dataplatform.definitions.models import Endpoint

CHECK_RESULTS = f"{PLATFORM_DATASET}.{CHECK_RESULTS_TABLE}"
REDACTED_BYTES = "<BYTES redacted>"
MAX_SAMPLE_CHARS = 4000
"""A sample longer than this (wide rows, long strings) is cut to keep check_results small."""


class CheckWarehouse(Protocol):
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int: ...


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one partition."""

    name: str
    type: str
    severity: str
    status: str  # passed | failed | error
    failing_rows: int | None
    sample: tuple[Mapping[str, Any], ...]
    duration_ms: int
    error: str | None = None

    @property
    def blocking(self) -> bool:
        """True when this result fails the partition (an `error`-severity check that did not pass)."""
        return self.severity == "error" and self.status != "passed"

    def sample_json(self) -> str | None:
        if self.error is not None:
            return json.dumps({"error": self.error}, sort_keys=True)
        if not self.sample:
            return None
        text = json.dumps([dict(row) for row in self.sample], sort_keys=True, default=_json_value)
        return text if len(text) <= MAX_SAMPLE_CHARS else text[: MAX_SAMPLE_CHARS - 3] + "..."

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "type": self.type,
            "severity": self.severity,
            "status": self.status,
            "failing_rows": self.failing_rows,
            "sample": [dict(r) for r in self.sample],
            "duration_ms": self.duration_ms,
            "error": self.error,
        }


def run_checks(
    endpoint: Endpoint, run_date: date, run_time: datetime, catalog: Catalog, warehouse: CheckWarehouse
) -> list[CheckResult]:
    """Run every check of the endpoint on its `run_date` partition, in definition order.

    A check that cannot run is an `error` result, not an exception: the other checks still
    run and the partition is failed (for `error` severity) with the reason recorded. A
    `TransientError` (the warehouse is unavailable) propagates: in GCP monitor then answers
    503 and Pub/Sub redelivers the notification.
    """
    params = {"run_date": run_date, "run_time": run_time}
    results: list[CheckResult] = []
    for query in check_queries(endpoint, catalog):
        started = time.perf_counter()
        try:
            rows = warehouse.query(query.sql, params)
        except TransientError:
            raise  # the warehouse is unavailable: nothing is recorded, the caller retries the whole run
        except PlatformError as exc:
            elapsed = _ms(started)
            results.append(
                CheckResult(query.name, query.type, query.severity, "error", None, (), elapsed, error=str(exc))
            )
            continue
        elapsed = _ms(started)
        failing = int(rows[0][FAILING_COUNT_COLUMN]) if rows else 0
        sample = tuple(_redacted({k: v for k, v in row.items() if k != FAILING_COUNT_COLUMN}) for row in rows)
        results.append(
            CheckResult(query.name, query.type, query.severity, "failed" if failing else "passed", failing, sample, elapsed)
        )
    return results


def blocking_failures(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.blocking]


def check_result_rows(
    results: Sequence[CheckResult], *, run_id: str, endpoint: str, partition: date, checked_at: datetime
) -> list[dict[str, Any]]:
    """The `platform.check_results` rows of a run's results."""
    return [
        {
            "run_id": run_id,
            "endpoint": endpoint,
            "partition": partition,
            "check": r.name,
            "type": r.type,
            "status": r.status,
            "severity": r.severity,
            "failing_rows": r.failing_rows,
            "sample": r.sample_json(),
            "duration_ms": r.duration_ms,
            "checked_at": checked_at,
        }
        for r in results
    ]


def record_check_results(
    warehouse: CheckWarehouse,
    results: Sequence[CheckResult],
    *,
    run_id: str,
    endpoint: str,
    partition: date,
    checked_at: datetime,
) -> int:
    rows = check_result_rows(results, run_id=run_id, endpoint=endpoint, partition=partition, checked_at=checked_at)
    return warehouse.insert_rows(CHECK_RESULTS, rows) if rows else 0


def _ms(started: float) -> int:
    return int(round((time.perf_counter() - started) * 1000))


def _redacted(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _redact_value(v) for k, v in row.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return REDACTED_BYTES
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)
