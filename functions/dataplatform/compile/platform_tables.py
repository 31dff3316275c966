"""The platform's own bookkeeping tables in the `platform` dataset, as `TableSpec`s.

Endpoint runs, partition states, quality-check results and freshness measurements are
data like any other: analysts and on-call engineers query them in the BigQuery console,
the endpoint script reads `platform.partitions` to decide whether its upstreams are ready,
and the same tables exist in the local DuckDB warehouse.

Every one of them is an append-only log: a state change is a new row, never an UPDATE.
BigQuery rejects UPDATE/DELETE on rows still in the streaming buffer (the first ~30
minutes after `insert_rows`), and a log also keeps the history for free. The current
state of a thing is its newest row, e.g. for partitions:

    SELECT * FROM platform.partitions
    QUALIFY ROW_NUMBER() OVER (PARTITION BY table_ref, `partition` ORDER BY updated_at DESC) = 1

`partition` and `check` are SQL keywords: quote them (`` `partition` `` in BigQuery,
`"partition"` in DuckDB; sqlglot does it when SQL is built as a tree).

Partitioning: the logs are partitioned by the time the row was written (`recorded_at`,
`checked_at`), so partition expiration (`PLATFORM_LOG_RETENTION_DAYS`) ages out old
history whatever date a backfill ran for. `platform.partitions` is partitioned by the data
partition it describes and never expires, because readiness of an old partition must stay
known for as long as a backfill may read it.
"""

from __future__ import annotations

from types import MappingProxyType

from dataplatform.compile.bigquery_schema import BqField, TableSpec, failed_events_table
from dataplatform.definitions.models import PLATFORM_DATASET, RETENTION_DAYS

PLATFORM_LOG_RETENTION_DAYS = 400
"""Retention of run, check and freshness history: a year and a month, for year-over-year
comparisons of pipeline health."""

RUN_STATUSES = ("waiting", "running", "succeeded", "failed")
PARTITION_STATUSES = ("waiting", "ready", "succeeded", "failed")
CHECK_STATUSES = ("passed", "failed", "error")
CHECK_SEVERITIES = ("error", "warn")
FRESHNESS_KINDS = ("event", "endpoint")

RUNS_TABLE = "runs"
PARTITIONS_TABLE = "partitions"
CHECK_RESULTS_TABLE = "check_results"
FRESHNESS_TABLE = "freshness"

_LABELS = MappingProxyType({"owner": "platform", "domain": "platform"})


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values)


RUN_COLUMNS: tuple[BqField, ...] = (
    BqField("run_id", "STRING", "REQUIRED", "Id of the run; every status change of one run is a row with the same run_id."),
    BqField("endpoint", "STRING", "REQUIRED", "Name of the data endpoint (table endpoints.<endpoint>)."),
    BqField("run_date", "DATE", "REQUIRED", "The @run_date of the run: the partition it (re)writes."),
    BqField("run_time", "TIMESTAMP", "REQUIRED", "The @run_time of the run: when it was scheduled (UTC)."),
    BqField("status", "STRING", "REQUIRED", f"Status this row records: {_one_of(RUN_STATUSES)}."),
    BqField("reason", "STRING", "NULLABLE", "Why the run waits or failed (upstream not ready, query error, failed checks); NULL otherwise."),
    BqField("started_at", "TIMESTAMP", "NULLABLE", "When the query started; NULL while waiting."),
    BqField("finished_at", "TIMESTAMP", "NULLABLE", "When the run succeeded or failed; NULL before."),
    BqField("rows_written", "INT64", "NULLABLE", "Rows the run wrote into the partition; NULL before it succeeded."),
    BqField("recorded_at", "TIMESTAMP", "REQUIRED", "When this row was written; the newest row of a run_id is its current status. The partitioning column."),
)

PARTITION_COLUMNS: tuple[BqField, ...] = (
    BqField("table_ref", "STRING", "REQUIRED", "The table, as dataset.table (events.<event>_v<major> or endpoints.<endpoint>)."),
    BqField("partition", "DATE", "REQUIRED", "The day partition (UTC) this row describes. The partitioning column."),
    BqField("status", "STRING", "REQUIRED", f"State of the partition: {_one_of(PARTITION_STATUSES)} (ready: an event day is complete after its allowed lateness)."),
    BqField("updated_at", "TIMESTAMP", "REQUIRED", "When the state was recorded; the newest row per (table_ref, partition) is the current state."),
    BqField("run_id", "STRING", "NULLABLE", "The endpoint run that wrote the partition; NULL for event tables."),
    BqField("row_count", "INT64", "NULLABLE", "Rows in the partition when the state was recorded."),
)

CHECK_RESULT_COLUMNS: tuple[BqField, ...] = (
    BqField("run_id", "STRING", "REQUIRED", "The endpoint run whose new partition was checked."),
    BqField("endpoint", "STRING", "REQUIRED", "Name of the data endpoint."),
    BqField("partition", "DATE", "REQUIRED", "The checked partition (the run's @run_date)."),
    BqField("check", "STRING", "REQUIRED", "Name of the check (given in the definition, or derived from its type and columns)."),
    BqField("type", "STRING", "REQUIRED", "Kind of check: not_null, unique, accepted_values, row_count, relationship or sql."),
    BqField("status", "STRING", "REQUIRED", f"Outcome: {_one_of(CHECK_STATUSES)} (error: the check itself could not run)."),
    BqField("severity", "STRING", "NULLABLE", f"Severity from the definition: {_one_of(CHECK_SEVERITIES)}; a failed warn check does not fail the run."),
    BqField("failing_rows", "INT64", "NULLABLE", "How many rows broke the check; NULL when it could not run."),
    BqField("sample", "STRING", "NULLABLE", "A few failing rows as JSON text, for a first look; NULL when none failed."),
    BqField("duration_ms", "INT64", "NULLABLE", "How long the check query took, in milliseconds."),
    BqField("checked_at", "TIMESTAMP", "REQUIRED", "When the check ran. The partitioning column."),
)

FRESHNESS_COLUMNS: tuple[BqField, ...] = (
    BqField("table_ref", "STRING", "REQUIRED", "The table measured, as dataset.table."),
    BqField("kind", "STRING", "REQUIRED", f"What the table is: {_one_of(FRESHNESS_KINDS)}."),
    BqField("newest_complete_partition", "DATE", "NULLABLE", "The newest day partition that is complete (events: ready; endpoints: succeeded); NULL when none is."),
    BqField("deadline", "TIMESTAMP", "NULLABLE", "When the next partition is due (endpoint freshness deadline, or the end of an event day plus its allowed lateness)."),
    BqField("lag_seconds", "INT64", "NULLABLE", "Seconds between checked_at and the end of the newest complete partition."),
    BqField("breached", "BOOL", "REQUIRED", "True when the deadline of a partition has passed without it being complete."),
    BqField("checked_at", "TIMESTAMP", "REQUIRED", "When freshness was measured. The partitioning column."),
)


def runs_table() -> TableSpec:
    """`platform.runs`: every status change of every endpoint run (waiting → running → done)."""
    return TableSpec(
        dataset=PLATFORM_DATASET,
        table=RUNS_TABLE,
        fields=RUN_COLUMNS,
        partition_field="recorded_at",
        partition_type="DAY",
        expiration_days=PLATFORM_LOG_RETENTION_DAYS,
        clustering=("endpoint", "run_date"),
        require_partition_filter=False,
        description="Endpoint runs: one row per status change (waiting, running, succeeded, failed); the newest row of a run_id is its status.",
        labels=_LABELS,
    )


def partitions_table() -> TableSpec:
    """`platform.partitions`: readiness of event-table days and endpoint partitions."""
    return TableSpec(
        dataset=PLATFORM_DATASET,
        table=PARTITIONS_TABLE,
        fields=PARTITION_COLUMNS,
        partition_field="partition",
        partition_type="DAY",
        # partitioned by the day a state is about, so it outlives any table it describes:
        # the longest retention the definitions allow (every table must expire; policy)
        expiration_days=RETENTION_DAYS[1],
        clustering=("table_ref", "status"),
        require_partition_filter=False,
        description="State of each day partition of event and endpoint tables (waiting, ready, succeeded, failed); endpoint runs wait until their upstream partitions are ready or succeeded.",
        labels=_LABELS,
    )


def check_results_table() -> TableSpec:
    """`platform.check_results`: one row per quality check per endpoint run."""
    return TableSpec(
        dataset=PLATFORM_DATASET,
        table=CHECK_RESULTS_TABLE,
        fields=CHECK_RESULT_COLUMNS,
        partition_field="checked_at",
        partition_type="DAY",
        expiration_days=PLATFORM_LOG_RETENTION_DAYS,
        clustering=("endpoint", "status"),
        require_partition_filter=False,
        description="Results of the quality checks run on each new endpoint partition, with a sample of failing rows.",
        labels=_LABELS,
    )


def freshness_table() -> TableSpec:
    """`platform.freshness`: how far behind each table is, measured by the monitor."""
    return TableSpec(
        dataset=PLATFORM_DATASET,
        table=FRESHNESS_TABLE,
        fields=FRESHNESS_COLUMNS,
        partition_field="checked_at",
        partition_type="DAY",
        expiration_days=PLATFORM_LOG_RETENTION_DAYS,
        clustering=("table_ref",),
        require_partition_filter=False,
        description="Freshness of event and endpoint tables: newest complete partition, lag and deadline breaches, per measurement.",
        labels=_LABELS,
    )


def platform_tables() -> tuple[TableSpec, ...]:
    """Every table of the `platform` dataset, failed events first."""
    return (failed_events_table(), runs_table(), partitions_table(), check_results_table(), freshness_table())
