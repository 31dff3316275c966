"""Cloud Functions entry points: thin adapters from functions-framework to `dataplatform.pipeline`.

Business logic never lives here. Each function takes its dependencies from
`dataplatform.settings.runtime()` (built from the environment on first use, then cached
for the life of the instance) and delegates to one use case.

- `collect`   HTTP: a client's batch of events → raw topics (`pipeline/collect.py`).
- `anonymize` CloudEvent (Pub/Sub push / trigger on `<event>-raw`) → clean topics and
  `failed-events` (`pipeline/anonymize_handler.py`); raises only to get a redelivery.
- `forget`    HTTP: crypto-shred one user's keys (`pipeline/forget.py`).
- `monitor`   HTTP (Cloud Scheduler, Data Transfer run notifications): freshness, quality
  checks and waiting partitions (`pipeline/monitor.py`).

Importing this module sets the garbage collector's thresholds for the instance
(`dataplatform/gc_tuning.py` says why and what it saves).
"""

from __future__ import annotations

from typing import Any

import functions_framework
import orjson

from dataplatform.pipeline import anonymize_handler, collect as collect_use_case, forget as forget_use_case
from dataplatform.pipeline import monitor as monitor_use_case
from dataplatform import gc_tuning
from dataplatform.settings import runtime

gc_tuning.apply()


@functions_framework.http
def collect(request: Any) -> tuple[bytes, int, dict[str, str]]:
    return collect_use_case.handle_http(request, runtime().collect_deps())


@functions_framework.cloud_event
def anonymize(cloud_event: Any) -> None:
    anonymize_handler.handle_push(cloud_event, runtime().anonymize_deps())


@functions_framework.http
def forget(request: Any) -> tuple[bytes, int, dict[str, str]]:
    return forget_use_case.handle_http(request, runtime().forget_deps())


@functions_framework.http
def monitor(request: Any) -> tuple[bytes, int, dict[str, str]]:
    status, body = monitor_use_case.handle_http(request, runtime().monitor_deps())
    return orjson.dumps(body, default=str), status, {"Content-Type": "application/json"}
