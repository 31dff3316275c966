"""The Data Transfer Service adapter of monitor's `TransferRuns` port, on a recording fake client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from google.api_core import exceptions

from dataplatform.adapters.bigquery_transfers import BigQueryTransferRuns
from dataplatform.errors import PlatformError, TransientError

UTC = timezone.utc
PARENT = "projects/p/locations/eu"


@dataclass
class Config:
    name: str
    display_name: str


@dataclass
class Run:
    name: str


@dataclass
class Started:
    runs: list[Run]


@dataclass
class FakeClient:
    configs: list[Config]
    fail_with: Exception | None = None
    calls: list[tuple[str, dict]] = field(default_factory=list)

    def list_transfer_configs(self, request: dict):
        self.calls.append(("list", request))
        return iter(self.configs)

    def start_manual_transfer_runs(self, request: dict):
        self.calls.append(("start", request))
        if self.fail_with is not None:
            raise self.fail_with
        return Started([Run(f"{request['parent']}/runs/r{len(self.calls)}")])


def configs() -> list[Config]:
    return [
        Config(f"{PARENT}/transferConfigs/111", "dataplatform endpoint daily_track_plays"),
        Config(f"{PARENT}/transferConfigs/222", "dataplatform endpoint weekly_top_tracks"),
        Config(f"{PARENT}/transferConfigs/333", "someone's own query"),
    ]


def test_a_manual_run_is_started_on_the_endpoints_config_at_the_run_time() -> None:
    client = FakeClient(configs())
    transfers = BigQueryTransferRuns("p", "EU", client)
    name = transfers.start_manual_run("weekly_top_tracks", datetime(2024, 5, 2, 5, 30, tzinfo=UTC))
    assert name == f"{PARENT}/transferConfigs/222/runs/r2"
    (kind, listing), (_, start) = client.calls
    assert (kind, listing) == ("list", {"parent": PARENT, "data_source_ids": ["scheduled_query"]})
    assert start["parent"] == f"{PARENT}/transferConfigs/222"
    assert start["requested_run_time"].ToDatetime(tzinfo=UTC) == datetime(2024, 5, 2, 5, 30, tzinfo=UTC)


def test_configs_are_listed_once() -> None:
    client = FakeClient(configs())
    transfers = BigQueryTransferRuns("p", "eu", client)
    transfers.start_manual_run("daily_track_plays", datetime(2024, 5, 2, 3, 30, tzinfo=UTC))
    transfers.start_manual_run("weekly_top_tracks", datetime(2024, 5, 2, 5, 30, tzinfo=UTC))
    assert [c[0] for c in client.calls] == ["list", "start", "start"]


def test_an_endpoint_without_a_config_is_named() -> None:
    transfers = BigQueryTransferRuns("p", "eu", FakeClient(configs()))
    with pytest.raises(PlatformError, match="endpoint 'playlist_activity' has no scheduled query in projects/p/locations/eu.*pulumi up"):
        transfers.start_manual_run("playlist_activity", datetime(2024, 5, 2, tzinfo=UTC))


@pytest.mark.parametrize("error", [exceptions.ServiceUnavailable("down"), exceptions.TooManyRequests("slow down"), exceptions.DeadlineExceeded("late")])
def test_transient_failures_become_transient_errors(error) -> None:
    transfers = BigQueryTransferRuns("p", "eu", FakeClient(configs(), fail_with=error))
    with pytest.raises(TransientError, match="retry later"):
        transfers.start_manual_run("daily_track_plays", datetime(2024, 5, 2, 3, 30, tzinfo=UTC))


def test_other_api_errors_are_platform_errors() -> None:
    transfers = BigQueryTransferRuns("p", "eu", FakeClient(configs(), fail_with=exceptions.PermissionDenied("no token creator")))
    with pytest.raises(PlatformError, match="starting a run of endpoint daily_track_plays failed in the Data Transfer Service: no token creator"):
        transfers.start_manual_run("daily_track_plays", datetime(2024, 5, 2, 3, 30, tzinfo=UTC))


def test_bad_arguments() -> None:
    with pytest.raises(PlatformError, match="project and a BigQuery location"):
        BigQueryTransferRuns("", "eu")
    with pytest.raises(PlatformError, match="timezone-aware"):
        BigQueryTransferRuns("p", "eu", FakeClient(configs())).start_manual_run("daily_track_plays", datetime(2024, 5, 2))
