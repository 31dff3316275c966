"""`DataEndpoint`: one endpoint's table, its scheduled query, its identity and its checks.

- The destination table `endpoints.<name>`, with columns inferred from the SQL
  (`compile.endpoint_schema.endpoint_table`), partitioned by the endpoint's DATE column,
  partition expiration = retention, clustered, deletion-protected.
- A BigQuery scheduled query (Data Transfer Service, data source `scheduled_query`):
  the schedule converted from the endpoint's cron (`infra/schedule.py`), the result written
  to the run's partition (`<table>${run_date}`, WRITE_TRUNCATE — a rerun replaces the
  partition, never appends), run as the endpoint's own service account, with every run's
  result published to the platform's `transfer-runs` topic (which pushes to `monitor`).
- The endpoint's service account `dp-q-<name>`: BigQuery job user (project: jobs have no
  resource level), data viewer on exactly the tables and views its SQL reads (a view's
  reader needs its base table too), data editor on its own table. The Data Transfer
  service agent may mint its tokens (token creator on that account only).
- Reader IAM on the table, and a Cloud Scheduler job that calls `monitor` with an OIDC
  token (dp-scheduler) at the endpoint's freshness deadline, for its freshness and
  quality checks.

The scheduled query runs `compile/scheduled_query.scheduled_query_script`: a BigQuery
script that checks `platform.partitions` for upstream readiness (RAISE when not ready, so
monitor records the partition as waiting and restarts it later), then replaces the run's
partition in one transaction. A script cannot have a DTS destination table, so the params
carry only the query; the endpoint's account may read `platform.partitions` and write its
own table.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from dataplatform.compile import sql as sqlc
from dataplatform.compile.endpoint_schema import endpoint_table
from dataplatform.compile.scheduled_query import scheduled_query_script
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.models import ENDPOINTS_DATASET, Endpoint
from infra import builders as b
from infra import names
from infra.components.platform import PlatformRefs, table_args
from infra.schedule import deadline_cron, dts_schedule

TYPE = "dataplatform:infra:DataEndpoint"
DATA_SOURCE = "scheduled_query"


def scheduled_query_sql(endpoint: Endpoint, catalog: Catalog) -> str:
    """What the scheduled query runs: the readiness check, then the partition replace."""
    return scheduled_query_script(endpoint, catalog)


def upstream_tables(endpoint: Endpoint, catalog: Catalog) -> list[str]:
    """`dataset.table` names the endpoint's query reads, views followed by their base table."""
    known = catalog.tables()
    out: list[str] = []
    for ref in sqlc.referenced_tables(sqlc.parse(endpoint.sql)):
        if ref.ref not in known:
            continue
        out.append(ref.ref)
        base = ref.ref.removesuffix("_dedup")
        if base != ref.ref and base in known:
            out.append(base)
    return list(dict.fromkeys(out))


def monitor_request(endpoint: Endpoint) -> dict[str, object]:
    """The JSON body the scheduler job posts to `monitor`."""
    return {"endpoint": endpoint.name, "checks": ["freshness", "quality"]}


def narrowed_catalog(endpoint: Endpoint, catalog: Catalog) -> Catalog:
    """The part of the catalog the endpoint's schema inference needs: what it reads, transitively.

    `endpoint_table` types the query against a catalog; handing it only the upstream tables
    keeps a stack of thousands of event types linear instead of compiling every event table
    once per endpoint.
    """
    by_ref = {e.table_ref: e for e in catalog.endpoints}
    schemas_by_ref = {s.table_ref: s for s in catalog.schemas}
    wanted_endpoints: dict[str, Endpoint] = {}
    wanted_schemas: dict[str, object] = {}
    pending = [endpoint]
    while pending:
        current = pending.pop()
        for ref in sqlc.upstream_refs(current.sql):
            if ref in schemas_by_ref:
                wanted_schemas[ref] = schemas_by_ref[ref]
            elif ref in by_ref and by_ref[ref].name not in wanted_endpoints and by_ref[ref].name != endpoint.name:
                wanted_endpoints[by_ref[ref].name] = by_ref[ref]
                pending.append(by_ref[ref])
    return Catalog(
        root=catalog.root,
        schemas=tuple(s for s in catalog.schemas if s.table_ref in wanted_schemas),
        endpoints=tuple(e for e in catalog.endpoints if e.name in wanted_endpoints or e.name == endpoint.name),
        sources=catalog.sources,
    )


@dataclass(frozen=True)
class DataEndpointArgs:
    endpoint: Endpoint
    catalog: Catalog
    platform: PlatformRefs
    tables: Mapping[str, gcp.bigquery.Table]
    """`dataset.table` → the table or view resource of everything this stack deploys."""


class DataEndpoint(pulumi.ComponentResource):
    """One endpoint's table, scheduled query, identity, readers and monitor job."""

    table: gcp.bigquery.Table

    def __init__(self, name: str, args: DataEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        endpoint, platform = args.endpoint, args.platform
        config = platform.config
        project = config.project
        short = endpoint.name

        # -- identity
        self.service_account = gcp.serviceaccount.Account(
            f"sa-q-{short}",
            project=project,
            account_id=names.endpoint_service_account_id(short),
            display_name=f"dataplatform scheduled query {short}",
            description=f"Runs the scheduled query of endpoint {short}: reads its upstream tables, writes {endpoint.table_ref}.",
            opts=b.child(self, platform.api("iam")),
        )
        member = self.service_account.member
        grants: list[pulumi.Resource] = [
            gcp.projects.IAMMember(
                f"project-bigquery-job-user-q-{short}",
                project=project,
                role=b.BIGQUERY_JOB_USER,
                member=member,
                opts=b.child(self),
            ),
            gcp.serviceaccount.IAMMember(
                f"sa-q-{short}-token-creator-transfer-agent",
                service_account_id=self.service_account.name,
                role=b.TOKEN_CREATOR,
                member=platform.transfer_agent,
                opts=b.child(self),
            ),
        ]
        for ref in upstream_tables(endpoint, args.catalog):
            upstream = args.tables[ref]
            grants.append(
                gcp.bigquery.IamMember(
                    f"{ref}-viewer-q-{short}",
                    project=project,
                    dataset_id=upstream.dataset_id,
                    table_id=upstream.table_id,
                    role=b.BIGQUERY_DATA_VIEWER,
                    member=member,
                    opts=b.child(self),
                )
            )

        # -- the destination table
        narrowed = narrowed_catalog(endpoint, args.catalog)
        spec = endpoint_table(endpoint, narrowed)
        self.table = gcp.bigquery.Table(
            spec.ref,
            **{**table_args(spec, project), "dataset_id": platform.datasets[ENDPOINTS_DATASET].dataset_id},
            opts=b.child(self),
        )
        grants.append(
            gcp.bigquery.IamMember(
                f"{spec.ref}-editor-q-{short}",
                project=project,
                dataset_id=self.table.dataset_id,
                table_id=self.table.table_id,
                role=b.BIGQUERY_DATA_EDITOR,
                member=member,
                opts=b.child(self),
            )
        )
        partitions = platform.record_tables["platform.partitions"]
        grants.append(
            gcp.bigquery.IamMember(
                f"{spec.ref}-reads-platform.partitions",
                project=project,
                dataset_id=partitions.dataset_id,
                table_id=partitions.table_id,
                role=b.BIGQUERY_DATA_VIEWER,
                member=member,
                opts=b.child(self),
            )
        )
        for reader in endpoint.readers:
            gcp.bigquery.IamMember(
                f"{spec.ref}-viewer-{names.dns_label(reader, 120)}",
                project=project,
                dataset_id=self.table.dataset_id,
                table_id=self.table.table_id,
                role=b.BIGQUERY_DATA_VIEWER,
                member=reader,
                opts=b.child(self),
            )

        # -- the scheduled query
        where = f"workflows/{short}.yaml"
        self.transfer_config = gcp.bigquery.DataTransferConfig(
            f"scheduled-query-{short}",
            project=project,
            display_name=f"dataplatform endpoint {short}",
            location=config.bigquery_location,
            data_source_id=DATA_SOURCE,
            schedule=dts_schedule(endpoint.schedule, where=where),
            destination_dataset_id=self.table.dataset_id,
            params={"query": scheduled_query_sql(endpoint, narrowed)},
            service_account_name=self.service_account.email,
            notification_pubsub_topic=platform.transfer_runs_topic.id,
            email_preferences=gcp.bigquery.DataTransferConfigEmailPreferencesArgs(enable_failure_email=False),
            opts=b.child(self, platform.api("bigquerydatatransfer"), *grants),
        )

        # -- freshness and quality checks, at the deadline
        self.monitor_job = gcp.cloudscheduler.Job(
            f"monitor-job-{short}",
            project=project,
            region=config.region,
            name=names.scheduler_job(short),
            description=f"Freshness and quality checks of {endpoint.table_ref} (deadline {int(endpoint.freshness_deadline.total_seconds() // 3600)}h after the day).",
            schedule=deadline_cron(endpoint.freshness_deadline),
            time_zone="Etc/UTC",
            attempt_deadline="320s",
            retry_config=gcp.cloudscheduler.JobRetryConfigArgs(retry_count=3, min_backoff_duration="30s"),
            http_target=gcp.cloudscheduler.JobHttpTargetArgs(
                uri=pulumi.Output.concat(platform.monitor_url, "/check"),
                http_method="POST",
                headers={"Content-Type": "application/json"},
                body=base64.b64encode(json.dumps(monitor_request(endpoint), sort_keys=True).encode()).decode(),
                oidc_token=gcp.cloudscheduler.JobHttpTargetOidcTokenArgs(
                    service_account_email=platform.email("scheduler"), audience=platform.monitor_url
                ),
            ),
            opts=b.child(self, platform.api("cloudscheduler")),
        )

        self.register_outputs(
            {
                "table": f"{project}.{spec.dataset}.{spec.table}",
                "transfer_config": self.transfer_config.name,
                "schedule": self.transfer_config.schedule,
                "service_account": self.service_account.email,
                "monitor_job": self.monitor_job.name,
            }
        )

