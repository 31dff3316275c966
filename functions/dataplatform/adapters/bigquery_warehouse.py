"""The cloud warehouse: BigQuery through google-cloud-bigquery.

The same interface as the local DuckDB warehouse (`warehouse_base.ManagedWarehouse`); the
differences are capabilities, not code paths in the use cases. Tables are created from
the compiled `TableSpec`s with what only BigQuery does: column partitioning with partition
expiration (= retention), clustering, `require_partition_filter`, labels. Endpoint
partitions are written as BigQuery scheduled queries write them: a query job with
destination `table$YYYYMMDD` and WRITE_TRUNCATE, which replaces exactly that partition and
fails when a row falls outside it.

`ensure_*` is idempotent and additive: an existing table gets the spec's new NULLABLE
columns (appended, other column properties such as policy tags kept), expiration,
clustering, partition filter, description and labels; anything else (partitioning, a
removed or retyped column) is a PlatformError asking for a new major version.

Rows are checked before streaming (`RowChecker`, the same rules and messages as the local
warehouse), sent as JSON (`insert_rows_json`; timestamps RFC 3339 UTC, bytes base64) in
requests of at most `insert_batch_rows`; errors name the row index and BigQuery's reason,
never the value. Transient API failures (5xx, rate limits, connection resets) raise
`TransientError` so the caller retries; everything else is a `PlatformError`.

The google-cloud-bigquery import is lazy (inside methods) like every Google import.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from dataplatform.adapters.warehouse_base import (
    BaseWarehouse,
    Capabilities,
    InvalidRows,
    Outcome,
    PartitionValue,
    QueryParam,
    RowChecker,
    RowProblem,
    SchemaChange,
    check_identifier,
    fields_from_api,
    infer_params,
    plan_schema_change,
    split_ref,
)
from dataplatform.compile.bigquery_schema import BqField, TableSpec
from dataplatform.compile.sql import SqlSyntaxError
from dataplatform.compile.transpile import query_parameters
from dataplatform.errors import PlatformError, TransientError

UTC = timezone.utc
MS_PER_DAY = 86_400_000

CAPABILITIES = Capabilities(
    supports_partition_decorator=True,
    supports_require_partition_filter=True,
    supports_partition_expiration=True,
    supports_clustering=True,
    transpiles=False,
)

INSERT_BATCH_ROWS = 500
"""Rows per streaming-insert request: BigQuery's recommendation (requests stay far below
the 10 MB limit for event rows)."""

_TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError", "jobBackendError"})


class BigQueryWarehouse(BaseWarehouse):
    """`ManagedWarehouse` on BigQuery in `project` (datasets created in `location`)."""

    name = "bigquery"
    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        *,
        location: str | None = None,
        client: Any = None,
        insert_batch_rows: int = INSERT_BATCH_ROWS,
    ) -> None:
        if client is None:
            from google.cloud import bigquery

            client = bigquery.Client(project=project, location=location)
        self.project = project
        self.location = location
        self.client = client
        self.insert_batch_rows = insert_batch_rows
        self._specs: dict[str, TableSpec] = {}
        self._checkers: dict[str, RowChecker] = {}

    def __repr__(self) -> str:
        return f"BigQueryWarehouse(project={self.project!r}, location={self.location!r})"

    def _id(self, dataset: str, table: str | None = None) -> str:
        return f"{self.project}.{dataset}" + (f".{table}" if table else "")

    # ----------------------------------------------------------------- datasets, tables, views

    def ensure_dataset(
        self,
        name: str,
        *,
        description: str = "",
        labels: Mapping[str, str] | None = None,
        default_partition_expiration_days: int | None = None,
    ) -> Outcome:
        """Create the dataset, or bring its description, labels and default expiration in line."""
        from google.api_core import exceptions
        from google.cloud import bigquery

        check_identifier(name, "dataset")
        dataset_id = self._id(name)
        expiration_ms = default_partition_expiration_days * MS_PER_DAY if default_partition_expiration_days else None
        what = f"creating dataset {dataset_id}"
        try:
            existing = self._lookup(what, self.client.get_dataset, dataset_id)
        except exceptions.NotFound:
            dataset = bigquery.Dataset(dataset_id)
            if self.location:
                dataset.location = self.location
            dataset.description = description or None
            dataset.labels = dict(labels or {})
            dataset.default_partition_expiration_ms = expiration_ms
            try:
                self._lookup(what, self.client.create_dataset, dataset)
                return "created"
            except exceptions.Conflict:  # created meanwhile by another deploy: compare with it
                existing = self._lookup(what, self.client.get_dataset, dataset_id)
        changed = []
        if description and existing.description != description:
            existing.description = description
            changed.append("description")
        if labels and any(existing.labels.get(k) != v for k, v in labels.items()):
            existing.labels = {**existing.labels, **labels}
            changed.append("labels")
        if expiration_ms is not None and existing.default_partition_expiration_ms != expiration_ms:
            existing.default_partition_expiration_ms = expiration_ms
            changed.append("default_partition_expiration_ms")
        if not changed:
            return "unchanged"
        self._call(f"updating dataset {dataset_id}", self.client.update_dataset, existing, changed)
        return "updated"

    def table_resource(self, spec: TableSpec) -> Any:
        """The `bigquery.Table` a spec describes (what `ensure_table` creates)."""
        from google.cloud import bigquery

        table = bigquery.Table(
            self._id(spec.dataset, spec.table),
            schema=[bigquery.SchemaField.from_api_repr(f.to_api()) for f in spec.fields],
        )
        if spec.partition_field:
            table.time_partitioning = bigquery.TimePartitioning(
                type_=spec.partition_type,
                field=spec.partition_field,
                expiration_ms=spec.expiration_days * MS_PER_DAY if spec.expiration_days else None,
            )
            table.require_partition_filter = spec.require_partition_filter
        elif spec.require_partition_filter:
            raise PlatformError(f"table {spec.ref} requires a partition filter but has no partition field")
        table.clustering_fields = list(spec.clustering) or None
        table.description = spec.description or None
        table.labels = dict(spec.labels)
        return table

    def ensure_table(self, spec: TableSpec) -> Outcome:
        """Create the table from its spec, or align an existing one additively (see module doc)."""
        outcome = self._ensure_table(spec)
        self._specs[spec.ref] = spec  # rows are checked against the definition from now on
        self._checkers.pop(spec.ref, None)
        return outcome

    def _ensure_table(self, spec: TableSpec) -> Outcome:
        from google.api_core import exceptions

        ref = spec.ref
        split_ref(ref)
        wanted = self.table_resource(spec)
        table_id = self._id(spec.dataset, spec.table)
        what = f"creating table {table_id}"
        try:
            existing = self._lookup(what, self.client.get_table, table_id)
        except exceptions.NotFound:
            try:
                self._lookup(what, self.client.create_table, wanted)
                return "created"
            except exceptions.Conflict:  # created meanwhile by another deploy: compare with it
                existing = self._lookup(what, self.client.get_table, table_id)
        changed = self._align(existing, wanted, spec)
        if not changed:
            return "unchanged"
        self._call(f"updating table {ref}", self.client.update_table, existing, changed)
        return "updated"

    def _align(self, existing: Any, wanted: Any, spec: TableSpec) -> list[str]:
        """Set on `existing` what differs from `wanted`; the names of the changed properties."""
        from google.cloud import bigquery

        ref = spec.ref
        if getattr(existing, "table_type", "TABLE") not in (None, "TABLE"):
            raise PlatformError(f"{ref} exists as a {existing.table_type}, not a table; drop or rename it")
        old_api = [f.to_api_repr() for f in existing.schema]
        changes = plan_schema_change(ref, fields_from_api(old_api), spec.fields)
        old_tp, new_tp = existing.time_partitioning, wanted.time_partitioning
        old_layout = (old_tp.type_, old_tp.field) if old_tp else None
        new_layout = (new_tp.type_, new_tp.field) if new_tp else None
        if old_layout != new_layout:
            raise PlatformError(
                f"table {ref} is partitioned {_layout(old_layout)} but the definition says {_layout(new_layout)}; "
                "BigQuery cannot change a table's partitioning: publish a new major version (a new table)"
            )
        changed: list[str] = []
        if changes:
            existing.schema = [bigquery.SchemaField.from_api_repr(f) for f in _merge_api(old_api, changes)]
            changed.append("schema")
        if old_tp and old_tp.expiration_ms != new_tp.expiration_ms:
            existing.time_partitioning = bigquery.TimePartitioning(
                type_=new_tp.type_, field=new_tp.field, expiration_ms=new_tp.expiration_ms
            )
            changed.append("time_partitioning")
        if list(existing.clustering_fields or []) != list(wanted.clustering_fields or []):
            existing.clustering_fields = wanted.clustering_fields
            changed.append("clustering_fields")
        if new_tp and bool(existing.require_partition_filter) != bool(wanted.require_partition_filter):
            existing.require_partition_filter = wanted.require_partition_filter
            changed.append("require_partition_filter")
        if (existing.description or None) != (wanted.description or None):
            existing.description = wanted.description
            changed.append("description")
        labels = dict(existing.labels or {})
        if any(labels.get(k) != v for k, v in wanted.labels.items()):
            existing.labels = {**labels, **wanted.labels}
            changed.append("labels")
        return changed

    def ensure_view(self, dataset: str, name: str, sql: str, *, description: str = "") -> Outcome:
        """Create the view (standard SQL), or update its query and description."""
        from google.api_core import exceptions
        from google.cloud import bigquery

        check_identifier(dataset, "dataset")
        check_identifier(name, "view")
        view_id = self._id(dataset, name)
        what = f"creating view {view_id}"
        try:
            existing = self._lookup(what, self.client.get_table, view_id)
        except exceptions.NotFound:
            view = bigquery.Table(view_id)
            view.view_query = sql
            view.view_use_legacy_sql = False
            view.description = description or None
            try:
                self._lookup(what, self.client.create_table, view)
                return "created"
            except exceptions.Conflict:
                existing = self._lookup(what, self.client.get_table, view_id)
        if getattr(existing, "table_type", "VIEW") not in (None, "VIEW"):
            raise PlatformError(f"{dataset}.{name} exists as a {existing.table_type}, not a view; drop or rename it")
        changed = []
        if existing.view_query != sql:
            existing.view_query = sql
            existing.view_use_legacy_sql = False
            changed.append("view_query")
        if (existing.description or None) != (description or None):
            existing.description = description or None
            changed.append("description")
        if not changed:
            return "unchanged"
        self._call(f"updating view {view_id}", self.client.update_table, existing, changed)
        return "updated"

    def table_exists(self, table_ref: str) -> bool:
        """True for a table or a view."""
        from google.api_core import exceptions

        dataset, table = split_ref(table_ref)
        try:
            self._lookup(f"looking up {table_ref}", self.client.get_table, self._id(dataset, table))
        except exceptions.NotFound:
            return False
        return True

    # ----------------------------------------------------------------- writes

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Stream rows (checked first) with `insert_rows_json`; returns how many were written."""
        if not rows:
            return 0
        dataset, table = split_ref(table_ref)
        checker = self._checker(table_ref)
        problems = checker.problems(rows)
        if problems:
            raise InvalidRows(table_ref, problems, len(rows))
        table_id = self._id(dataset, table)
        written = 0
        for start in range(0, len(rows), self.insert_batch_rows):
            chunk = [_json_row(row) for row in rows[start : start + self.insert_batch_rows]]
            errors = self._call(f"inserting into {table_ref}", self.client.insert_rows_json, table_id, chunk)
            if errors:
                raise InvalidRows(table_ref, _row_problems(errors, start), len(rows), written)
            written += len(chunk)
        return written

    def _checker(self, table_ref: str) -> RowChecker:
        checker = self._checkers.get(table_ref)
        if checker is None:
            spec = self._specs.get(table_ref)
            if spec is not None:
                fields: tuple[BqField, ...] = spec.fields
            else:
                from google.api_core import exceptions

                dataset, table = split_ref(table_ref)
                try:
                    existing = self._lookup(f"looking up {table_ref}", self.client.get_table, self._id(dataset, table))
                except exceptions.NotFound:
                    raise PlatformError(f"table {table_ref} does not exist in project {self.project}; deploy it first") from None
                fields = fields_from_api([f.to_api_repr() for f in existing.schema])
            checker = self._checkers[table_ref] = RowChecker(fields)
        return checker

    def replace_partition(
        self,
        table_ref: str,
        partition_field: str,
        partition_value: date | datetime,
        select_sql: str,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Query job into `table$YYYYMMDD` (or `$YYYYMMDDHH`) with WRITE_TRUNCATE: the rows written.

        BigQuery itself refuses rows outside the partition. `partition_field` is checked
        against the table's partitioning when the table's spec is known.
        """
        from google.cloud import bigquery

        partition = PartitionValue.of(partition_value)
        dataset, table = split_ref(table_ref)
        spec = self._specs.get(table_ref)
        if spec is not None and spec.partition_field != partition_field:
            raise PlatformError(
                f"table {table_ref} is partitioned by {spec.partition_field!r}, not {partition_field!r}"
            )
        destination = f"{self._id(dataset, table)}${partition.decorator}"
        config = bigquery.QueryJobConfig(
            destination=destination,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            query_parameters=self._parameters(select_sql, params),
            use_legacy_sql=False,
        )
        what = f"writing partition {partition.label()} of {table_ref}"
        job = self._call(what, self.client.query, select_sql, job_config=config)
        result = self._call(what, job.result)
        return int(result.total_rows or 0)

    # ----------------------------------------------------------------- reads

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query job with typed parameters; rows as dicts of python values."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=self._parameters(sql, params), use_legacy_sql=False)
        job = self._call("the query", self.client.query, sql, job_config=config)
        rows = self._call("the query", job.result)
        return [dict(row.items()) for row in rows]

    def _parameters(self, sql: str, params: Mapping[str, Any] | None) -> list[Any]:
        """Query parameters for the ones the SQL uses (all given ones if sqlglot cannot parse it)."""
        typed = infer_params(params)
        try:
            used = query_parameters(sql)
        except SqlSyntaxError:
            used = tuple(typed)
        missing = [name for name in used if name not in typed]
        if missing:
            raise PlatformError(
                f"the query uses parameter(s) {', '.join('@' + m for m in missing)} that were not given "
                f"(given: {', '.join('@' + k for k in sorted(typed)) or 'none'})"
            )
        return [_query_parameter(typed[name]) for name in used]

    # ----------------------------------------------------------------- errors

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the client; transient failures → TransientError, API errors → PlatformError."""
        return self._call_expecting((), what, fn, *args, **kwargs)

    def _lookup(self, what: str, fn: Any, *args: Any) -> Any:
        """`_call` for get/create calls whose NotFound / Conflict the caller handles."""
        from google.api_core import exceptions

        return self._call_expecting((exceptions.NotFound, exceptions.Conflict), what, fn, *args)

    def _call_expecting(self, expected: tuple[type[BaseException], ...], what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from google.api_core import exceptions

        try:
            return fn(*args, **kwargs)
        except expected:
            raise
        except (exceptions.ServerError, exceptions.TooManyRequests, exceptions.RetryError) as exc:
            raise TransientError(f"{what} failed in BigQuery ({type(exc).__name__}): retry later") from exc
        except exceptions.GoogleAPICallError as exc:
            reasons = {e.get("reason") for e in (exc.errors or []) if isinstance(e, Mapping)}
            if reasons & _TRANSIENT_REASONS:
                raise TransientError(f"{what} failed in BigQuery ({', '.join(sorted(r for r in reasons if r))}): retry later") from exc
            raise PlatformError(f"{what} failed in BigQuery: {exc.message}") from exc
        except Exception as exc:
            if isinstance(exc, _transport_errors()):
                raise TransientError(f"{what} failed: BigQuery unreachable ({type(exc).__name__}); retry later") from exc
            raise


# --------------------------------------------------------------------------- helpers


def _layout(layout: tuple[str, str] | None) -> str:
    return f"by {layout[1]} ({layout[0]})" if layout else "not at all"


def _merge_api(api_fields: list[dict], changes: Sequence[SchemaChange]) -> list[dict]:
    """The existing REST schema with the new columns appended where they belong.

    Works on the API JSON so every property of existing columns (policy tags, default
    values, max length) is kept as BigQuery returned it.
    """
    merged = [dict(f) for f in api_fields]
    for change in changes:
        siblings = merged
        for step in change.parent.split(".") if change.parent else []:
            parent = next(f for f in siblings if f["name"] == step)
            parent["fields"] = [dict(f) for f in parent.get("fields", [])]
            siblings = parent["fields"]
        siblings.append(change.field.to_api())
    return merged


def _query_parameter(param: QueryParam) -> Any:
    from google.cloud import bigquery

    if param.array:
        return bigquery.ArrayQueryParameter(param.name, param.type, list(param.value))
    return bigquery.ScalarQueryParameter(param.name, param.type, param.value)


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    """A python value as BigQuery's streaming JSON takes it."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _row_problems(errors: Sequence[Mapping[str, Any]], offset: int) -> list[RowProblem]:
    """`insert_rows_json` errors as problems: row index in the batch, location, reason.

    BigQuery's messages can quote the offending value, so only its `reason` and
    `location` (the column) are kept. Rows marked `stopped` were fine but not written
    because another row of the request was invalid.
    """
    problems: list[RowProblem] = []
    for entry in errors:
        index = offset + int(entry.get("index", 0))
        details = [e for e in entry.get("errors", []) if e.get("reason") != "stopped"]
        for detail in details:
            problems.append(RowProblem(index, str(detail.get("location") or ""), f"rejected by BigQuery ({detail.get('reason') or 'invalid'})"))
    if not problems and errors:
        problems = [RowProblem(offset + int(errors[0].get("index", 0)), "", "rejected by BigQuery (stopped)")]
    return problems


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures below the client (requests, google-auth, sockets)."""
    import requests
    from google.auth import exceptions as auth_exceptions

    return (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        auth_exceptions.TransportError,
        ConnectionError,
        TimeoutError,
    )
