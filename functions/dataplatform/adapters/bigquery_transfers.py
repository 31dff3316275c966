"""`pipeline.monitor.TransferRuns` on the BigQuery Data Transfer Service (GCP only).

monitor starts a manual run of an endpoint's scheduled query when a partition that waited
for its upstreams is ready (`startManualTransferRuns` with `requested_run_time`; the run's
`@run_time` is that time, and the script writes the day before it — the run-date convention
of `compile/scheduled_query.py`).

The endpoint's transfer config is found by its display name, `dataplatform endpoint
<name>` (infra/components/data_endpoint.py), among the project's `scheduled_query` configs
in the BigQuery location; the names are listed once and cached for the life of the
instance (a config created later is found by listing again when a name is missing).

Errors: unavailable / rate-limited / deadline → `TransientError` (the caller answers 503
so Pub/Sub redelivers); an endpoint without a transfer config, or any other API error →
`PlatformError` naming it. google-cloud imports are lazy: this module imports without the
library (it is needed only where monitor runs in GCP).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from dataplatform.errors import PlatformError, TransientError

UTC = timezone.utc
DATA_SOURCE = "scheduled_query"
DISPLAY_NAME_PREFIX = "dataplatform endpoint "
"""The display name infra gives an endpoint's transfer config, before the endpoint name."""


class BigQueryTransferRuns:
    """Starts manual runs of endpoints' scheduled queries (see the module docstring)."""

    def __init__(self, project: str, location: str, client: Any | None = None) -> None:
        if not project or not location:
            raise PlatformError("the Data Transfer Service needs a project and a BigQuery location (e.g. EU)")
        self.parent = f"projects/{project}/locations/{location.lower()}"
        self._client = client
        self._configs: dict[str, str] | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import bigquery_datatransfer_v1

            self._client = bigquery_datatransfer_v1.DataTransferServiceClient()
        return self._client

    def config_name(self, endpoint: str) -> str:
        """The resource name of the endpoint's transfer config."""
        with self._lock:
            if self._configs is None or endpoint not in self._configs:
                self._configs = self._list_configs()
            name = self._configs.get(endpoint)
        if name is None:
            raise PlatformError(
                f"endpoint {endpoint!r} has no scheduled query in {self.parent} (no transfer config named "
                f"{DISPLAY_NAME_PREFIX + endpoint!r}); deploy the stack (`pulumi up`) before monitor starts its runs"
            )
        return name

    def _list_configs(self) -> dict[str, str]:
        pages = _call("listing transfer configs", self.client.list_transfer_configs, request={"parent": self.parent, "data_source_ids": [DATA_SOURCE]})
        found: dict[str, str] = {}
        for config in pages:
            display = str(getattr(config, "display_name", "") or "")
            if display.startswith(DISPLAY_NAME_PREFIX):
                found[display[len(DISPLAY_NAME_PREFIX):]] = config.name
        return found

    def start_manual_run(self, endpoint: str, run_time: datetime) -> str:
        """Start one run with `@run_time` = run_time; the new run's resource name."""
        from google.protobuf import timestamp_pb2

        if run_time.tzinfo is None:
            raise PlatformError("run_time must be timezone-aware (UTC)")
        requested = timestamp_pb2.Timestamp()
        requested.FromDatetime(run_time.astimezone(UTC))
        response = _call(
            f"starting a run of endpoint {endpoint}",
            self.client.start_manual_transfer_runs,
            request={"parent": self.config_name(endpoint), "requested_run_time": requested},
        )
        runs = list(getattr(response, "runs", []) or [])
        if not runs:
            raise PlatformError(f"the Data Transfer Service started no run for endpoint {endpoint} at {run_time.isoformat()}")
        return str(runs[0].name)


def _call(what: str, fn: Any, **kwargs: Any) -> Any:
    from google.api_core import exceptions

    try:
        return fn(**kwargs)
    except (exceptions.ServerError, exceptions.TooManyRequests, exceptions.DeadlineExceeded, exceptions.RetryError) as exc:
        raise TransientError(f"{what} failed in the Data Transfer Service ({type(exc).__name__}): retry later") from exc
    except exceptions.GoogleAPICallError as exc:
        raise PlatformError(f"{what} failed in the Data Transfer Service: {exc.message}") from exc
