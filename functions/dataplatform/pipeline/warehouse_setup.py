"""Create (or bring up to date) every warehouse object the catalog defines.

One use case for both warehouses: the local stack runs it at `local up` on DuckDB, and it
can run against BigQuery the same way (infra creates the cloud tables with Pulumi from the
same specs; this is what the local stack and tests use, and a check that both agree).

What exists afterwards, in this order (an object is created after what it depends on):
1. datasets `events`, `endpoints`, `platform`;
2. each event table `events.<name>_v<major>` and its dedup view `events.<…>_dedup`;
3. the platform tables: `platform.failed_events`, `runs`, `partitions`, `check_results`,
   `freshness`;
4. each endpoint table `endpoints.<name>` (columns inferred from its SQL), upstream
   endpoints first.

Idempotent: a second run reports every object `unchanged`. Changes within a major
version are additive (`ensure_table` adds new NULLABLE columns); anything else stops with
a PlatformError naming the table and the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dataplatform.compile.bigquery_schema import TableSpec, event_table
from dataplatform.compile.endpoint_schema import dependency_order, endpoint_table
from dataplatform.compile.platform_tables import platform_tables
from dataplatform.compile.views import ViewSpec, dedup_view
from dataplatform.definitions.models import ENDPOINTS_DATASET, EVENTS_DATASET, PLATFORM_DATASET

if TYPE_CHECKING:
    from dataplatform.adapters.warehouse_base import ManagedWarehouse, Outcome
    from dataplatform.definitions.loader import Catalog

DATASETS: tuple[tuple[str, str], ...] = (
    (
        EVENTS_DATASET,
        "Anonymized events: one table per event type and major version (rows may repeat, "
        "read the <table>_dedup views).",
    ),
    (ENDPOINTS_DATASET, "Data endpoints: tables written one daily partition at a time by scheduled queries."),
    (PLATFORM_DATASET, "The platform's own records: failed events, endpoint runs, partition states, check results, freshness."),
)
DATASET_LABELS = {"owner": "platform", "domain": "platform"}


@dataclass(frozen=True)
class WarehousePlan:
    """Every object of the warehouse, in creation order."""

    datasets: tuple[tuple[str, str], ...]
    tables: tuple[TableSpec, ...]
    views: tuple[ViewSpec, ...]


@dataclass(frozen=True)
class SetupStep:
    """What `ensure_warehouse` did to one object."""

    kind: Literal["dataset", "table", "view"]
    ref: str
    outcome: Outcome


def warehouse_plan(catalog: Catalog) -> WarehousePlan:
    """The datasets, tables and views of a catalog (pure; endpoint columns inferred from SQL)."""
    event_tables = tuple(event_table(schema) for schema in catalog.schemas)
    views = tuple(dedup_view(schema) for schema in catalog.schemas)
    endpoint_tables = tuple(endpoint_table(endpoint, catalog) for endpoint in dependency_order(catalog))
    return WarehousePlan(DATASETS, (*event_tables, *platform_tables(), *endpoint_tables), views)


def ensure_warehouse(warehouse: ManagedWarehouse, catalog: Catalog) -> list[SetupStep]:
    """Create or update every dataset, table and view of `catalog`; what happened to each."""
    plan = warehouse_plan(catalog)
    steps: list[SetupStep] = []
    for name, description in plan.datasets:
        outcome = warehouse.ensure_dataset(name, description=description, labels=DATASET_LABELS)
        steps.append(SetupStep("dataset", name, outcome))
    views = {view.ref.removesuffix("_dedup"): view for view in plan.views}
    for spec in plan.tables:
        steps.append(SetupStep("table", spec.ref, warehouse.ensure_table(spec)))
        view = views.get(spec.ref)
        if view is not None:
            outcome = warehouse.ensure_view(view.dataset, view.view, view.sql, description=view.description)
            steps.append(SetupStep("view", view.ref, outcome))
    return steps
