"""`Platform`: what every event type and endpoint of a stack shares.

- APIs the platform uses, enabled (never disabled on destroy: other things may use them).
- KMS key ring + the platform key, rotated every 90 days. It wraps the platform keysets
  (`keys/*.bin` in the config bucket, see `privacy/keys.py`); destroying it would make
  every encrypted field unreadable forever, so it is `protect`ed.
- One service account per function kind and per caller, each granted only what its code
  does (table below), at resource level wherever GCP has one.
- Firestore database of per-user keys: point-in-time recovery OFF — PITR keeps 7 days of
  old versions, which would let an erased user's keys be read back and defeat
  crypto-shredding — and delete protection ON.
- Buckets (uniform access, public access prevented): function source, with the
  `functions-<sha256>.zip` archive named by content hash (old archives expire after 30
  days; a deployed function no longer needs its source), and the config bucket of the
  wrapped platform keysets (versioned, protected).
- `collect` (behind an API Gateway), `forget`, `monitor`: gen2 functions on python312.
- `failed-events` topic with a BigQuery subscription into `platform.failed_events`.
- `transfer-runs` topic (scheduled queries publish their run results) pushed to `monitor`.
- Datasets `events`, `endpoints`, `platform` with a default partition expiration (a safety
  net for tables made by hand: every platform table sets its own).
- Log-based metric `dataplatform/freshness_breach` and alert policies (function error rate,
  dead-letter backlog, freshness) notifying the stack's alert email.

Who may do what (everything else is denied):

| identity      | grants                                                                      |
|---------------|-----------------------------------------------------------------------------|
| dp-collect    | publisher on each `<event>-raw` topic and `failed-events`; KMS decrypt (quarantine keyset); read config bucket; access the API-key secret |
| dp-anonymize  | publisher on each clean topic and `failed-events`; KMS decrypt; Firestore user (keys database only, IAM condition); read config bucket |
| dp-forget     | Firestore user (keys database only); KMS decrypt (HMAC secret); read config bucket |
| dp-monitor    | BigQuery job user (project: no resource level exists); data viewer on `events`, `endpoints`; data editor on `platform` (run and check records) |
| dp-trigger    | run.invoker on each anonymize function (Eventarc push identity)             |
| dp-scheduler  | run.invoker on monitor (Cloud Scheduler jobs, transfer-run push)            |
| dp-gateway    | run.invoker on collect (API Gateway backend identity)                       |
| dp-build      | log writer, Artifact Registry writer (project); read the source bucket      |
| Pub/Sub agent | data editor on `platform.failed_events`; token creator on dp-trigger and dp-scheduler (OIDC push) |
| DTS agent     | publisher on `transfer-runs`                                                |

Why `collect` sits behind API Gateway: producers authenticate with collector API keys, not
Google identities, and the platform allows no public IAM member (`allUsers`). The gateway
is public; it calls `collect` as dp-gateway (an IAM-checked call), and `collect` checks the
API key from Secret Manager itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import pulumi
import pulumi_gcp as gcp

from dataplatform.compile.bigquery_schema import TableSpec, failed_events_table
from dataplatform.compile.platform_tables import platform_tables
from dataplatform.definitions.models import ENDPOINTS_DATASET, EVENTS_DATASET, PLATFORM_DATASET
from infra import builders as b
from infra.archive import FunctionsArchive
from infra.config import StackConfig
from infra.names import function_name, service_account_id

TYPE = "dataplatform:infra:Platform"

APIS = (
    "apigateway",
    "artifactregistry",
    "bigquery",
    "bigquerydatatransfer",
    "cloudbuild",
    "cloudfunctions",
    "cloudkms",
    "cloudscheduler",
    "eventarc",
    "firestore",
    "iam",
    "logging",
    "monitoring",
    "pubsub",
    "run",
    "secretmanager",
    "servicecontrol",
    "servicemanagement",
)

KEY_RING = "dataplatform"
CRYPTO_KEY = "platform"
KEY_ROTATION = timedelta(days=90)
KEYS_DATABASE = "dataplatform-keys"
FAILED_EVENTS_TOPIC = "failed-events"
TRANSFER_RUNS_TOPIC = "transfer-runs"
API_KEYS_SECRET = "collector-api-keys"
SOURCE_RETENTION_DAYS = 30
FRESHNESS_METRIC = "dataplatform/freshness_breach"
DEAD_LETTER_SUFFIX = "-dead-letter"
ERROR_RATE_THRESHOLD = 0.05
PLATFORM_PARTITION_EXPIRATION_DAYS = 400
"""`platform` keeps run, partition and check records for more than a year."""

SERVICE_ACCOUNTS: Mapping[str, str] = {
    "collect": "collect: accepts event batches, publishes raw batches and failed events",
    "anonymize": "anonymize: validates and anonymizes raw batches into clean events",
    "forget": "forget: erases a user's keys (crypto-shredding)",
    "monitor": "monitor: freshness, quality checks and run records",
    "trigger": "Eventarc push identity: invokes the anonymize functions",
    "scheduler": "Cloud Scheduler and transfer-run push identity: invokes monitor",
    "gateway": "API Gateway backend identity: invokes collect",
    "build": "Cloud Build identity of the function builds",
}


@dataclass(frozen=True)
class PlatformArgs:
    config: StackConfig
    archive: FunctionsArchive


@dataclass(frozen=True)
class PlatformRefs:
    """What an `EventPipeline` or `DataEndpoint` needs from the platform."""

    config: StackConfig
    source: b.FunctionSource
    service_accounts: Mapping[str, gcp.serviceaccount.Account]
    pubsub_agent: pulumi.Output[str]
    """IAM member of the project's Pub/Sub service agent."""
    transfer_agent: pulumi.Output[str]
    """IAM member of the project's BigQuery Data Transfer service agent."""
    failed_events_topic: gcp.pubsub.Topic
    transfer_runs_topic: gcp.pubsub.Topic
    datasets: Mapping[str, gcp.bigquery.Dataset]
    record_tables: Mapping[str, gcp.bigquery.Table]
    """platform.runs / partitions / check_results / freshness."""
    monitor: gcp.cloudfunctionsv2.Function
    monitor_url: pulumi.Output[str]
    apis: Mapping[str, gcp.projects.Service]

    def email(self, kind: str) -> pulumi.Output[str]:
        return self.service_accounts[kind].email

    def member(self, kind: str) -> pulumi.Output[str]:
        return self.service_accounts[kind].member

    def api(self, name: str) -> gcp.projects.Service:
        return self.apis[name]


def service_agent(number: pulumi.Input[str], agent: str) -> pulumi.Output[str]:
    """`serviceAccount:service-<project number>@gcp-sa-<agent>.iam.gserviceaccount.com`."""
    return pulumi.Output.concat("serviceAccount:service-", number, f"@gcp-sa-{agent}.iam.gserviceaccount.com")


def table_args(spec: TableSpec, project: str) -> dict:
    """`gcp.bigquery.Table` arguments of a compiled `TableSpec` (shared with the other components)."""
    expiration = spec.expiration_days * 86_400_000 if spec.expiration_days else None
    return dict(
        project=project,
        dataset_id=spec.dataset,
        table_id=spec.table,
        description=spec.description,
        schema=json.dumps(spec.schema_api(), separators=(",", ":")),
        time_partitioning=gcp.bigquery.TableTimePartitioningArgs(
            type=spec.partition_type, field=spec.partition_field, expiration_ms=expiration
        ),
        clusterings=list(spec.clustering) or None,
        require_partition_filter=spec.require_partition_filter,
        deletion_protection=True,
        labels=b.labels(spec.labels.get("owner", b.PLATFORM_OWNER), spec.labels.get("domain", b.PLATFORM_DOMAIN)),
    )


class Platform(pulumi.ComponentResource):
    """The shared part of one stack (see the module docstring)."""

    refs: PlatformRefs

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        config = args.config
        project, region = config.project, config.region
        self._project = project

        self.apis = {
            api: gcp.projects.Service(
                f"api-{api}",
                project=project,
                service=f"{api}.googleapis.com",
                disable_on_destroy=False,
                opts=b.child(self),
            )
            for api in APIS
        }
        number: pulumi.Input[str] = config.project_number or gcp.organizations.get_project_output(
            project_id=project, opts=pulumi.InvokeOptions(parent=self)
        ).number
        pubsub_agent = service_agent(number, "pubsub")
        transfer_agent = service_agent(number, "bigquerydatatransfer")

        # -- identities
        self.service_accounts = {
            kind: gcp.serviceaccount.Account(
                f"sa-{kind}",
                project=project,
                account_id=service_account_id(f"dp-{kind}"),
                display_name=f"dataplatform {kind}",
                description=description,
                opts=b.child(self, self.apis["iam"]),
            )
            for kind, description in SERVICE_ACCOUNTS.items()
        }
        sa = self.service_accounts

        # -- keys
        key_ring = gcp.kms.KeyRing(
            "key-ring", project=project, location=region, name=KEY_RING,
            opts=b.child(self, self.apis["cloudkms"], protect=True),
        )
        self.crypto_key = gcp.kms.CryptoKey(
            "platform-key",
            name=CRYPTO_KEY,
            key_ring=key_ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=f"{int(KEY_ROTATION.total_seconds())}s",
            labels=b.platform_labels(),
            opts=b.child(self, protect=True),
        )
        self.keys_database = gcp.firestore.Database(
            "keys-database",
            project=project,
            name=KEYS_DATABASE,
            location_id=config.firestore_location,
            type="FIRESTORE_NATIVE",
            point_in_time_recovery_enablement="POINT_IN_TIME_RECOVERY_DISABLED",
            delete_protection_state="DELETE_PROTECTION_ENABLED",
            opts=b.child(self, self.apis["firestore"], protect=True),
        )

        # -- buckets and the function source
        self.source_bucket = gcp.storage.Bucket(
            "source-bucket",
            project=project,
            name=f"{project}-dataplatform-functions",
            location=region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=True,
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=SOURCE_RETENTION_DAYS, matches_prefixes=["functions-"]
                    ),
                )
            ],
            labels=b.platform_labels(),
            opts=b.child(self),
        )
        self.config_bucket = gcp.storage.Bucket(
            "config-bucket",
            project=project,
            name=f"{project}-dataplatform-config",
            location=region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(days_since_noncurrent_time=365, with_state="ARCHIVED"),
                )
            ],
            labels=b.platform_labels(),
            opts=b.child(self, protect=True),
        )
        self.archive = gcp.storage.BucketObject(
            "functions-archive",
            bucket=self.source_bucket.name,
            name=args.archive.object_name,
            source=pulumi.FileAsset(str(args.archive.path)),
            content_type="application/zip",
            metadata={"sha256": args.archive.sha256},
            opts=b.child(self),
        )

        # -- topics
        self.failed_events_topic = gcp.pubsub.Topic(
            "topic-failed-events",
            project=project,
            name=FAILED_EVENTS_TOPIC,
            labels=b.platform_labels(data="failed-events"),
            opts=b.child(self, self.apis["pubsub"]),
        )
        self.transfer_runs_topic = gcp.pubsub.Topic(
            "topic-transfer-runs",
            project=project,
            name=TRANSFER_RUNS_TOPIC,
            labels=b.platform_labels(data="transfer-runs"),
            opts=b.child(self, self.apis["pubsub"]),
        )

        # -- datasets and the failed-events table
        expiration = {
            EVENTS_DATASET: config.partition_expiration_days,
            ENDPOINTS_DATASET: config.partition_expiration_days,
            PLATFORM_DATASET: PLATFORM_PARTITION_EXPIRATION_DAYS,
        }
        descriptions = {
            EVENTS_DATASET: "Anonymized events, one table per event type and major version (+ _dedup views).",
            ENDPOINTS_DATASET: "Data endpoints: tables whose daily partitions scheduled queries write.",
            PLATFORM_DATASET: "Platform records: failed events, runs, partitions and check results.",
        }
        self.datasets = {
            dataset: gcp.bigquery.Dataset(
                f"dataset-{dataset}",
                project=project,
                dataset_id=dataset,
                location=config.bigquery_location,
                description=descriptions[dataset],
                default_partition_expiration_ms=days * 86_400_000,
                delete_contents_on_destroy=False,
                labels=b.platform_labels(),
                opts=b.child(self, self.apis["bigquery"]),
            )
            for dataset, days in expiration.items()
        }
        failed_spec = failed_events_table()
        self.failed_events_table = gcp.bigquery.Table(
            failed_spec.ref,
            **{**table_args(failed_spec, project), "dataset_id": self.datasets[PLATFORM_DATASET].dataset_id},
            opts=b.child(self),
        )
        # runs, partitions, check results, freshness: what monitor and the scheduled
        # queries' readiness scripts record and read (compile/platform_tables.py)
        self.record_tables = {
            spec.ref: gcp.bigquery.Table(
                spec.ref,
                **{**table_args(spec, project), "dataset_id": self.datasets[PLATFORM_DATASET].dataset_id},
                opts=b.child(self),
            )
            for spec in platform_tables()
            if spec.ref != failed_spec.ref
        }
        failed_table_writer = gcp.bigquery.IamMember(
            "platform.failed_events-editor-pubsub-agent",
            project=project,
            dataset_id=self.failed_events_table.dataset_id,
            table_id=self.failed_events_table.table_id,
            role=b.BIGQUERY_DATA_EDITOR,
            member=pubsub_agent,
            opts=b.child(self),
        )
        self.failed_events_subscription = gcp.pubsub.Subscription(
            "failed-events-bigquery",
            project=project,
            name=f"{FAILED_EVENTS_TOPIC}-bigquery",
            topic=self.failed_events_topic.id,
            bigquery_config=gcp.pubsub.SubscriptionBigqueryConfigArgs(
                table=pulumi.Output.concat(project, ".", self.failed_events_table.dataset_id, ".", self.failed_events_table.table_id),
                use_table_schema=True,
                write_metadata=True,
            ),
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
            labels=b.platform_labels(),
            opts=b.child(self, failed_table_writer),
        )

        # -- secrets
        api_keys = gcp.secretmanager.Secret(
            "secret-collector-api-keys",
            project=project,
            secret_id=API_KEYS_SECRET,
            replication=gcp.secretmanager.SecretReplicationArgs(auto=gcp.secretmanager.SecretReplicationAutoArgs()),
            labels=b.platform_labels(),
            opts=b.child(self, self.apis["secretmanager"]),
        )
        api_keys_version = gcp.secretmanager.SecretVersion(
            "secret-collector-api-keys-version",
            secret=api_keys.id,
            secret_data=pulumi.Output.secret(config.collector_api_keys),
            opts=b.child(self),
        )

        # -- grants the platform's own resources need (pipeline/endpoint grants live there)
        decrypters = [
            gcp.kms.CryptoKeyIAMMember(
                f"platform-key-decrypter-{kind}",
                crypto_key_id=self.crypto_key.id,
                role=b.KMS_DECRYPTER,
                member=sa[kind].member,
                opts=b.child(self),
            )
            for kind in ("collect", "anonymize", "forget")
        ]
        config_readers = [
            gcp.storage.BucketIAMMember(
                f"config-bucket-viewer-{kind}",
                bucket=self.config_bucket.name,
                role=b.STORAGE_OBJECT_VIEWER,
                member=sa[kind].member,
                opts=b.child(self),
            )
            for kind in ("collect", "anonymize", "forget")
        ]
        database_condition = gcp.projects.IAMMemberConditionArgs(
            title="keys-database-only",
            description="Only the dataplatform key store database",
            expression=f'resource.name == "projects/{project}/databases/{KEYS_DATABASE}"',
        )
        key_store_users = [
            gcp.projects.IAMMember(
                f"project-datastore-user-{kind}",
                project=project,
                role=b.DATASTORE_USER,
                member=sa[kind].member,
                condition=database_condition,
                opts=b.child(self),
            )
            for kind in ("anonymize", "forget")
        ]
        failed_publishers = [
            gcp.pubsub.TopicIAMMember(
                f"failed-events-publisher-{kind}",
                project=project,
                topic=self.failed_events_topic.name,
                role=b.PUBSUB_PUBLISHER,
                member=sa[kind].member,
                opts=b.child(self),
            )
            for kind in ("collect", "anonymize")
        ]
        secret_reader = gcp.secretmanager.SecretIamMember(
            "secret-collector-api-keys-accessor-collect",
            project=project,
            secret_id=api_keys.secret_id,
            role=b.SECRET_ACCESSOR,
            member=sa["collect"].member,
            opts=b.child(self),
        )
        monitor_grants = [
            gcp.projects.IAMMember(
                "project-bigquery-job-user-monitor",
                project=project,
                role=b.BIGQUERY_JOB_USER,
                member=sa["monitor"].member,
                opts=b.child(self),
            ),
            *(
                gcp.bigquery.DatasetIamMember(
                    f"dataset-{dataset}-{role.rsplit('.', 1)[1]}-monitor",
                    project=project,
                    dataset_id=self.datasets[dataset].dataset_id,
                    role=role,
                    member=sa["monitor"].member,
                    opts=b.child(self),
                )
                for dataset, role in (
                    (EVENTS_DATASET, b.BIGQUERY_DATA_VIEWER),
                    (ENDPOINTS_DATASET, b.BIGQUERY_DATA_VIEWER),
                    (PLATFORM_DATASET, b.BIGQUERY_DATA_EDITOR),
                )
            ),
        ]
        build_grants = [
            gcp.projects.IAMMember(
                f"project-{role.split('/')[1].replace('.', '-')}-build",
                project=project,
                role=role,
                member=sa["build"].member,
                opts=b.child(self),
            )
            for role in (b.LOG_WRITER, b.ARTIFACT_WRITER)
        ] + [
            gcp.storage.BucketIAMMember(
                "source-bucket-viewer-build",
                bucket=self.source_bucket.name,
                role=b.STORAGE_OBJECT_VIEWER,
                member=sa["build"].member,
                opts=b.child(self),
            )
        ]
        push_token_creators = [
            gcp.serviceaccount.IAMMember(
                f"sa-{kind}-token-creator-pubsub-agent",
                service_account_id=sa[kind].name,
                role=b.TOKEN_CREATOR,
                member=pubsub_agent,
                opts=b.child(self),
            )
            for kind in ("trigger", "scheduler")
        ]
        transfer_publisher = gcp.pubsub.TopicIAMMember(
            "transfer-runs-publisher-transfer-agent",
            project=project,
            topic=self.transfer_runs_topic.name,
            role=b.PUBSUB_PUBLISHER,
            member=transfer_agent,
            opts=b.child(self),
        )

        # -- functions
        self.source = b.FunctionSource(
            project=project,
            region=region,
            bucket=self.source_bucket.name,
            object=self.archive.name,
            build_service_account=sa["build"].name,
            environment={
                # the variables dataplatform/settings.py reads (the one wiring point)
                "DATAPLATFORM_ENV": "gcp",
                "DATAPLATFORM_PROJECT": project,
                "DATAPLATFORM_DEFINITIONS": ".",
                "DATAPLATFORM_WAREHOUSE": "bigquery",
                "GOOGLE_CLOUD_PROJECT": project,
                "DATAPLATFORM_REGION": region,
                "DATAPLATFORM_KMS": self.crypto_key.id,
                "DATAPLATFORM_CONFIG_BUCKET": self.config_bucket.name,
                "DATAPLATFORM_FIRESTORE_DATABASE": self.keys_database.name,
                "DATAPLATFORM_FAILED_EVENTS_TOPIC": self.failed_events_topic.name,
                "DATAPLATFORM_BIGQUERY_LOCATION": config.bigquery_location,
                "DATAPLATFORM_DOMAINS": ",".join(config.domains),
                "LOG_EXECUTION_ID": "true",
            },
        )
        function_apis = [self.apis[a] for a in ("cloudfunctions", "run", "cloudbuild", "artifactregistry")]
        built_by = [*build_grants, *function_apis]
        self.collect = b.gen2_function(
            "function-collect",
            b.FunctionSpec(
                name=function_name("collect"),
                entry_point="collect",
                service_account_email=sa["collect"].email,
                labels=b.platform_labels(component="collect"),
                description="Accepts event batches (POST /collect) and publishes them per event type.",
                secret_environment={"DATAPLATFORM_COLLECT_API_KEYS": api_keys.secret_id},
                max_instances=100,
                ingress="ALLOW_ALL",
            ),
            self.source,
            b.child(self, *built_by, api_keys_version, secret_reader, *decrypters, *config_readers, *failed_publishers),
        )
        self.forget = b.gen2_function(
            "function-forget",
            b.FunctionSpec(
                name=function_name("forget"),
                entry_point="forget",
                service_account_email=sa["forget"].email,
                labels=b.platform_labels(component="forget"),
                description="Erases a user's keys (crypto-shredding); IAM-authenticated callers only.",
                ingress="ALLOW_ALL",
                max_instances=5,
            ),
            self.source,
            b.child(self, *built_by, *decrypters, *config_readers, *key_store_users),
        )
        self.monitor = b.gen2_function(
            "function-monitor",
            b.FunctionSpec(
                name=function_name("monitor"),
                entry_point="monitor",
                service_account_email=sa["monitor"].email,
                labels=b.platform_labels(component="monitor"),
                description="Freshness and quality checks, run records, readiness of waiting partitions.",
                memory="1Gi",
                timeout_seconds=540,
                max_instances=5,
            ),
            self.source,
            b.child(self, *built_by, *monitor_grants),
        )
        monitor_url = self.monitor.service_config.apply(lambda c: c.uri)
        scheduler_invokes_monitor = b.invoker(
            "monitor-invoker-scheduler", self.monitor, sa["scheduler"].member, self.source, b.child(self)
        )
        gateway_invokes_collect = b.invoker(
            "collect-invoker-gateway", self.collect, sa["gateway"].member, self.source, b.child(self)
        )
        for i, member in enumerate(config.forget_invokers):
            b.invoker(f"forget-invoker-{i}", self.forget, member, self.source, b.child(self))

        self.transfer_runs_subscription = gcp.pubsub.Subscription(
            "transfer-runs-monitor",
            project=project,
            name=f"{TRANSFER_RUNS_TOPIC}-monitor",
            topic=self.transfer_runs_topic.id,
            ack_deadline_seconds=600,
            push_config=gcp.pubsub.SubscriptionPushConfigArgs(
                push_endpoint=pulumi.Output.concat(monitor_url, "/transfer-run"),
                oidc_token=gcp.pubsub.SubscriptionPushConfigOidcTokenArgs(
                    service_account_email=sa["scheduler"].email, audience=monitor_url
                ),
            ),
            retry_policy=gcp.pubsub.SubscriptionRetryPolicyArgs(minimum_backoff="10s", maximum_backoff="600s"),
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
            labels=b.platform_labels(),
            opts=b.child(self, scheduler_invokes_monitor, *push_token_creators, transfer_publisher),
        )

        # -- the public door: API Gateway → collect
        collect_url = self.collect.service_config.apply(lambda c: c.uri)
        api = gcp.apigateway.Api(
            "collect-api", project=project, api_id="dp-collect", display_name="dataplatform collect",
            labels=b.platform_labels(), opts=b.child(self, self.apis["apigateway"]),
        )
        api_config = gcp.apigateway.ApiConfig(
            "collect-api-config",
            project=project,
            api=api.api_id,
            api_config_id_prefix="dp-collect-",
            openapi_documents=[
                gcp.apigateway.ApiConfigOpenapiDocumentArgs(
                    document=gcp.apigateway.ApiConfigOpenapiDocumentDocumentArgs(
                        path="collect.json", contents=collect_url.apply(openapi_document)
                    )
                )
            ],
            gateway_config=gcp.apigateway.ApiConfigGatewayConfigArgs(
                backend_config=gcp.apigateway.ApiConfigGatewayConfigBackendConfigArgs(
                    google_service_account=sa["gateway"].email
                )
            ),
            labels=b.platform_labels(),
            opts=b.child(self, gateway_invokes_collect, replace_on_changes=["openapiDocuments"], delete_before_replace=False),
        )
        gateway = gcp.apigateway.Gateway(
            "collect-gateway",
            project=project,
            region=region,
            gateway_id="dp-collect",
            api_config=api_config.id,
            labels=b.platform_labels(),
            opts=b.child(self),
        )

        # -- observability
        channel = gcp.monitoring.NotificationChannel(
            "alert-email",
            project=project,
            display_name=f"dataplatform alerts ({config.stack})",
            type="email",
            labels={"email_address": config.alert_email},
            user_labels=b.platform_labels(),
            opts=b.child(self, self.apis["monitoring"]),
        )
        freshness_metric = gcp.logging.Metric(
            "freshness-breach-metric",
            project=project,
            name=FRESHNESS_METRIC,
            description="monitor's structured log line {\"event\": \"freshness_breach\", \"table\": ...}",
            filter=freshness_log_filter(function_name("monitor")),
            metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                metric_kind="DELTA",
                value_type="INT64",
                labels=[gcp.logging.MetricMetricDescriptorLabelArgs(key="table", value_type="STRING", description="dataset.table that missed its deadline")],
            ),
            label_extractors={"table": "EXTRACT(jsonPayload.table)"},
            opts=b.child(self, self.apis["logging"]),
        )
        # A policy may only filter on a log-based metric that exists: the freshness one waits for it.
        self.alert_policies = [
            alert_policy(self, project, channel, **spec, depends_on=freshness_metric if spec["resource_name"] == "alert-freshness" else None)
            for spec in alert_specs()
        ]
        self.refs = PlatformRefs(
            config=config,
            source=self.source,
            service_accounts=sa,
            pubsub_agent=pubsub_agent,
            transfer_agent=transfer_agent,
            failed_events_topic=self.failed_events_topic,
            transfer_runs_topic=self.transfer_runs_topic,
            datasets=self.datasets,
            record_tables=self.record_tables,
            monitor=self.monitor,
            monitor_url=monitor_url,
            apis=self.apis,
        )
        self.collect_url = pulumi.Output.concat("https://", gateway.default_hostname, "/collect")
        self.register_outputs(
            {
                "collect_url": self.collect_url,
                "functions": {"collect": self.collect.name, "forget": self.forget.name, "monitor": self.monitor.name},
                "service_accounts": {kind: account.email for kind, account in sa.items()},
                "kms_key": self.crypto_key.id,
                "keys_database": self.keys_database.name,
                "config_bucket": self.config_bucket.name,
                "source_object": self.archive.name,
                "topics": {"failed_events": self.failed_events_topic.id, "transfer_runs": self.transfer_runs_topic.id},
                "datasets": {name: ds.dataset_id for name, ds in self.datasets.items()},
                "freshness_metric": freshness_metric.name,
                "alert_policies": [p.name for p in self.alert_policies],
            }
        )


def openapi_document(collect_url: str) -> str:
    """The API Gateway spec (Swagger 2.0, base64 as the API wants) routing POST /collect to collect."""
    spec = {
        "swagger": "2.0",
        "info": {"title": "dataplatform collect", "version": "1.0.0"},
        "schemes": ["https"],
        "produces": ["application/json"],
        "paths": {
            "/collect": {
                "post": {
                    "operationId": "collect",
                    "summary": "Send a batch of events (the API key is checked by collect)",
                    "consumes": ["application/json"],
                    "x-google-backend": {"address": collect_url, "deadline": 30.0},
                    "responses": {
                        "200": {"description": "Batch processed; per-event results in the body"},
                        "400": {"description": "The request is not a batch of events"},
                        "401": {"description": "Missing or unknown API key"},
                        "413": {"description": "Batch too large"},
                    },
                }
            }
        },
    }
    return base64.b64encode(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).decode()


def freshness_log_filter(monitor_service: str) -> str:
    return (
        'resource.type="cloud_run_revision" '
        f'AND resource.labels.service_name="{monitor_service}" '
        'AND jsonPayload.event="freshness_breach"'
    )


def alert_specs() -> list[dict]:
    """The three alert policies: display name, documentation and one threshold condition each."""
    functions = 'resource.type="cloud_run_revision" AND resource.labels.service_name=starts_with("dp-")'
    requests = 'metric.type="run.googleapis.com/request_count"'
    return [
        dict(
            resource_name="alert-function-errors",
            display_name="dataplatform: function error rate",
            documentation=(
                "More than 5% of a platform function's requests failed (5xx) for 5 minutes. "
                "anonymize errors are retried by Pub/Sub and end in the dead-letter topic after 5 attempts; "
                "read the function's logs (severity>=ERROR) for the failing dependency."
            ),
            condition=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=f'{requests} AND {functions} AND metric.labels.response_code_class="5xx"',
                denominator_filter=f"{requests} AND {functions}",
                comparison="COMPARISON_GT",
                threshold_value=ERROR_RATE_THRESHOLD,
                duration="300s",
                aggregations=[_rate_by("resource.labels.service_name")],
                denominator_aggregations=[_rate_by("resource.labels.service_name")],
            ),
        ),
        dict(
            resource_name="alert-dead-letter-backlog",
            display_name="dataplatform: dead-letter backlog",
            documentation=(
                "Raw batches reached a dead-letter subscription (<event>-dead-letter) after 5 failed deliveries. "
                "They hold raw personal data: fix the cause, then replay them to <event>-raw; they expire after 7 days."
            ),
            condition=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=(
                    'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" '
                    'AND resource.type="pubsub_subscription" '
                    f'AND resource.labels.subscription_id=ends_with("{DEAD_LETTER_SUFFIX}")'
                ),
                comparison="COMPARISON_GT",
                threshold_value=0,
                duration="0s",
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                        alignment_period="300s",
                        per_series_aligner="ALIGN_MAX",
                        cross_series_reducer="REDUCE_MAX",
                        group_by_fields=["resource.labels.subscription_id"],
                    )
                ],
            ),
        ),
        dict(
            resource_name="alert-freshness",
            display_name="dataplatform: freshness deadline missed",
            documentation=(
                "monitor found a table whose partition missed its freshness deadline (log line "
                '{"event": "freshness_breach"}); the metric label `table` names it. '
                "Check the scheduled query's last run and the upstream partitions it waits for."
            ),
            condition=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=f'metric.type="logging.googleapis.com/user/{FRESHNESS_METRIC}" AND resource.type="cloud_run_revision"',
                comparison="COMPARISON_GT",
                threshold_value=0,
                duration="0s",
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                        alignment_period="300s",
                        per_series_aligner="ALIGN_SUM",
                        cross_series_reducer="REDUCE_SUM",
                        group_by_fields=["metric.label.table"],
                    )
                ],
            ),
        ),
    ]


def _rate_by(field: str) -> gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs:
    return gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
        alignment_period="300s", per_series_aligner="ALIGN_RATE", cross_series_reducer="REDUCE_SUM", group_by_fields=[field]
    )


def alert_policy(
    parent: pulumi.Resource,
    project: str,
    channel: gcp.monitoring.NotificationChannel,
    *,
    resource_name: str,
    display_name: str,
    documentation: str,
    condition: gcp.monitoring.AlertPolicyConditionConditionThresholdArgs,
    depends_on: pulumi.Resource | None = None,
) -> gcp.monitoring.AlertPolicy:
    return gcp.monitoring.AlertPolicy(
        resource_name,
        project=project,
        display_name=display_name,
        combiner="OR",
        conditions=[gcp.monitoring.AlertPolicyConditionArgs(display_name=display_name, condition_threshold=condition)],
        notification_channels=[channel.name],
        documentation=gcp.monitoring.AlertPolicyDocumentationArgs(content=documentation, mime_type="text/markdown"),
        alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close="86400s"),
        user_labels=b.platform_labels(),
        opts=b.child(parent, depends_on),
    )
