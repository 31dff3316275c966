"""The composition: definitions + stack config → Platform, EventPipelines, DataEndpoints.

`__main__.py` (what `pulumi up` runs) and `plan.py` (the offline plan under mocks) both call
`compose`, so the plan shows exactly the program that deploys. Nothing here decides a
resource property; the components do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp

from dataplatform.compile.endpoint_schema import dependency_order
from dataplatform.definitions.loader import Catalog, load_catalog
from infra.archive import FunctionsArchive, build_archive
from infra.components.data_endpoint import DataEndpoint, DataEndpointArgs
from infra.components.event_pipeline import EventPipeline, EventPipelineArgs
from infra.components.platform import Platform, PlatformArgs
from infra.config import Selection, StackConfig, select

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Deployment:
    """The components of one stack, by definition key (tests read their outputs)."""

    platform: Platform
    pipelines: Mapping[str, EventPipeline]
    endpoints: Mapping[str, DataEndpoint]
    exports: Mapping[str, Any]
    """The stack outputs (`pulumi stack output`)."""


def compose(
    catalog: Catalog, config: StackConfig, archive: FunctionsArchive, *, include: frozenset[str] | None = None
) -> Deployment:
    """Declare every resource of the stack and export its outputs.

    `include` (event keys and endpoint names) limits which pipelines and endpoints are
    declared, for the offline plan that spreads one program over several processes; the
    platform is always declared, and `pulumi up` always declares everything.
    """
    selection = select(catalog, config)
    if include is not None:
        selection = Selection(
            tuple(s for s in selection.schemas if s.key in include),
            tuple(e for e in selection.endpoints if e.name in include),
        )
    platform = Platform("platform", PlatformArgs(config=config, archive=archive))
    pipelines = {
        schema.key: EventPipeline(schema.key, EventPipelineArgs(schema=schema, platform=platform.refs))
        for schema in selection.schemas
    }
    tables: dict[str, gcp.bigquery.Table] = {}
    for schema in selection.schemas:
        tables[schema.table_ref] = pipelines[schema.key].table
        tables[f"events.{schema.dedup_view}"] = pipelines[schema.key].dedup_view
    selected = {e.name for e in selection.endpoints}
    endpoints: dict[str, DataEndpoint] = {}
    for endpoint in dependency_order(catalog):
        if endpoint.name not in selected:
            continue
        endpoints[endpoint.name] = DataEndpoint(
            endpoint.name,
            DataEndpointArgs(endpoint=endpoint, catalog=catalog, platform=platform.refs, tables=dict(tables)),
        )
        tables[endpoint.table_ref] = endpoints[endpoint.name].table

    exports = {
        "collect_url": platform.collect_url,
        "event_types": sorted(pipelines),
        "endpoints": sorted(endpoints),
        "dead_letter_commands": {key: pipelines[key].dead_letter_command for key in sorted(pipelines)},
    }
    for name, value in exports.items():
        pulumi.export(name, value)
    return Deployment(platform=platform, pipelines=pipelines, endpoints=endpoints, exports=exports)


def run(root: Path = REPO_ROOT) -> Deployment:
    """The program `pulumi up` runs: the repository's definitions with the stack's config."""
    return compose(load_catalog(root), StackConfig.from_pulumi(), build_archive(root))
