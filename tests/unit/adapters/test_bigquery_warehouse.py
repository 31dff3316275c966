"""The BigQuery warehouse against a recording fake `bigquery.Client` (BigQuery has no emulator).

The fake keeps resources as the REST API's JSON, hands out fresh `bigquery.Table` /
`Dataset` objects on every get (as the service does) and applies updates exactly as the
real client sends them (`_build_resource(fields)`: only the named properties). So these
tests check the resources, job configurations and parameters the adapter really produces.
"""

from __future__ import annotations

import dataclasses

import base64
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.cloud import bigquery
from google.cloud.bigquery.table import Row

from dataplatform import ports
from dataplatform.adapters.bigquery_warehouse import BigQueryWarehouse
from dataplatform.adapters.warehouse_base import InvalidRows, ManagedWarehouse
from dataplatform.compile.bigquery_schema import BqField, event_table
from dataplatform.compile.endpoint_schema import endpoint_table
from dataplatform.compile.platform_tables import platform_tables
from dataplatform.errors import PlatformError, TransientError
from tests.golden import assert_golden

PROJECT = "demo-project"
UTC = timezone.utc
DAY_MS = 86_400_000
SECRET = "SECRET-VALUE-1234"


class FakeJob:
    def __init__(self, outcome: list[dict] | Exception) -> None:
        self.outcome = outcome

    def result(self) -> Any:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return FakeRows(self.outcome)


class FakeRows(list):
    """What `QueryJob.result()` returns: iterable `Row`s and `total_rows`."""

    def __init__(self, rows: list[dict]) -> None:
        names = list(rows[0]) if rows else []
        super().__init__(Row(tuple(r[n] for n in names), {n: i for i, n in enumerate(names)}) for r in rows)
        self.total_rows = len(rows)


class FakeClient:
    """Datasets and tables as REST JSON; every call recorded as (method, args...)."""

    def __init__(self) -> None:
        self.datasets: dict[str, dict] = {}
        self.tables: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.inserted: list[tuple[str, list[dict]]] = []
        self.insert_errors: list[list[dict]] = []
        self.on_query: Callable[[str, Any], list[dict] | Exception] = lambda sql, config: []
        self.fail_next: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    # datasets
    def get_dataset(self, ref: str) -> bigquery.Dataset:
        self.calls.append(("get_dataset", ref))
        self._maybe_fail()
        if ref not in self.datasets:
            raise exceptions.NotFound(f"Dataset {ref} not found")
        return bigquery.Dataset.from_api_repr(json.loads(json.dumps(self.datasets[ref])))

    def create_dataset(self, dataset: bigquery.Dataset) -> bigquery.Dataset:
        self.calls.append(("create_dataset", dataset.full_dataset_id if hasattr(dataset, "full_dataset_id") else dataset))
        ref = f"{dataset.project}.{dataset.dataset_id}"
        if ref in self.datasets:
            raise exceptions.Conflict(f"Already Exists: Dataset {ref}")
        self.datasets[ref] = dataset.to_api_repr()
        return dataset

    def update_dataset(self, dataset: bigquery.Dataset, fields: list[str]) -> bigquery.Dataset:
        self.calls.append(("update_dataset", f"{dataset.project}.{dataset.dataset_id}", tuple(fields)))
        self.datasets[f"{dataset.project}.{dataset.dataset_id}"].update(dataset._build_resource(fields))
        return dataset

    # tables and views
    def get_table(self, ref: str) -> bigquery.Table:
        self.calls.append(("get_table", ref))
        self._maybe_fail()
        if ref not in self.tables:
            raise exceptions.NotFound(f"Table {ref} not found")
        return bigquery.Table.from_api_repr(json.loads(json.dumps(self.tables[ref])))

    def create_table(self, table: bigquery.Table) -> bigquery.Table:
        ref = f"{table.project}.{table.dataset_id}.{table.table_id}"
        self.calls.append(("create_table", ref))
        self._maybe_fail()
        if ref in self.tables:
            raise exceptions.Conflict(f"Already Exists: Table {ref}")
        resource = table.to_api_repr()
        resource["type"] = "VIEW" if "view" in resource else "TABLE"
        self.tables[ref] = resource
        return table

    def update_table(self, table: bigquery.Table, fields: list[str]) -> bigquery.Table:
        ref = f"{table.project}.{table.dataset_id}.{table.table_id}"
        self.calls.append(("update_table", ref, tuple(fields)))
        self.tables[ref].update(table._build_resource(fields))
        return table

    # data
    def insert_rows_json(self, table: str, rows: list[dict]) -> list[dict]:
        self.calls.append(("insert_rows_json", table, len(rows)))
        self._maybe_fail()
        json.dumps(rows)  # what the client would send must be JSON
        errors = self.insert_errors.pop(0) if self.insert_errors else []
        if not errors:
            self.inserted.append((table, rows))
        return errors

    def query(self, sql: str, job_config: Any = None) -> FakeJob:
        self.calls.append(("query", sql, job_config))
        self._maybe_fail()
        return FakeJob(self.on_query(sql, job_config))


@pytest.fixture()
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture()
def warehouse(client: FakeClient) -> BigQueryWarehouse:
    return BigQueryWarehouse(PROJECT, location="EU", client=client, insert_batch_rows=3)


def _calls(client: FakeClient, method: str) -> list[tuple]:
    return [c for c in client.calls if c[0] == method]


# --------------------------------------------------------------------------- interface


def test_implements_the_warehouse_ports(warehouse: BigQueryWarehouse) -> None:
    assert isinstance(warehouse, ports.Warehouse)
    assert isinstance(warehouse, ManagedWarehouse)
    assert warehouse.name == "bigquery"
    caps = warehouse.capabilities
    assert caps.supports_partition_decorator and caps.supports_require_partition_filter
    assert caps.supports_partition_expiration and caps.supports_clustering and not caps.transpiles


# --------------------------------------------------------------------------- datasets


def test_dataset_is_created_with_location_and_default_expiration(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    outcome = warehouse.ensure_dataset("scratch", description="Scratch.", labels={"owner": "platform"}, default_partition_expiration_days=7)
    assert outcome == "created"
    assert client.datasets[f"{PROJECT}.scratch"] == {
        "datasetReference": {"projectId": PROJECT, "datasetId": "scratch"},
        "location": "EU",
        "description": "Scratch.",
        "labels": {"owner": "platform"},
        "defaultPartitionExpirationMs": str(7 * DAY_MS),
    }
    assert warehouse.ensure_dataset("scratch", description="Scratch.", labels={"owner": "platform"}, default_partition_expiration_days=7) == "unchanged"
    assert not _calls(client, "update_dataset")


def test_dataset_differences_are_updated(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    warehouse.ensure_dataset("scratch", description="Old.", labels={"team": "x"})
    outcome = warehouse.ensure_dataset("scratch", description="New.", labels={"owner": "platform"}, default_partition_expiration_days=3)
    assert outcome == "updated"
    assert _calls(client, "update_dataset") == [
        ("update_dataset", f"{PROJECT}.scratch", ("description", "labels", "default_partition_expiration_ms"))
    ]
    stored = client.datasets[f"{PROJECT}.scratch"]
    assert stored["description"] == "New."
    assert stored["labels"] == {"team": "x", "owner": "platform"}  # labels set by others are kept
    assert stored["defaultPartitionExpirationMs"] == str(3 * DAY_MS)


def test_dataset_created_concurrently_is_compared_not_failed(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    original_get = client.get_dataset
    state = {"first": True}

    def racing_get(ref: str) -> bigquery.Dataset:
        if state.pop("first", False):
            client.datasets[ref] = {"datasetReference": {"projectId": PROJECT, "datasetId": "scratch"}, "labels": {}}
            raise exceptions.NotFound("not yet")
        return original_get(ref)

    client.get_dataset = racing_get  # type: ignore[method-assign]
    assert warehouse.ensure_dataset("scratch", description="Mine.") == "updated"


# --------------------------------------------------------------------------- tables


def test_event_table_has_bigquerys_partitioning_clustering_and_filter(warehouse: BigQueryWarehouse, client: FakeClient, catalog) -> None:
    spec = event_table(catalog.schema("track_played_v1"))
    assert warehouse.ensure_table(spec) == "created"
    table = client.get_table(f"{PROJECT}.events.track_played_v1")
    assert table.time_partitioning.type_ == "HOUR"
    assert table.time_partitioning.field == "event_time"
    assert table.time_partitioning.expiration_ms == 395 * DAY_MS
    assert table.clustering_fields == ["track_id", "user_pseudonym"]
    assert table.require_partition_filter is True
    assert table.labels == {"owner": "team-playback", "domain": "playback"}
    assert table.description == spec.description
    assert [f.to_api_repr() for f in table.schema] == spec.schema_api()


def test_every_example_table_resource_is_golden(warehouse: BigQueryWarehouse, catalog) -> None:
    specs = [event_table(s) for s in catalog.schemas] + list(platform_tables()) + [endpoint_table(e, catalog) for e in catalog.endpoints]
    resources = {spec.ref: warehouse.table_resource(spec).to_api_repr() for spec in specs}
    assert_golden("warehouse/bigquery_tables.json", json.dumps(resources, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def test_platform_table_without_expiration_has_none(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    partitions = dataclasses.replace(next(t for t in platform_tables() if t.table == "partitions"), expiration_days=None)
    warehouse.ensure_table(partitions)
    table = client.get_table(f"{PROJECT}.platform.partitions")
    assert table.time_partitioning.field == "partition" and table.time_partitioning.expiration_ms is None
    assert table.require_partition_filter is False


def test_ensure_table_twice_changes_nothing(warehouse: BigQueryWarehouse, client: FakeClient, catalog) -> None:
    spec = event_table(catalog.schema("track_played_v1"))
    warehouse.ensure_table(spec)
    assert warehouse.ensure_table(spec) == "unchanged"
    assert not _calls(client, "update_table")
    assert len(_calls(client, "create_table")) == 1


def test_new_columns_are_appended_and_existing_properties_kept(warehouse: BigQueryWarehouse, client: FakeClient, catalog) -> None:
    spec = event_table(catalog.schema("track_played_v1"))
    warehouse.ensure_table(spec)
    stored = client.tables[f"{PROJECT}.events.track_played_v1"]
    stored["schema"]["fields"][0]["policyTags"] = {"names": ["projects/p/locations/eu/taxonomies/1/policyTags/2"]}
    context = next(f for f in spec.fields if f.name == "context")
    grown_fields = tuple(
        BqField("context", "RECORD", context.mode, context.description, (*context.fields, BqField("carrier", "STRING")))
        if f.name == "context" else f
        for f in spec.fields
    )
    grown = type(spec)(**{**spec.__dict__, "fields": (*grown_fields[:5], BqField("volume", "FLOAT64"), *grown_fields[5:])})
    assert warehouse.ensure_table(grown) == "updated"
    assert _calls(client, "update_table") == [("update_table", f"{PROJECT}.events.track_played_v1", ("schema",))]
    fields = client.tables[f"{PROJECT}.events.track_played_v1"]["schema"]["fields"]
    assert fields[-1]["name"] == "volume" and fields[-1]["mode"] == "NULLABLE"  # appended, not inserted
    assert [f["name"] for f in fields[:-1]] == [f.name for f in spec.fields]
    assert fields[0]["policyTags"] == {"names": ["projects/p/locations/eu/taxonomies/1/policyTags/2"]}
    context_fields = next(f for f in fields if f["name"] == "context")["fields"]
    assert context_fields[-1] == {"name": "carrier", "type": "STRING", "mode": "NULLABLE"}


def test_layout_changes_are_applied(warehouse: BigQueryWarehouse, client: FakeClient, catalog) -> None:
    spec = event_table(catalog.schema("track_played_v1"))
    warehouse.ensure_table(spec)
    changed = type(spec)(
        **{
            **spec.__dict__,
            "expiration_days": 30,
            "clustering": ("artist_id",),
            "require_partition_filter": False,
            "description": "New words.",
            "labels": {"owner": "team-new", "domain": "playback"},
        }
    )
    assert warehouse.ensure_table(changed) == "updated"
    (call,) = _calls(client, "update_table")
    assert call[2] == ("time_partitioning", "clustering_fields", "require_partition_filter", "description", "labels")
    table = client.get_table(f"{PROJECT}.events.track_played_v1")
    assert table.time_partitioning.expiration_ms == 30 * DAY_MS and table.time_partitioning.type_ == "HOUR"
    assert table.clustering_fields == ["artist_id"]
    assert table.require_partition_filter is False
    assert table.labels == {"owner": "team-new", "domain": "playback"}


def test_partitioning_changes_need_a_new_major_version(warehouse: BigQueryWarehouse, catalog) -> None:
    spec = event_table(catalog.schema("track_played_v1"))
    warehouse.ensure_table(spec)
    daily = type(spec)(**{**spec.__dict__, "partition_type": "DAY"})
    with pytest.raises(PlatformError, match=r"partitioned by event_time \(HOUR\) but the definition says by event_time \(DAY\).*new major version"):
        warehouse.ensure_table(daily)


def test_retyped_column_needs_a_new_major_version(warehouse: BigQueryWarehouse, catalog) -> None:
    spec = event_table(catalog.schema("track_played_v1"))
    warehouse.ensure_table(spec)
    retyped = type(spec)(**{**spec.__dict__, "fields": tuple(BqField(f.name, "STRING", f.mode) if f.name == "ms_played" else f for f in spec.fields)})
    with pytest.raises(PlatformError, match="column ms_played is INT64 in the table but STRING in the definition"):
        warehouse.ensure_table(retyped)


def test_a_view_where_a_table_belongs_is_an_error(warehouse: BigQueryWarehouse, catalog) -> None:
    spec = event_table(catalog.schema("track_played_v1"))
    warehouse.ensure_view("events", "track_played_v1", "SELECT 1 AS x")
    with pytest.raises(PlatformError, match="exists as a VIEW, not a table"):
        warehouse.ensure_table(spec)


def test_views_are_standard_sql_and_updated_in_place(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    assert warehouse.ensure_view("events", "v", "SELECT 1 AS x", description="One.") == "created"
    assert client.tables[f"{PROJECT}.events.v"]["view"] == {"query": "SELECT 1 AS x", "useLegacySql": False}
    assert warehouse.ensure_view("events", "v", "SELECT 1 AS x", description="One.") == "unchanged"
    assert warehouse.ensure_view("events", "v", "SELECT 2 AS x", description="One.") == "updated"
    assert _calls(client, "update_table") == [("update_table", f"{PROJECT}.events.v", ("view_query",))]
    assert client.tables[f"{PROJECT}.events.v"]["view"]["query"] == "SELECT 2 AS x"


def test_table_exists(warehouse: BigQueryWarehouse, catalog) -> None:
    assert not warehouse.table_exists("events.track_played_v1")
    warehouse.ensure_table(event_table(catalog.schema("track_played_v1")))
    assert warehouse.table_exists("events.track_played_v1")


# --------------------------------------------------------------------------- inserts

RUNS = next(t for t in platform_tables() if t.table == "runs")


def run_row(i: int, **overrides: Any) -> dict:
    row = {
        "run_id": f"r{i}",
        "endpoint": "daily_track_plays",
        "run_date": date(2024, 5, 1),
        "run_time": datetime(2024, 5, 2, 3, 30, tzinfo=UTC),
        "status": "succeeded",
        "reason": None,
        "started_at": datetime(2024, 5, 2, 5, 30, tzinfo=timezone(timedelta(hours=2))),
        "finished_at": datetime(2024, 5, 2, 3, 31, 5, 123456),
        "rows_written": 12,
        "recorded_at": datetime(2024, 5, 2, 3, 31, 6, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def test_rows_are_sent_as_json_in_batches(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    warehouse.ensure_table(RUNS)
    assert warehouse.insert_rows("platform.runs", [run_row(i) for i in range(7)]) == 7
    assert [(table, len(rows)) for table, rows in client.inserted] == [(f"{PROJECT}.platform.runs", 3)] * 2 + [(f"{PROJECT}.platform.runs", 1)]
    first = client.inserted[0][1][0]
    assert first == {
        "run_id": "r0",
        "endpoint": "daily_track_plays",
        "run_date": "2024-05-01",
        "run_time": "2024-05-02T03:30:00.000000Z",
        "status": "succeeded",
        "reason": None,
        "started_at": "2024-05-02T03:30:00.000000Z",
        "finished_at": "2024-05-02T03:31:05.123456Z",
        "rows_written": 12,
        "recorded_at": "2024-05-02T03:31:06.000000Z",
    }


def test_bytes_numbers_and_nested_values_become_bigquery_json(warehouse: BigQueryWarehouse, client: FakeClient, catalog) -> None:
    from dataplatform.compile.bigquery_schema import TableSpec

    spec = TableSpec(
        "events", "t",
        (
            BqField("b", "BYTES"), BqField("n", "NUMERIC"), BqField("f", "FLOAT64", "REPEATED"),
            BqField("r", "RECORD", "REPEATED", fields=(BqField("at", "TIMESTAMP"), BqField("raw", "BYTES"))),
        ),
        None, "DAY", None, (), False, "", {},
    )
    warehouse.ensure_table(spec)
    warehouse.insert_rows("events.t", [{"b": b"\x00\xff", "n": Decimal("1.500000000"), "f": [1.5, float("nan"), float("-inf")],
                                         "r": [{"at": datetime(2024, 1, 1, tzinfo=UTC), "raw": b"x"}]}])
    (row,) = client.inserted[0][1]
    assert row == {
        "b": base64.b64encode(b"\x00\xff").decode(), "n": "1.500000000", "f": [1.5, "NaN", "-Infinity"],
        "r": [{"at": "2024-01-01T00:00:00.000000Z", "raw": "eA=="}],
    }


def test_bad_rows_are_refused_before_any_request(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    warehouse.ensure_table(RUNS)
    with pytest.raises(InvalidRows) as info:
        warehouse.insert_rows("platform.runs", [run_row(0), run_row(1, rows_written=SECRET, status=None)])
    assert [(p.index, p.path) for p in info.value.problems] == [(1, "status"), (1, "rows_written")]
    assert SECRET not in str(info.value)
    assert not _calls(client, "insert_rows_json")


def test_rows_bigquery_rejects_name_index_and_reason_not_value(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    warehouse.ensure_table(RUNS)
    client.insert_errors = [
        [],  # the first request (rows 0-2) goes through
        [
            {"index": 0, "errors": [{"reason": "stopped", "location": "", "message": ""}]},
            {"index": 1, "errors": [{"reason": "invalid", "location": "endpoint", "message": f"Value {SECRET} is too long"}]},
        ],
    ]
    with pytest.raises(InvalidRows) as info:
        warehouse.insert_rows("platform.runs", [run_row(i) for i in range(6)])
    error = info.value
    assert [(p.index, p.path, p.reason) for p in error.problems] == [(4, "endpoint", "rejected by BigQuery (invalid)")]
    assert error.written == 3
    assert "rows 0-2 were written" in str(error)
    assert SECRET not in str(error)


def test_rows_are_checked_against_the_live_schema_when_no_spec_is_known(client: FakeClient) -> None:
    BigQueryWarehouse(PROJECT, client=client).ensure_table(RUNS)
    fresh = BigQueryWarehouse(PROJECT, client=client)
    with pytest.raises(InvalidRows, match="row 0: run_date: expected a date, got str"):
        fresh.insert_rows("platform.runs", [run_row(0, run_date="2024-05-01")])
    assert fresh.insert_rows("platform.runs", [run_row(0)]) == 1
    with pytest.raises(PlatformError, match="platform.nope does not exist in project demo-project"):
        fresh.insert_rows("platform.nope", [{"a": 1}])


# --------------------------------------------------------------------------- queries


def test_query_parameters_are_typed_from_python_values(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    client.on_query = lambda sql, config: [{"n": 3, "d": date(2024, 5, 1)}]
    sql = "SELECT @d AS d, @t AS t, @s AS s, @i AS i, @f AS f, @b AS b, @y AS y, @n AS n, 3 AS x FROM x WHERE id IN UNNEST(@ids)"
    rows = warehouse.query(
        sql,
        {
            "d": date(2024, 5, 1), "t": datetime(2024, 5, 1, 12, tzinfo=UTC), "s": "x", "i": 7, "f": 1.5, "b": True,
            "y": b"\x01", "n": Decimal("2.5"), "ids": ["a", "b"], "unused": 1,
        },
    )
    assert rows == [{"n": 3, "d": date(2024, 5, 1)}]
    (_, sent_sql, config) = _calls(client, "query")[0]
    assert sent_sql == sql
    assert config.use_legacy_sql is False
    params = {p.name: p for p in config.query_parameters}
    assert list(params) == ["d", "t", "s", "i", "f", "b", "y", "n", "ids"]  # order of use; @unused not sent
    assert {n: p.type_ for n, p in params.items() if isinstance(p, bigquery.ScalarQueryParameter)} == {
        "d": "DATE", "t": "TIMESTAMP", "s": "STRING", "i": "INT64", "f": "FLOAT64", "b": "BOOL", "y": "BYTES", "n": "NUMERIC",
    }
    assert params["t"].value == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert isinstance(params["ids"], bigquery.ArrayQueryParameter)
    assert (params["ids"].array_type, params["ids"].values) == ("STRING", ["a", "b"])


def test_naive_timestamp_parameters_are_utc(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    warehouse.query("SELECT @t AS t", {"t": datetime(2024, 5, 1, 12)})
    (param,) = _calls(client, "query")[0][2].query_parameters
    assert param.value == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_missing_and_untyped_parameters_are_refused(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    with pytest.raises(PlatformError, match="uses parameter.*@run_date"):
        warehouse.query("SELECT @run_date AS d")
    with pytest.raises(PlatformError, match="@x is NULL"):
        warehouse.query("SELECT @x AS x", {"x": None})
    assert not _calls(client, "query")


def test_row_count_sends_count_sql(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    client.on_query = lambda sql, config: [{"row_count": 42}]
    assert warehouse.row_count("events.track_played_v1", "DATE(event_time) = @d", {"d": date(2024, 5, 1)}) == 42
    (_, sql, config) = _calls(client, "query")[0]
    assert sql == "SELECT COUNT(*) AS row_count FROM events.track_played_v1 WHERE DATE(event_time) = @d"
    assert [p.name for p in config.query_parameters] == ["d"]


# --------------------------------------------------------------------------- partitions


def test_replace_partition_writes_the_decorated_partition_with_write_truncate(warehouse: BigQueryWarehouse, client: FakeClient, catalog) -> None:
    endpoint = catalog.endpoint("daily_track_plays")
    warehouse.ensure_table(endpoint_table(endpoint, catalog))
    client.on_query = lambda sql, config: [{"date": date(2024, 5, 1)}] * 5
    run_date, run_time = date(2024, 5, 1), datetime(2024, 5, 2, 3, 30, tzinfo=UTC)
    written = warehouse.replace_partition("endpoints.daily_track_plays", "date", run_date, endpoint.sql, {"run_date": run_date, "run_time": run_time})
    assert written == 5
    (_, sql, config) = _calls(client, "query")[0]
    assert sql == endpoint.sql
    assert config.destination.path == f"/projects/{PROJECT}/datasets/endpoints/tables/daily_track_plays$20240501"
    assert f"{config.destination.project}.{config.destination.dataset_id}.{config.destination.table_id}" == (
        f"{PROJECT}.endpoints.daily_track_plays$20240501"
    )
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert config.use_legacy_sql is False
    assert [(p.name, p.type_, p.value) for p in config.query_parameters] == [("run_date", "DATE", run_date)]


def test_replace_partition_of_an_hour(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    hour = datetime(2024, 5, 1, 13, tzinfo=UTC)
    warehouse.replace_partition("events.track_played_v1", "event_time", hour, "SELECT * FROM x WHERE TIMESTAMP_TRUNC(event_time, HOUR) = @h", {"h": hour})
    config = _calls(client, "query")[0][2]
    assert config.destination.table_id == "track_played_v1$2024050113"


def test_replace_partition_checks_the_partition_field_of_known_tables(warehouse: BigQueryWarehouse, client: FakeClient, catalog) -> None:
    warehouse.ensure_table(endpoint_table(catalog.endpoint("daily_track_plays"), catalog))
    with pytest.raises(PlatformError, match="partitioned by 'date', not 'day'"):
        warehouse.replace_partition("endpoints.daily_track_plays", "day", date(2024, 5, 1), "SELECT 1 AS x")
    assert not _calls(client, "query")


def test_bigquery_refusing_rows_outside_the_partition_is_a_platform_error(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    client.on_query = lambda sql, config: exceptions.BadRequest("Some rows belong to different partitions rather than destination partition 20240501")
    with pytest.raises(PlatformError, match="writing partition 2024-05-01 of endpoints.x failed in BigQuery: Some rows belong"):
        warehouse.replace_partition("endpoints.x", "date", date(2024, 5, 1), "SELECT 1 AS x")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "error",
    [
        exceptions.ServiceUnavailable("backend down"),
        exceptions.InternalServerError("oops"),
        exceptions.TooManyRequests("slow down"),
        exceptions.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]),
        requests.ConnectionError("connection reset"),
        exceptions.RetryError("deadline", cause=None),
    ],
)
def test_transient_failures_are_transient_errors(warehouse: BigQueryWarehouse, client: FakeClient, error: Exception) -> None:
    client.fail_next = error
    with pytest.raises(TransientError, match="retry"):
        warehouse.query("SELECT 1 AS x")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (exceptions.BadRequest("Syntax error: Unexpected keyword FROM at [1:8]"), "the query failed in BigQuery: Syntax error"),
        (exceptions.Forbidden("Access Denied: Table x", errors=[{"reason": "accessDenied"}]), "Access Denied"),
        (exceptions.NotFound("Not found: Table demo-project:events.nope"), "the query failed in BigQuery: Not found: Table"),
    ],
)
def test_other_api_errors_are_platform_errors(warehouse: BigQueryWarehouse, client: FakeClient, error: Exception, message: str) -> None:
    client.on_query = lambda sql, config: error
    with pytest.raises(PlatformError, match=message) as info:
        warehouse.query("SELECT 1 AS x")
    assert not isinstance(info.value, TransientError)


def test_insert_failures_in_transit_are_transient(warehouse: BigQueryWarehouse, client: FakeClient) -> None:
    warehouse.ensure_table(RUNS)
    client.fail_next = exceptions.ServiceUnavailable("try again")
    with pytest.raises(TransientError, match="inserting into platform.runs failed in BigQuery"):
        warehouse.insert_rows("platform.runs", [run_row(0)])


def test_the_default_client_is_created_lazily_for_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setattr(bigquery, "Client", Recorder)
    warehouse = BigQueryWarehouse("p1", location="europe-west1")
    assert made == [{"project": "p1", "location": "europe-west1"}]
    assert isinstance(warehouse.client, Recorder)
